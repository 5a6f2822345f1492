"""Tiny generated data and a config that makes FullRun fast (for benchmarks of the machinery)."""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import make_image_set, write_idx_folder  # noqa: E402


def write_tiny_config(folder: Path) -> Path:
    """Mirror data under folder/mirror and folder/tiny.yaml selecting it; return the config path."""
    write_idx_folder(folder / "mirror" / "tiny", make_image_set())
    config = folder / "tiny.yaml"
    config.write_text(
        "image:\n  dataset: tiny\n  model: mlp\n  steps: 60\n  batch_size: 20\n"
        "  checkpoint_every: 20\n  validation_size: 50\n"
    )
    return config
