"""The shape both built-in character models share: embedding, one recurrent layer, logits."""


def build_char_rnn(name: str, recurrent_layer, spec: dict, units: int, embedding_dim: int, dropout: float,
                   input_dropout: float, recurrent_dropout: float):
    """spec: {"vocab_size": n}. Maps int ids (batch, time) to logits (batch, time, n).
    `input_dropout` drops embedding features with one mask per sequence (a dropped feature stays
    dropped along the window), `recurrent_dropout` the recurrent state's features (Keras's own;
    1.5x slower on a 2-core CPU in the one run measured), `dropout` the recurrent layer's outputs."""
    import keras
    from keras import layers

    return keras.Sequential(
        [
            keras.Input(shape=(None,), dtype="int32"),
            layers.Embedding(spec["vocab_size"], embedding_dim),
            *([layers.SpatialDropout1D(input_dropout)] if input_dropout else []),
            recurrent_layer(units, return_sequences=True, recurrent_dropout=recurrent_dropout),
            layers.Dropout(dropout),
            layers.Dense(spec["vocab_size"]),
        ],
        name=name,
    )
