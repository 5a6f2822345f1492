"""The training loop every TensorFlow training worker shares (imported only in workers).

It owns what must behave the same on every path: checkpoints (every model
variable, the optimizer and the step; batch order is a function of the step,
so nothing else is needed to resume), resuming from the newest checkpoint,
history.json, TensorBoard scalars, progress events and divergence checks.
A worker supplies the compiled train step, the batches and a validation pass.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from plugins.errors import TfpipeError
from tasks import atomic
from tasks.checkpoints import CHECKPOINTS, checkpoint_steps, start_afresh_hint
from tasks.protocol import Progress, emit

# Steps of a run (from its start or resume) before its steady-state rate is timed: tracing,
# the first batches of tf.data and the thread pools warming up all fall before it.
WARMUP_STEPS = 200


def load_history(path: Path, upto_step: int) -> dict[str, list[dict[str, float]]]:
    """History up to the restored step: entries a crashed run wrote past it are dropped."""
    try:
        history = json.loads(path.read_text("utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {"train": [], "validation": []}
    return {key: [row for row in rows if row["step"] <= upto_step] for key, rows in history.items()}


class TrainingLoop:
    """Checkpointed, resumable training of `model` with `optimizer` into folder `out`."""

    def __init__(self, out: Path, model: Any, optimizer: Any, label: str, checkpoint_every: int,
                 learning_rate: float, max_to_keep: int = 3):
        import tensorflow as tf

        self.tf, self.out, self.label = tf, Path(out), label
        self.checkpoint_every, self.learning_rate = checkpoint_every, learning_rate
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

    def run(self, train_step: Callable[[Any], dict[str, Any]], batches: Iterable[Any], total_steps: int,
            validate: Callable[[], dict[str, float]], units_per_step: int, unit: str = "samples",
            log_every: int = 100) -> dict[str, Any]:
        """Run steps resumed_from+1..total_steps; train_step(batch) returns per-step metric tensors."""
        progress = Progress(total_steps, self.label, start=self.resumed_from)
        window: dict[str, list[Any]] = {}
        last_checkpoint = current = self.resumed_from
        log_every = max(1, min(log_every, self.checkpoint_every))
        # Validation and checkpoint writes are timed apart: throughput counts training steps only.
        started, paused = time.perf_counter(), 0.0
        steady_from = steady_started = None  # (step, training seconds) where steady state begins
        elapsed = 0.0
        for batch in batches:
            for key, value in train_step(batch).items():
                window.setdefault(key, []).append(value)
            current += 1
            at_checkpoint = current % self.checkpoint_every == 0 or current == total_steps
            if current % log_every and not at_checkpoint:
                continue
            metrics = self._close_window(window, current, last_checkpoint)
            window = {}
            self.history["train"].append({"step": current, **metrics})
            self._scalars("train", current, metrics)
            elapsed = time.perf_counter() - started - paused
            metrics[f"{unit}_per_s"] = (current - self.resumed_from) * units_per_step / elapsed
            if steady_from is None and current >= self.resumed_from + WARMUP_STEPS:
                steady_from, steady_started = current, elapsed
            if at_checkpoint:
                pause_started = time.perf_counter()
                validation = validate()
                self.history["validation"].append({"step": current, **validation})
                self._scalars("validation", current, validation)
                self.manager.save(checkpoint_number=current)
                atomic.write_json(self.out / "history.json", self.history)
                last_checkpoint = current
                metrics.update({f"val_{key}": value for key, value in validation.items()})
                paused += time.perf_counter() - pause_started
            progress.update(current, force=at_checkpoint, **metrics)
        seconds = time.perf_counter() - started
        for writer in self.writers.values():
            writer.flush()
        final_step = int(self.step.numpy())
        if self.manager.latest_checkpoint is None or final_step != last_checkpoint:
            self.manager.save(checkpoint_number=final_step)
        done = total_steps - self.resumed_from
        steady = None
        if steady_from is not None and final_step > steady_from and elapsed > steady_started:
            steady = round((final_step - steady_from) * units_per_step / (elapsed - steady_started), 1)
        last_validation = self.history["validation"][-1] if self.history["validation"] else {}
        return {
            "final_step": final_step,
            "resumed_from": self.resumed_from,
            "train_seconds": round(seconds, 2),  # wall time, validation and checkpoints included
            "validation_seconds": round(paused, 2),
            f"{unit}_per_s": round(done * units_per_step / (seconds - paused), 1) if done > 0 and seconds > paused
            else None,
            # Steps after WARMUP_STEPS only (None on shorter runs): the rate bench/ compares.
            f"steady_{unit}_per_s": steady,
            "steady_from_step": steady_from,
            **{f"val_{key}": value for key, value in last_validation.items() if key != "step"},
        }

    def _close_window(self, window: dict[str, list[Any]], current: int, last_checkpoint: int) -> dict[str, float]:
        """Mean of each metric over the steps since the last log; stop on a non-finite loss."""
        losses = np.asarray(self.tf.stack(window["loss"]))
        if not np.isfinite(losses).all():
            first = int(np.argmin(np.isfinite(losses)))
            raise TfpipeError(
                f"training diverged: loss is {losses[first]} at step {current - len(losses) + first + 1} "
                f"(learning_rate={self.learning_rate}); lower the learning rate (learning_rate in your "
                f"config, or --learning-rate) and rerun. Nothing past step {last_checkpoint} was "
                f"checkpointed.")
        return {key: float(np.mean(self.tf.stack(values))) for key, values in window.items()}


def compile_train_step(strategy: Any, model: Any, optimizer: Any, step: Any, batch_rows: int,
                       units_per_step: int, forward: Callable[[Any], tuple[Any, dict[str, Any]]]):
    """A compiled train step that splits each global batch over the strategy's replicas.

    `forward(rows)` runs the model on this replica's rows of the batch and returns
    (summed loss, {metric: summed value}); sums over all replicas are divided by
    `units_per_step` (samples, or characters), so every replica count gives the
    same mean loss and the same update as one device.
    """
    import tensorflow as tf

    from tasks.tf_runtime import regularization_losses

    replicas = strategy.num_replicas_in_sync
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

    @tf.function
    def train_step(batch):
        loss, metric_sums = strategy.run(replica_step, args=(batch,))
        step.assign_add(1)
        total = tf.distribute.ReduceOp.SUM
        result = {"loss": strategy.reduce(total, loss, axis=None)}
        for key, value in metric_sums.items():
            result[key] = strategy.reduce(total, value, axis=None) / units_per_step
        return result

    return train_step


def _rewrite_state(tf: Any, directory: Path, steps: list[int]) -> None:
    """Write the `checkpoint` state file naming `steps` as they are on disk, newest last."""
    paths = [str(directory / f"ckpt-{step}") for step in sorted(steps)]
    tf.compat.v1.train.update_checkpoint_state(str(directory), paths[-1], all_model_checkpoint_paths=paths)
