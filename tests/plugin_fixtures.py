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
