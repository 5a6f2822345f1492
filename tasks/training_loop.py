"""The training loop every TensorFlow training worker shares (imported only in workers).

It owns what must behave the same on every path: checkpoints (every model
variable, the optimizer and the step; batch order is a function of the step,
so nothing else is needed to resume), resuming from the newest checkpoint,
history.json, TensorBoard scalars, progress events and divergence checks.
A worker supplies the compiled train step, the batches and a validation pass.

Steps run in chunks: one compiled call runs up to STEPS_PER_CALL steps in a row
(`compile_train_step`), which takes the per-call overhead of Python, tf.function
and tf.data off every step. A chunk never crosses a log or checkpoint step, and
chunks end at multiples of STEPS_PER_CALL, so a resumed run makes the same calls
as an uninterrupted one (`chunk_sizes`).
"""
from __future__ import annotations

import json
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from plugins.errors import TfpipeError
from tasks import atomic
from tasks.checkpoints import CHECKPOINTS, checkpoint_steps, start_afresh_hint
from tasks.protocol import Progress, Stopped, StopRequest, emit


class StepClock:
    """Wall and CPU seconds of training, validation and checkpoint writes timed apart."""

    def __init__(self):
        self.started = (time.perf_counter(), time.process_time())
        self.pauses = {"validation": [0.0, 0.0], "checkpoint": [0.0, 0.0]}

    def total(self) -> float:
        return time.perf_counter() - self.started[0]

    def training(self) -> tuple[float, float]:
        """(wall, CPU) seconds so far, pauses left out."""
        now = (time.perf_counter(), time.process_time())
        return tuple(now[i] - self.started[i] - sum(pause[i] for pause in self.pauses.values()) for i in (0, 1))

    @contextmanager
    def paused(self, what: str):
        started = (time.perf_counter(), time.process_time())
        try:
            yield
        finally:
            self.pauses[what][0] += time.perf_counter() - started[0]
            self.pauses[what][1] += time.process_time() - started[1]


def steady_rates(start: tuple | None, end: tuple | None, units_per_step: int, unit: str) -> dict[str, Any]:
    """Rates over the steps between two (step, wall, CPU seconds) marks: per second of training
    and per CPU-second of this process (the figure to read on a shared machine). None where the
    run was too short to have a steady state."""
    if start is None or end is None or end[0] <= start[0] or end[1] <= start[1] or end[2] <= start[2]:
        return {f"steady_{unit}_per_s": None, f"steady_{unit}_per_cpu_s": None, "steady_from_step": None}
    units = (end[0] - start[0]) * units_per_step
    return {f"steady_{unit}_per_s": round(units / (end[1] - start[1]), 1),
            f"steady_{unit}_per_cpu_s": round(units / (end[2] - start[2]), 1), "steady_from_step": start[0]}


