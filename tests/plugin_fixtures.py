"""Out-of-tree plugin packages, "installed" as a dist-info folder on a path entry.

This is exactly what pip leaves behind for a wheel, so importlib.metadata sees
the distribution and its entry points without touching this project's files.
"""
from __future__ import annotations

from pathlib import Path

TINY_MODEL = '''
"""A third-party image model: one hidden layer of `width` units."""
KIND = "image_classifier"
DEFAULTS = {"width": 16}


def build(spec, width=16):
    import keras

    return keras.Sequential([keras.Input(shape=tuple(spec["input_shape"])), keras.layers.Flatten(),
                             keras.layers.Dense(width, activation="relu"),
                             keras.layers.Dense(spec["num_classes"])])
'''


def install_fake_distribution(site: Path, dist: str, version: str, modules: dict[str, str],
                              entry_points: dict[str, dict[str, str]]) -> Path:
    """Write modules plus `<dist>-<version>.dist-info` into `site`; return `site`."""
    site.mkdir(parents=True, exist_ok=True)
    for relative, source in modules.items():
        path = site / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = []
    for group, entries in entry_points.items():
        lines.append(f"[{group}]")
        lines.extend(f"{name} = {value}" for name, value in entries.items())
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return site


def install_tiny_model(site: Path) -> Path:
    return install_fake_distribution(
        site, "tfpipe-tinymodel", "0.3.1",
        {"tinymodel/__init__.py": "", "tinymodel/model.py": TINY_MODEL},
        {"tfpipe.models": {"tiny_mlp": "tinymodel.model"}},
    )


SUBCLASSED_MODEL = '''
"""A third-party image model written as a subclassed keras.Model with its own call()."""
KIND = "image_classifier"
DEFAULTS = {"width": 16, "dropout": 0.1}


def build(spec, width=16, dropout=0.1):
    import keras

    class BandNet(keras.Model):
        def __init__(self, num_classes, **kwargs):
            super().__init__(**kwargs)
            self.flatten = keras.layers.Flatten()
            self.hidden = keras.layers.Dense(width, activation="relu")
            self.drop = keras.layers.Dropout(dropout)
            self.out = keras.layers.Dense(num_classes)

        def call(self, x, training=False):
            return self.out(self.drop(self.hidden(self.flatten(x)), training=training))

    return BandNet(spec["num_classes"], name="band_net")
'''

MODULE_MODEL = '''
"""A third-party image model built from tf.Module layers that own their tf.Variables."""
KIND = "image_classifier"
DEFAULTS = {"width": 16}


def build(spec, width=16):
    import math

    import tensorflow as tf

    class Dense(tf.Module):
        def __init__(self, inputs, outputs, relu, name=None):
            super().__init__(name=name)
            limit = math.sqrt(6.0 / (inputs + outputs))
            self.w = tf.Variable(tf.random.uniform([inputs, outputs], -limit, limit), name="w")
            self.b = tf.Variable(tf.zeros([outputs]), name="b")
            self.relu = relu

        def __call__(self, x):
            y = tf.matmul(x, self.w) + self.b
            return tf.nn.relu(y) if self.relu else y

    class ModuleNet(tf.Module):
        def __init__(self):
            super().__init__(name="module_net")
            inputs = math.prod(spec["input_shape"])
            self.hidden = Dense(inputs, width, relu=True, name="hidden")
            self.out = Dense(width, spec["num_classes"], relu=False, name="out")

        def __call__(self, x):  # no `training`: tfpipe must not pass one
            return self.out(self.hidden(tf.reshape(x, [tf.shape(x)[0], -1])))

    return ModuleNet()
'''


def install_custom_models(site: Path) -> Path:
    """One distribution with a subclassed keras.Model plugin and a tf.Module plugin."""
    return install_fake_distribution(
        site, "tfpipe-custommodels", "1.0.0",
        {"custommodels/__init__.py": "", "custommodels/subclassed.py": SUBCLASSED_MODEL,
         "custommodels/module.py": MODULE_MODEL},
        {"tfpipe.models": {"band_net": "custommodels.subclassed", "module_net": "custommodels.module"}},
    )
