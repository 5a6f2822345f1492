"""Two 5x5 conv/pool blocks and a dense layer, as in the classic MNIST tutorial."""
KIND = "image_classifier"
DEFAULTS = {"filters1": 32, "filters2": 64, "dense_units": 1024, "dropout": 0.0}
# Train and evaluate with oneDNN's CPU kernels (see image.onednn): on a 2-core AVX2 CPU, where
# TensorFlow leaves them off, they run this model's convolutions 1.5x as fast.
ONEDNN = True
# Checked before anything runs, like a setting (pipelines/plugin_checks.py).
LIMITS = {"filters1": {"minimum": 1}, "filters2": {"minimum": 1}, "dense_units": {"minimum": 1},
          "dropout": {"minimum": 0, "maximum": 1, "open_max": True}}


def build(spec: dict, filters1: int = 32, filters2: int = 64, dense_units: int = 1024,
          dropout: float = 0.0):
    """spec: {"input_shape": [h, w, c], "num_classes": n}. Returns logits."""
    import keras
    from keras import layers

    return keras.Sequential(
        [
            keras.Input(shape=tuple(spec["input_shape"])),
            layers.Conv2D(filters1, 5, padding="same", activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(filters2, 5, padding="same", activation="relu"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(dense_units, activation="relu"),
            layers.Dropout(dropout),
            layers.Dense(spec["num_classes"]),
        ],
        name="cnn",
    )
