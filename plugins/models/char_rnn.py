"""The shape both built-in character models share: embedding, one recurrent layer, logits."""


def build_char_rnn(name: str, recurrent_layer, spec: dict, units: int, embedding_dim: int, dropout: float):
    """spec: {"vocab_size": n}. Maps int ids (batch, time) to logits (batch, time, n)."""
    import keras
    from keras import layers

    return keras.Sequential(
        [
            keras.Input(shape=(None,), dtype="int32"),
            layers.Embedding(spec["vocab_size"], embedding_dim),
            recurrent_layer(units, return_sequences=True),
            layers.Dropout(dropout),
            layers.Dense(spec["vocab_size"]),
        ],
        name=name,
    )
