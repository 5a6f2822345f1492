"""The stateful generator against the full model, in this process (TensorFlow, tiny models)."""
import json

import numpy as np
import pytest

from plugins.errors import TfpipeError

pytestmark = pytest.mark.slow

tf = pytest.importorskip("tensorflow")


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_stepper_matches_the_full_model_on_the_whole_prefix(name):
    from plugins import registry
    from tasks.text.rnn import Stepper

    model = registry.load("models", name).build({"vocab_size": 13}, units=24, embedding_dim=6, dropout=0.5)
    ids = np.random.default_rng(0).integers(0, 13, size=(3, 30)).astype(np.int32)
    full = tf.nn.softmax(model(ids, training=False)).numpy()  # (3, 30, 13)
    stepper = Stepper(model)
    states = stepper.initial_state(3)
    step = tf.function(stepper.step)
    for t in range(ids.shape[1]):
        logits, states = step(tf.constant(ids[:, t]), states)
        np.testing.assert_allclose(tf.nn.softmax(logits).numpy(), full[:, t], atol=1e-5)


def test_sampler_is_seeded_and_batches_temperatures():
    from plugins.models import lstm
    from tasks.text.rnn import Sampler

    sampler = Sampler(lstm.build({"vocab_size": 9}, units=16, embedding_dim=4))
    seed = np.array([1, 2, 3], dtype=np.int32)
    first = sampler(seed, [0.2, 1.0, 1.5], 25, seed=7)
    assert first.shape == (3, 25) and first.min() >= 0 and first.max() < 9
    np.testing.assert_array_equal(first, sampler(seed, [0.2, 1.0, 1.5], 25, seed=7))
    assert not np.array_equal(first, sampler(seed, [0.2, 1.0, 1.5], 25, seed=8))


def test_sampling_at_a_low_temperature_follows_the_model():
    """At a tiny temperature a sample is the argmax of the full model's next-char distribution."""
    from plugins.models import gru
    from tasks.text.rnn import Sampler

    model = gru.build({"vocab_size": 7}, units=8, embedding_dim=3)
    dense = model.layers[-1]
    dense.kernel.assign(dense.kernel * 30.0)  # spread the logits so the argmax is clear-cut
    seed = np.array([4, 1, 6, 2], dtype=np.int32)
    drawn = Sampler(model)(seed, [1e-4], 6, seed=0)[0]
    text = list(seed)
    for char in drawn:
        expected = int(np.argmax(model(np.array([text], np.int32), training=False).numpy()[0, -1]))
        assert char == expected
        text.append(char)


def test_model_and_data_vocabulary_mismatch_is_an_error(tmp_path):
    from plugins.models import lstm
    from tasks.text.rnn import load_char_model

    lstm.build({"vocab_size": 4}, units=4, embedding_dim=2).save(str(tmp_path / "model.keras"))
    (tmp_path / "vocab.json").write_text(json.dumps(["a", "b", "c", "d"]))
    assert load_char_model(tmp_path, ["a", "b", "c", "d"], "m").output_shape[-1] == 4
    with pytest.raises(TfpipeError, match="different vocabulary"):
        load_char_model(tmp_path, ["a", "b", "c", "e"], str(tmp_path))
    (tmp_path / "vocab.json").unlink()
    with pytest.raises(TfpipeError, match="predicts 4 characters but the vocabulary has 5"):
        load_char_model(tmp_path, list("abcde"), str(tmp_path))
