"""image.ema_momentum: the exported model holds the moving average of the weights."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import manifests, run_luigi

pytestmark = pytest.mark.slow


def checkpoint_weights(folder: Path, step: int) -> list[np.ndarray]:
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(folder / "checkpoints" / f"ckpt-{step}"))
    names = sorted((name for name, _ in tf.train.list_variables(str(folder / "checkpoints" / f"ckpt-{step}"))
                    if name.startswith("model_variables/")), key=lambda name: int(name.split("/")[1]))
    return [reader.get_tensor(name) for name in names]


def test_the_exported_model_holds_the_moving_average_of_the_weights(tiny, workspace, mirror):
    import keras

    two_steps = ["--model", "mlp", "--steps", "2", "--checkpoint-every", "1", "--batch-size", "20",
                 "--deterministic"]
    for momentum in ("0", "0.5"):
        run = run_luigi(["ImageRun", *tiny, *two_steps, "--ema-momentum", momentum], workspace, mirror)
        assert run.returncode == 0, run
    folders = {json.loads(path.read_text())["record"]["ema_momentum"]: path.parent
               for path in manifests(workspace, "train")}
    assert sorted(folders) == [0.0, 0.5]
    # The average does not change training: both runs take the same first step.
    first = checkpoint_weights(folders[0.0], 1)
    for plain, averaged_run in zip(first, checkpoint_weights(folders[0.5], 1)):
        np.testing.assert_array_equal(plain, averaged_run)
    last = checkpoint_weights(folders[0.0], 2)
    assert any(not np.array_equal(a, b) for a, b in zip(first, last))
    # Keras's average starts at the first step's weights, then weighs itself by the momentum.
    expected = [0.5 * a + 0.5 * b for a, b in zip(first, last)]
    exported = keras.models.load_model(folders[0.5] / "model.keras").get_weights()
    assert len(exported) == len(expected)
    for got, want in zip(exported, expected):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
