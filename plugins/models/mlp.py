"""Multi-layer perceptron: Flatten, Dense(hidden_units, relu), Dense(classes)."""
KIND = "image_classifier"
DEFAULTS = {"hidden_units": 100}
# Train with an XLA-compiled step (see image.jit_compile): on a CPU it does this small model's
# many elementwise ops in about half the CPU time.
JIT_COMPILE = True
# Checked before anything runs, like a setting (pipelines/plugin_checks.py).
LIMITS = {"hidden_units": {"minimum": 1}}


def build(spec: dict, hidden_units: int = 100):
    """spec: {"input_shape": [h, w, c], "num_classes": n}. Returns logits."""
    import keras

    return keras.Sequential(
        [
            keras.Input(shape=tuple(spec["input_shape"])),
            keras.layers.Flatten(),
            keras.layers.Dense(hidden_units, activation="relu"),
            keras.layers.Dense(spec["num_classes"]),
        ],
        name="mlp",
    )
