"""Character language model: embedding, one LSTM layer, dropout, logits over the vocabulary."""
KIND = "char_language_model"
DEFAULTS = {"units": 256, "embedding_dim": 64, "dropout": 0.2}


def build(spec: dict, units: int = 256, embedding_dim: int = 64, dropout: float = 0.2):
    """spec: {"vocab_size": n}. Maps int ids (batch, time) to logits (batch, time, n)."""
    import keras
    from keras import layers

    return keras.Sequential(
        [
            keras.Input(shape=(None,), dtype="int32"),
            layers.Embedding(spec["vocab_size"], embedding_dim),
            layers.LSTM(units, return_sequences=True),
            layers.Dropout(dropout),
            layers.Dense(spec["vocab_size"]),
        ],
        name="lstm",
    )
