"""The training loop's chunks of steps (several steps per compiled call) and its validation schedule."""
import json
import signal
from pathlib import Path

import numpy as np
import pytest

from tasks import training_loop
from tasks.training_loop import chunk_sizes


def test_chunks_end_at_every_log_and_checkpoint_step_and_match_after_a_resume():
    sizes = chunk_sizes(0, 1000, (100, 250))
    ends = set(np.cumsum(sizes).tolist())
    assert max(sizes) == training_loop.STEPS_PER_CALL and sum(sizes) == 1000
    assert {100 * i for i in range(1, 11)} | {250, 500, 750} <= ends
    # A run resumed at a checkpoint makes the calls an uninterrupted run makes from there.
    resumed = chunk_sizes(250, 1000, (100, 250))
    assert np.cumsum([250, *resumed]).tolist() == [end for end in [0, *np.cumsum(sizes)] if end >= 250]
    # From a step no interval divides (checkpoint_every changed), calls end at each multiple of
    # 30, 50 (STEPS_PER_CALL) and 100, and at the stop.
    assert chunk_sizes(130, 260, (100, 30)) == [20, 30, 20, 10, 30, 10, 10]
    assert chunk_sizes(5, 5, (100,)) == []


class Killed(Exception):
    """Stands for a worker killed mid-run: the loop stops wherever its batches stop."""


def killed_after(chunks, steps: int):
    """The chunks, until `steps` steps have been fed; then the run dies."""
    fed = 0
    for chunk in chunks:
        if fed >= steps:
            raise Killed
        yield chunk
        fed += len(chunk)


def stop_signal_from(chunks, loop, start: int, step: int):
    """The chunks, a stop signal (SIGTERM, as Slurm sends before preempting) arriving while the
    chunk from `step` on runs."""
    fed = start
    for chunk in chunks:
        if fed >= step:
            loop.stop.signal = signal.SIGTERM
        yield chunk
        fed += len(chunk)


