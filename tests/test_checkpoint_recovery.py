"""Training never restarts from zero while a restorable checkpoint exists in its folder."""
from pathlib import Path

import pytest

from plugins.errors import TfpipeError
from tasks.checkpoints import checkpoint_steps

pytestmark = pytest.mark.slow  # imports TensorFlow


def loop_in(folder: Path):
    """A tiny model's TrainingLoop over `folder` (restores whatever checkpoint it can)."""
    import keras
    import tensorflow as tf

    from tasks.training_loop import TrainingLoop

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    optimizer = keras.optimizers.Adam(0.01)
    optimizer.build(model.trainable_variables)
    loop = TrainingLoop(folder, model, optimizer, "train tiny", checkpoint_every=2, learning_rate=0.01)

    @tf.function
    def step(batch):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(batch)))
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        loop.step.assign_add(1)
        return {"loss": loss}

    return loop, step


def train(folder: Path, total: int) -> int:
    import numpy as np

    loop, step = loop_in(folder)
    batches = [np.full((4, 3), 0.1 * i, np.float32) for i in range(loop.resumed_from, total)]
    loop.run(step, batches, total, lambda final: {"loss": 0.0}, units_per_step=4)
    return loop.resumed_from


@pytest.fixture
def trained(tmp_path) -> Path:
    train(tmp_path, 6)
    assert checkpoint_steps(tmp_path) == [6, 4, 2]
    return tmp_path


def test_a_lost_state_file_resumes_from_the_newest_checkpoint(trained):
    (trained / "checkpoints" / "checkpoint").unlink()
    assert loop_in(trained)[0].resumed_from == 6


def test_a_garbled_state_file_resumes_from_the_newest_checkpoint(trained):
    (trained / "checkpoints" / "checkpoint").write_text("garbage {{{")
    assert train(trained, 8) == 6
    assert checkpoint_steps(trained)[0] == 8  # and training went on from there


def test_a_truncated_checkpoint_falls_back_to_the_one_before(trained, capsys):
    data = next((trained / "checkpoints").glob("ckpt-6.data-*"))
    data.write_bytes(data.read_bytes()[:10])
    assert loop_in(trained)[0].resumed_from == 4
    out = capsys.readouterr().out
    assert "skipping checkpoint" in out and "ckpt-6" in out


def test_when_none_restores_the_run_stops_naming_the_folder_and_deletes_nothing(trained):
    for data in (trained / "checkpoints").glob("ckpt-*.data-*"):
        data.write_bytes(b"x")
    with pytest.raises(TfpipeError, match=r"no checkpoint in .*checkpoints restores.*mv .*checkpoints"):
        loop_in(trained)
    assert checkpoint_steps(trained) == [6, 4, 2]
