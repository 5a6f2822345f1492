"""text.weight_decay (decoupled, as AdamW) and the character models' input and recurrent dropout."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tasks.training_loop import adam
from tests.conftest import make_corpus, manifests, run_luigi


@pytest.mark.parametrize("decay", [0.0, 0.5])
def test_each_step_shrinks_every_weight_by_the_decay_times_the_learning_rate(decay):
    import keras

    optimizer, _ = adam({"steps": 10, "learning_rate": 0.1, "lr_schedule": "constant", "weight_decay": decay})
    weight = keras.Variable(np.full((3,), 2.0, np.float32))
    optimizer.apply_gradients([(np.zeros((3,), np.float32), weight)])  # Adam moves nothing on a zero gradient
    np.testing.assert_allclose(weight.numpy(), 2.0 * (1 - decay * 0.1), rtol=1e-6)


def test_the_lstm_plugin_hands_its_dropouts_to_keras():
    import keras

    from plugins.models import lstm

    model = lstm.build({"vocab_size": 7}, units=4, embedding_dim=3, input_dropout=0.25, recurrent_dropout=0.125)
    (input_drop,) = [layer for layer in model.layers if isinstance(layer, keras.layers.SpatialDropout1D)]
    (recurrent,) = [layer for layer in model.layers if isinstance(layer, keras.layers.LSTM)]
    assert (input_drop.rate, recurrent.recurrent_dropout) == (0.25, 0.125)
    assert not any(isinstance(layer, keras.layers.SpatialDropout1D)  # no dead layer at rate 0
                   for layer in lstm.build({"vocab_size": 7}, units=4, input_dropout=0.0).layers)


def test_input_dropout_drops_in_training_only():
    from plugins.models import lstm

    ids = np.arange(6, dtype=np.int32)[None, :]
    model = lstm.build({"vocab_size": 7}, units=4, embedding_dim=3, dropout=0.0, input_dropout=0.5)
    inference = model(ids, training=False)
    np.testing.assert_array_equal(model(ids, training=False), inference)
    assert not np.allclose(model(ids, training=True), inference)  # the only dropout left is the input's
    plain = lstm.build({"vocab_size": 7}, units=4, embedding_dim=3, dropout=0.0, input_dropout=0.0)
    np.testing.assert_allclose(plain(ids, training=True), plain(ids, training=False), rtol=1e-6)


@pytest.mark.slow
def test_a_text_run_with_weight_decay_records_it_and_ends_with_smaller_weights(workspace, mirror, tmp_path):
    import keras

    command = ["TextRun", "--corpus", str(make_corpus(tmp_path / "tiny.txt")), "--window", "10", "--batch-size", "8",
               "--model-params", '{"units": 8, "embedding_dim": 4}', "--steps", "20", "--length", "5",
               "--ema-momentum", "0", "--deterministic"]
    for decay in ("0", "2"):
        run = run_luigi([*command, "--weight-decay", decay], workspace, mirror)
        assert run.returncode == 0, run
    folders = {json.loads(path.read_text())["record"]["weight_decay"]: path.parent
               for path in manifests(workspace, "train")}
    assert sorted(folders) == [0.0, 2.0]

    def norm(folder):
        model = keras.models.load_model(str(folder / "model.keras"), compile=False)
        return float(np.sqrt(sum(np.sum(np.square(w)) for w in model.get_weights())))

    assert norm(folders[2.0]) < 0.9 * norm(folders[0.0])