def tiny_training(out: Path, steps: int, checkpoint_every: int, validations: list | None = None,
                  killed_at: int | None = None, stop_from: int | None = None):
    """A small dense model with dropout and a cosine schedule, trained by TrainingLoop in chunks of
    whatever training_loop.STEPS_PER_CALL says (resuming from `out`'s newest checkpoint); returns
    (weights, history, result)."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(3)
    tf.config.experimental.enable_op_determinism()
    model = keras.Sequential([keras.Input((20,)), keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dropout(0.3), keras.layers.Dense(5)])
    optimizer = keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(1e-2, steps, alpha=0.1))
    optimizer.build(model.trainable_variables)
    loop = training_loop.TrainingLoop(out, model, optimizer, "train tiny", checkpoint_every=checkpoint_every,
                                      learning_rate=1e-2)
    rng = np.random.default_rng(0)
    data = np.concatenate([rng.normal(size=(steps, 16, 20)), rng.integers(0, 5, (steps, 16, 1))], -1)
    data = data.astype(np.float32)

    def forward(rows):
        logits = model(rows[:, :20], training=True)
        labels = tf.cast(rows[:, 20], tf.int32)
        loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
        hits = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels), tf.float32)
        return loss, {"accuracy": tf.reduce_sum(hits)}

    train_steps = training_loop.compile_train_step(
        tf.distribute.get_strategy(), model, optimizer, loop.step, tf.TensorSpec([16, 21], tf.float32), 16,
        forward, metrics=("accuracy",))
    sizes = loop.chunk_sizes(loop.resumed_from, steps)
    chunks = np.split(data[loop.resumed_from:], np.cumsum(sizes)[:-1])

    def validate(final):
        validations.append(final) if validations is not None else None
        return {"loss": 1.0 if final else 2.0, "samples": 10 if final else 4}

    if killed_at is not None:
        chunks = killed_after(chunks, killed_at)
    if stop_from is not None:
        chunks = stop_signal_from(chunks, loop, loop.resumed_from, stop_from)
    result = loop.run(train_steps, chunks, steps, validate, units_per_step=16)
    history = json.loads((out / "history.json").read_text())
    return [v.numpy() for v in model.variables], history, result


@pytest.mark.slow
def test_chunks_of_many_steps_learn_exactly_what_one_step_per_call_learns(tmp_path, monkeypatch):
    monkeypatch.setattr(training_loop, "STEPS_PER_CALL", 1)
    one, one_history, _ = tiny_training(tmp_path / "one", 230, checkpoint_every=70)
    monkeypatch.setattr(training_loop, "STEPS_PER_CALL", 50)
    chunked, chunked_history, result = tiny_training(tmp_path / "chunked", 230, checkpoint_every=70)
    assert result["final_step"] == 230
    assert len(one) == len(chunked) == 5  # kernels, biases and the dropout seed state
    for a, b in zip(one, chunked):
        np.testing.assert_array_equal(a, b)
    assert one_history == chunked_history  # per-step losses and accuracies too


@pytest.mark.slow
def test_validation_is_final_only_at_the_last_step_and_the_run_reports_it(tmp_path):
    validations = []
    _, history, result = tiny_training(tmp_path, 120, checkpoint_every=50, validations=validations)
    assert validations == [False, False, True]
    assert history["validation"] == [{"step": 50, "loss": 2.0, "samples": 4}, {"step": 100, "loss": 2.0, "samples": 4},
                                     {"step": 120, "loss": 1.0, "samples": 10}]
    assert result["val_loss"] == 1.0 and "val_samples" not in result
    assert result["validation_seconds"] >= 0 and result["checkpoint_seconds"] > 0


@pytest.mark.slow
def test_a_stop_signal_checkpoints_and_stops_except_in_the_last_chunk_which_finishes(tmp_path):
    from tasks.protocol import Stopped

    # Chunks of 50, 50 and 20 steps: a signal during the second stops the run at step 100.
    with pytest.raises(Stopped, match="SIGTERM at step 100"):
        tiny_training(tmp_path / "early", 120, checkpoint_every=50, stop_from=50)
    # During the last, only the final validation remains: the run finishes with it.
    validations = []
    _, history, result = tiny_training(tmp_path / "late", 120, checkpoint_every=50, validations=validations,
                                       stop_from=100)
    assert validations == [False, False, True]
    assert result["final_step"] == 120 and history["validation"][-1]["step"] == 120


@pytest.mark.slow
def test_a_chunk_that_crosses_a_checkpoint_step_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(training_loop, "chunk_sizes", lambda start, stop, every: [stop - start])
    with pytest.raises(RuntimeError, match="a chunk of 120 steps from step 0 crosses step 50"):
        tiny_training(tmp_path, 120, checkpoint_every=50)


@pytest.mark.slow
def test_a_run_killed_between_checkpoints_resumes_to_exactly_the_uninterrupted_run(tmp_path):
    reference, reference_history, _ = tiny_training(tmp_path / "reference", 230, checkpoint_every=70)
    # Calls end at 50, 70, 100, 140, 150, 200: killed after step 200, the run resumes from step 140.
    with pytest.raises(Killed):
        tiny_training(tmp_path / "killed", 230, checkpoint_every=70, killed_at=160)
    resumed, history, result = tiny_training(tmp_path / "killed", 230, checkpoint_every=70)
    assert result["resumed_from"] == 140 and result["final_step"] == 230
    for a, b in zip(reference, resumed, strict=True):
        np.testing.assert_array_equal(a, b)
    assert history == reference_history  # the steps past 140 the killed run took are not recorded twice

    # Killed after its last checkpoint (while exporting): the rerun trains nothing, validates nothing
    # and records nothing again.
    validations = []
    again, history, result = tiny_training(tmp_path / "killed", 230, checkpoint_every=70, validations=validations)
    assert result["resumed_from"] == result["final_step"] == 230 and validations == []
    assert history == reference_history and result["val_loss"] == 1.0
    for a, b in zip(reference, again, strict=True):
        np.testing.assert_array_equal(a, b)
