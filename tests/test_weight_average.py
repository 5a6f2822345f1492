"""image.ema_momentum and text.ema_momentum: the exported model holds the moving average of the
weights, over about the last tenth of a short run at most."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tasks.training_loop import averaging_momentum
from tests.conftest import make_corpus, manifests, run_luigi


def test_the_momentum_covers_at_most_the_last_tenth_of_a_run():
    assert averaging_momentum(0.99, 4000) == 0.99  # the default run: as set
    assert averaging_momentum(0.99, 60) == pytest.approx(1 - 10 / 60)  # 0.99 would keep 55% of step 1
    assert averaging_momentum(0.9, 10) == 0.0  # ten steps or fewer: the last weights
    assert averaging_momentum(0.0, 4000) == 0.0


def checkpoint_values(folder: Path, step: int, prefix: str) -> dict[int, np.ndarray]:
    """{index: value} of the checkpoint's entries `prefix`/<index>/..."""
    import tensorflow as tf

    path = str(folder / "checkpoints" / f"ckpt-{step}")
    reader = tf.train.load_checkpoint(path)
    return {int(name.split("/")[-3]): reader.get_tensor(name) for name, _ in tf.train.list_variables(path)
            if name.startswith(prefix + "/")}


@pytest.mark.slow
@pytest.mark.parametrize("path", ["image", "text"])
def test_the_exported_model_holds_the_moving_average_of_the_weights(path, tiny, workspace, mirror, tmp_path):
    import keras

    twenty_steps = ["--steps", "20", "--checkpoint-every", "1", "--deterministic"]
    if path == "image":
        command = ["ImageRun", *tiny, "--model", "mlp", "--batch-size", "20", *twenty_steps]
    else:
        command = ["TextRun", "--corpus", str(make_corpus(tmp_path / "tiny.txt")), "--window", "10",
                   "--batch-size", "8", "--model-params", '{"units": 8, "embedding_dim": 4}', "--length", "5",
                   *twenty_steps]
    for momentum in ("0", "0.5"):
        run = run_luigi([*command, "--ema-momentum", momentum], workspace, mirror)
        assert run.returncode == 0, run
    folders = {json.loads(path.read_text())["record"]["ema_momentum"]: path.parent
               for path in manifests(workspace, "train")}
    assert sorted(folders) == [0.0, 0.5]  # 0.5 is at most 1 - 10/20: used as given
    plain, averaged = folders[0.0], folders[0.5]
    # The average does not change training: both runs reach the same weights at step 19.
    weights_19 = checkpoint_values(plain, 19, "model_variables")
    for index, value in checkpoint_values(averaged, 19, "model_variables").items():
        np.testing.assert_array_equal(value, weights_19[index])
    # Model variables that are not weights (a dropout's random state, integers) are not averaged.
    weights_20 = [value for _, value in sorted(checkpoint_values(plain, 20, "model_variables").items())
                  if np.issubdtype(value.dtype, np.floating)]
    # Keras keeps the average in the optimizer, built before Adam's two slots per weight: the first entries.
    slots = checkpoint_values(averaged, 19, "optimizer/_variables")
    average_19 = [slots[index] for index in sorted(slots)[:len(weights_20)]]
    assert [a.shape for a in average_19] == [w.shape for w in weights_20]
    expected = [0.5 * average + 0.5 * last for average, last in zip(average_19, weights_20)]
    exported = keras.models.load_model(averaged / "model.keras").get_weights()
    assert len(exported) == len(expected)
    for got, want, last in zip(exported, expected, weights_20):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
        assert not np.allclose(got, last)  # not the last weights
