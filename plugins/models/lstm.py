"""Character language model: embedding, one LSTM layer, dropout, logits over the vocabulary."""
from plugins.models.char_rnn import build_char_rnn

KIND = "char_language_model"
# Literals: the registry reads them from the source without importing the plugin.
# input_dropout 0.1 (was 0), with text.weight_decay 0.1: validation 1.923 and 1.921 bits/char on
# seeds 1 and 2 against 1.954 and 1.961 without either (README, "Quality per minute").
# dropout 0.3 (was 0.2), with text.steps 6,000 (was 3,200): the longer run needs it (0.4 was worse).
DEFAULTS = {"units": 256, "embedding_dim": 64, "dropout": 0.3, "input_dropout": 0.1, "recurrent_dropout": 0.0}
# Checked before anything runs, like a setting (pipelines/plugin_checks.py).
LIMITS = {"units": {"minimum": 1}, "embedding_dim": {"minimum": 1},
          "dropout": {"minimum": 0, "maximum": 1, "open_max": True},
          "input_dropout": {"minimum": 0, "maximum": 1, "open_max": True},
          "recurrent_dropout": {"minimum": 0, "maximum": 1, "open_max": True}}


def build(spec: dict, **hparams):
    """spec: {"vocab_size": n}; hparams: any of DEFAULTS' keys. Maps int ids (batch, time) to
    logits (batch, time, n)."""
    import keras

    return build_char_rnn("lstm", keras.layers.LSTM, spec, **{**DEFAULTS, **hparams})