def load_history(path: Path, upto_step: int) -> dict[str, list[dict[str, float]]]:
    """History up to the restored step: entries a crashed run wrote past it are dropped."""
    try:
        history = json.loads(path.read_text("utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {"train": [], "validation": []}
    return {key: [row for row in rows if row["step"] <= upto_step] for key, rows in history.items()}


# Steps of a run (from its start or resume) before its steady-state rate is timed: tracing,
# the first batches of tf.data and the thread pools warming up all fall before it.
WARMUP_STEPS = 200
# Steps per compiled call. At one step per call the overhead of the call (Python, tf.function,
# tf.data) took about half the CPU time of an MLP step on 2 cores; 50 makes it negligible and
# divides the log interval (100) and the usual checkpoint intervals. A chunk is cut short
# where it would cross any other boundary. Not a setting: it changes no result (the weights are
# bit-identical to one step per call, tests/test_training_loop.py).
STEPS_PER_CALL = 50
LOG_EVERY = 100


def chunk_sizes(start: int, stop: int, every: Iterable[int]) -> list[int]:
    """Steps per call from step `start` to `stop`: a call ends at each multiple of each of
    `every` and of STEPS_PER_CALL, and at `stop`."""
    every = (*every, STEPS_PER_CALL)
    sizes, step = [], start
    while step < stop:
        end = min(stop, *((step // interval + 1) * interval for interval in every))
        sizes.append(end - step)
        step = end
    return sizes


class TrainingLoop:
    """Checkpointed, resumable training of `model` with `optimizer` into folder `out`."""

    def __init__(self, out: Path, model: Any, optimizer: Any, label: str, checkpoint_every: int,
                 learning_rate: float, max_to_keep: int = 3, log_every: int = LOG_EVERY):
        import tensorflow as tf

        self.tf, self.out, self.label = tf, Path(out), label
        self.model, self.optimizer = model, optimizer
        self.checkpoint_every, self.learning_rate = checkpoint_every, learning_rate
        self.log_every = max(1, min(log_every, checkpoint_every))
        self.step = tf.Variable(0, dtype=tf.int64, name="step")
        # Keras 3 models expose no checkpoint dependencies of their own: list every model
        # variable (trainable or not) explicitly so nothing is silently left out.
        self.checkpoint = tf.train.Checkpoint(model_variables=list(model.variables), optimizer=optimizer,
                                              step=self.step)
        self.max_to_keep = max_to_keep
        self.manager = tf.train.CheckpointManager(self.checkpoint, str(self.out / CHECKPOINTS),
                                                  max_to_keep=max_to_keep)
        self.resumed_from = self._restore_newest()
        if self.resumed_from:
            emit("log", message=f"{label}: resuming from checkpoint at step {self.resumed_from}")
        self.history = load_history(self.out / "history.json", self.resumed_from)
        self.writers = {name: tf.summary.create_file_writer(str(self.out / "tensorboard" / name))
                        for name in ("train", "validation")}
        self.stop = StopRequest()

    def _restore_newest(self) -> int:
        """Restore the newest checkpoint that restores; return its step (0: none exists).

        The checkpoint files are listed directly, not through the state file: a lost or
        garbled state file must never restart training from zero (and rotate the good
        checkpoints away). A checkpoint that fails to restore is skipped with a log line;
        when none restores the run stops, naming the folder, and deletes nothing.
        """
        steps = checkpoint_steps(self.out)
        skipped = []
        for step in steps:
            prefix = str(self.out / CHECKPOINTS / f"ckpt-{step}")
            try:
                self.checkpoint.restore(prefix).assert_existing_objects_matched()
            except Exception as exc:  # truncated or corrupt files raise many different errors
                reason = f"ckpt-{step}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
                skipped.append(reason)
                emit("log", message=f"{self.label}: skipping checkpoint {prefix}, it does not restore ({reason})")
                continue
            if int(self.step.numpy()) != step:
                skipped.append(f"ckpt-{step}: holds step {int(self.step.numpy())}")
                continue
            if self.manager.latest_checkpoint != prefix:
                # Rebuild the state file from what restored, so the manager rotates the right files.
                _rewrite_state(self.tf, self.out / CHECKPOINTS, [s for s in steps if s <= step])
                self.manager = self.tf.train.CheckpointManager(
                    self.checkpoint, str(self.out / CHECKPOINTS), max_to_keep=self.max_to_keep)
            return step
        if steps:
            raise TfpipeError(
                f"no checkpoint in {self.out / CHECKPOINTS} restores ({'; '.join(skipped)}). Nothing was "
                f"deleted. To train this folder from step 0, run `{start_afresh_hint(self.out)}` and rerun.")
        return 0

    def _scalars(self, split: str, step: int, values: dict[str, float]) -> None:
        with self.writers[split].as_default():
            for key, value in values.items():
                self.tf.summary.scalar(key, value, step=step)

    def chunk_sizes(self, start: int, stop: int) -> list[int]:
        """Steps per call from step `start` to `stop` (see `chunk_sizes`): no call crosses a log
        or checkpoint step."""
        return chunk_sizes(start, stop, (self.log_every, self.checkpoint_every))

    def run(self, train_step: Callable[[Any], dict[str, Any]], batches: Iterable[Any], total_steps: int,
            validate: Callable[[bool], dict[str, float]], units_per_step: int, unit: str = "samples") -> dict[str, Any]:
        """Run steps resumed_from+1..total_steps. train_step(batch) returns the metric tensors of one
        step (scalars), or of a chunk of steps (vectors, one value per step; see
        `compile_train_step`): the length of "loss" says how many steps it ran.

        validate(final) runs at every checkpoint step; final is True at the last step, whose
        figures are the run's. A "samples" entry in its result goes to history.json only.
        """
        progress = Progress(total_steps, self.label, start=self.resumed_from)
        window: dict[str, list[Any]] = {}
        last_checkpoint = current = self.resumed_from
        log_every = self.log_every
        clock = StepClock()  # validation and checkpoint writes are timed apart
        # (step, training seconds, CPU seconds) where the steady state begins, and at the latest log step
        steady = now = None
        for batch in batches:
            values = train_step(batch)
            for key, value in values.items():
                window.setdefault(key, []).append(value)
            steps = int(values["loss"].shape[0]) if values["loss"].shape.rank else 1
            if not steps:
                continue
            boundary = min(total_steps, *((current // every + 1) * every
                                          for every in (log_every, self.checkpoint_every)))
            if current + steps > boundary:
                raise RuntimeError(f"a chunk of {steps} steps from step {current} crosses step {boundary}; "
                                   "cut chunks with chunk_sizes()")
            current += steps
            # Seen between compiled calls, so at most STEPS_PER_CALL steps after the signal. At the
            # last step only the final validation remains, and a rerun would never run it (nor put
            # ema_momentum's average into the model): finish instead, in seconds.
            if self.stop.signal is not None and current < total_steps:  # checkpoint here, a rerun resumes here
                self.manager.save(checkpoint_number=current)
                atomic.write_json(self.out / "history.json", self.history)
                raise Stopped(self.stop.signal, current)
            at_checkpoint = current % self.checkpoint_every == 0 or current == total_steps
            if current % log_every and not at_checkpoint:
                continue
            metrics = self._close_window(window, current, last_checkpoint)
            window = {}
            self.history["train"].append({"step": current, **metrics})
            self._scalars("train", current, metrics)
            now = (current, *clock.training())
            metrics[f"{unit}_per_s"] = (current - self.resumed_from) * units_per_step / now[1]
            if steady is None and current >= self.resumed_from + WARMUP_STEPS:
                steady = now
            if at_checkpoint:
                with clock.paused("validation"):
                    if current == total_steps:
                        # An optimizer keeping a moving average (Keras's use_ema) puts it into the model
                        # now: the last validation, the last checkpoint and the export see it. A no-op
                        # otherwise.
                        self.optimizer.finalize_variable_values(self.model.trainable_variables)
                    validation = validate(current == total_steps)
                samples = validation.pop("samples", None)
                self.history["validation"].append({"step": current, **validation,
                                                   **({"samples": samples} if samples else {})})
                self._scalars("validation", current, validation)
                with clock.paused("checkpoint"):
                    self.manager.save(checkpoint_number=current)
                    atomic.write_json(self.out / "history.json", self.history)
                last_checkpoint = current
                metrics.update({f"val_{key}": value for key, value in validation.items()})
            progress.update(current, force=at_checkpoint, **metrics)
        for writer in self.writers.values():
            writer.flush()
        if current != total_steps:  # the worker's batches must cover the run exactly
            raise RuntimeError(f"{self.label}: the batches ended at step {current} of {total_steps}")
        final_step = int(self.step.numpy())
        if self.manager.latest_checkpoint is None or final_step != last_checkpoint:
            self.manager.save(checkpoint_number=final_step)
        done = total_steps - self.resumed_from
        seconds, training = clock.total(), clock.training()[0]
        rate = round(done * units_per_step / training, 1) if done > 0 and training > 0 else None
        last_validation = self.history["validation"][-1] if self.history["validation"] else {}
        return {
            "final_step": final_step,
            "resumed_from": self.resumed_from,
            "train_seconds": round(seconds, 2),  # wall time, validation and checkpoints included
            "validation_seconds": round(clock.pauses["validation"][0], 2),
            "checkpoint_seconds": round(clock.pauses["checkpoint"][0], 2),
            f"{unit}_per_s": rate,
            **steady_rates(steady, now, units_per_step, unit),
            **{f"val_{key}": value for key, value in last_validation.items() if key not in ("step", "samples")},
        }

    def _close_window(self, window: dict[str, list[Any]], current: int, last_checkpoint: int) -> dict[str, float]:
        """Mean of each metric over the steps since the last log; stop on a non-finite loss."""
        window = {key: np.concatenate([np.reshape(value, [-1]) for value in values]) for key, values in window.items()}
        losses = window["loss"]
        if not np.isfinite(losses).all():
            first = int(np.argmin(np.isfinite(losses)))
            raise TfpipeError(
                f"training diverged: loss is {losses[first]} at step {current - len(losses) + first + 1} "
                f"(learning_rate={self.learning_rate}); lower the learning rate (learning_rate in your "
                f"config, or --learning-rate) and rerun. Nothing past step {last_checkpoint} was "
                f"checkpointed.")
        return {key: float(np.mean(values)) for key, values in window.items()}


def learning_rate_schedule(learning_rate: float, schedule: str, steps: int):
    """A constant rate, or cosine decay to a tenth of it over the run (a function of the
    optimizer's step count, which checkpoints restore, so resuming keeps the schedule)."""
    import keras

    if schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=steps, alpha=0.1)
    return learning_rate


AVERAGE_SHARE = 10  # the moving average covers about 1/10 of the run at most


def averaging_momentum(momentum: float, steps: int) -> float:
    """ema_momentum as used: at most 1 - 10/steps (0 from 10 steps down), so the average
    covers about the last tenth of a short run instead of being mostly its first steps (Keras's
    average starts at the first step's weights: 0.99 over 60 steps kept 55% of them)."""
    return min(momentum, max(0.0, 1.0 - AVERAGE_SHARE / steps))


def adam(request: dict[str, Any], **options: Any) -> tuple[Any, float]:
    """The Adam optimizer a training request asks for (learning_rate, lr_schedule, steps,
    weight_decay and ema_momentum), and the momentum of its moving average of the weights as
    used (0: none). The average lives in the optimizer's variables, so checkpoints keep it;
    TrainingLoop puts it into the model at the last step."""
    import keras

    steps = request["steps"]
    momentum = averaging_momentum(request.get("ema_momentum", 0.0), steps)
    rate = learning_rate_schedule(request["learning_rate"], request.get("lr_schedule", "constant"), steps)
    # Decoupled (AdamW): each step shrinks every weight by weight_decay x the step's learning rate.
    decay = request.get("weight_decay", 0.0) or None
    optimizer = keras.optimizers.Adam(learning_rate=rate, use_ema=momentum > 0, ema_momentum=momentum,
                                      weight_decay=decay, **options)
    return optimizer, momentum


def compile_train_step(strategy: Any, model: Any, optimizer: Any, step: Any, batch_spec: Any,
                       units_per_step: int, forward: Callable[[Any], tuple[Any, dict[str, Any]]],
                       metrics: tuple[str, ...], jit_compile: bool = False,
                       prepare: Callable[[Any, Any], Any] | None = None):
    """A compiled call that runs a chunk of steps, splitting each global batch over the
    strategy's replicas.

    The call takes a chunk: the batches of k consecutive steps stacked on a new leading axis
    (`batch_spec`: one step's batch; k varies from call to call without retracing). It runs
    the steps in order in one graph loop, exactly the ops of k separate steps, and returns
    {"loss": (k,), **{metric: (k,)}}, one value per step. `forward(rows)` runs the model on
    this replica's rows of one batch and returns (summed loss, {metric: summed value} for
    each name in `metrics`); sums over all replicas are divided by `units_per_step` (samples,
    or characters), so every replica count gives the same mean loss and the same update as
    one device. With `jit_compile` XLA compiles the whole call (once per chunk length).
    `prepare(batch, step)`, if given, transforms each global batch before it is split (image
    augmentation): a function of the batch and the step alone, so resuming and the replica
    count change nothing it draws.
    """
    import tensorflow as tf

    from tasks.tf_runtime import regularization_losses

    replicas = strategy.num_replicas_in_sync
    batch_rows = int(tf.nest.flatten(batch_spec)[0].shape[0])
    if batch_rows % replicas:
        raise TfpipeError(f"batch_size={batch_rows} does not split evenly over the {replicas} replicas "
                          f"of the device policy; use a multiple of {replicas}")
    per_replica = batch_rows // replicas

    def replica_step(batch):
        # Every replica (on every worker) sees the same global batch and takes its own rows.
        start = tf.distribute.get_replica_context().replica_id_in_sync_group * per_replica
        with tf.GradientTape() as tape:
            loss_sum, metric_sums = forward(batch[start:start + per_replica])
            loss = loss_sum / units_per_step
            extra = regularization_losses(model)
            if extra:
                loss += tf.add_n(extra) / replicas
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))  # all-reduces the gradients
        return loss, metric_sums

    def one_step(batch) -> dict[str, Any]:
        if prepare is not None:
            batch = prepare(batch, step.read_value())
        loss, metric_sums = strategy.run(replica_step, args=(batch,))
        step.assign_add(1)
        total = tf.distribute.ReduceOp.SUM
        result = {"loss": strategy.reduce(total, loss, axis=None)}
        for key in metrics:
            result[key] = strategy.reduce(total, metric_sums[key], axis=None) / units_per_step
        return result

    chunk_spec = tf.nest.map_structure(lambda spec: tf.TensorSpec([None, *spec.shape], spec.dtype), batch_spec)

    @tf.function(input_signature=[chunk_spec], jit_compile=jit_compile)
    def train_steps(chunk):
        count = tf.shape(tf.nest.flatten(chunk)[0])[0]
        stacked = {key: tf.TensorArray(tf.float32, size=count) for key in ("loss", *metrics)}
        for i in tf.range(count):
            result = one_step(tf.nest.map_structure(lambda part, i=i: part[i], chunk))
            stacked = {key: values.write(i, tf.cast(result[key], tf.float32)) for key, values in stacked.items()}
        return {key: values.stack() for key, values in stacked.items()}

    return train_steps


def _rewrite_state(tf: Any, directory: Path, steps: list[int]) -> None:
    """Write the `checkpoint` state file naming `steps` as they are on disk, newest last."""
    paths = [str(directory / f"ckpt-{step}") for step in sorted(steps)]
    tf.compat.v1.train.update_checkpoint_state(str(directory), paths[-1], all_model_checkpoint_paths=paths)
