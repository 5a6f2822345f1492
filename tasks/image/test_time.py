"""Test-time augmentation (image.test_augment): predict from the mean of the logits of each image
and of its mirror image. Validation, the exported model and so the test figure all predict this
way, so what evaluation reports is what the exported model does.

Importable without TensorFlow (the Luigi process resolves the choice); the functions that build
graphs import it themselves.
"""
from __future__ import annotations

from typing import Any, Callable

TEST_AUGMENTS = ("auto", "none", "mirror")


def resolved_test_augment(choice: str, augment: str) -> str:
    """none or mirror: auto mirrors where training mirrors (a resolved image.augment), since only
    there is a mirror image known to keep its label."""
    if choice != "auto":
        return choice
    return "mirror" if "mirror" in augment.split("+") else "none"


def mirror_image(x: Any) -> Any:
    """Images (batch, height, width, channels) flipped left to right: a Keras op, so that it works on
    tensors in the worker's graphs and on the symbolic input of the saved Keras model alike."""
    import keras

    return keras.ops.flip(x, axis=2)


def predictor(call: Callable[[Any, bool], Any], test_augment: str) -> Callable[[Any], Any]:
    """`predict(x)`: inference logits of `call(x, training)`, averaged over each image and its mirror
    when test_augment is mirror."""
    if test_augment == "none":
        return lambda x: call(x, False)
    return lambda x: (call(x, False) + call(mirror_image(x), False)) / 2


def exported_model(model: Any, shape: list[int], test_augment: str) -> Any:
    """What is saved: `model` itself, or with mirror a Keras model sharing its weights whose output
    is the mean of the logits of the image and its mirror (loads with plain Keras, no tfpipe code).
    A bare tf.Module is returned as it is: export() serves it through `predictor`."""
    import keras

    if test_augment == "none" or not isinstance(model, keras.Model):
        return model
    x = keras.Input(shape=tuple(shape))
    mean = keras.layers.Average(name="mirror_mean")([model(x), model(mirror_image(x))])
    return keras.Model(x, mean, name=f"{model.name}_mirror_averaged")
