"""Which samples make up each training batch, as a pure function of the step.

Batch order depends only on (seed, step), so a run resumed from a checkpoint
at step k feeds exactly the batches an uninterrupted run feeds from step k:
the checkpoint only needs the step, not a shuffle buffer.
"""
from __future__ import annotations

import numpy as np

from plugins.errors import TfpipeError


def batch_indices(num_samples: int, batch_size: int, seed: int, start: int, stop: int) -> np.ndarray:
    """int32 array (stop - start, batch_size): sample indices of steps start..stop-1.

    Every epoch is a fresh seeded permutation; the last incomplete batch of an
    epoch is dropped so every step has the same shape.
    """
    if batch_size > num_samples:
        raise TfpipeError(f"batch_size={batch_size} is larger than the training set "
                          f"({num_samples} samples); lower batch_size")
    per_epoch = num_samples // batch_size
    rows = []
    step = start
    while step < stop:
        epoch, offset = divmod(step, per_epoch)
        order = np.random.default_rng([seed, epoch]).permutation(num_samples)
        batches = order[: per_epoch * batch_size].reshape(per_epoch, batch_size)
        take = min(per_epoch - offset, stop - step)
        rows.append(batches[offset: offset + take])
        step += take
    if not rows:
        return np.zeros((0, batch_size), dtype=np.int32)
    return np.concatenate(rows).astype(np.int32)
