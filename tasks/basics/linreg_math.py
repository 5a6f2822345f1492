"""Linear regression by hand: min-max scaling and gradient descent in plain numpy (pure functions).

The TensorFlow twin (work() runs in a TensorFlow process) fits the same loss, 0.5 * sum((a*x + b - y)^2),
with tf.GradientTape and SGD; both start from a = b = 0 so their snapshots agree.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

# The classic exercise: house prices for the years 2013-2017.


class BadInput(ValueError):
    """Data that cannot be fitted (non-finite, mismatched or constant)."""


@dataclass
class Fit:
    """Snapshots of (a, b, loss) every `record_every` steps; `diverged_at` is the first
    step whose a, b or loss was not finite (None when the fit stayed finite)."""

    snapshots: list[dict[str, float]] = field(default_factory=list)
    diverged_at: int | None = None


def check_data(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Both series as float64 arrays; raises BadInput saying what is wrong."""
    xs, ys = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if xs.ndim != 1 or ys.ndim != 1 or len(xs) != len(ys):
        raise BadInput(f"x and y must be two lists of the same length (got {len(xs)} and {len(ys)} values)")
    if len(xs) < 2:
        raise BadInput("need at least two points to fit a line")
    for name, values in (("x", xs), ("y", ys)):
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise BadInput(f"{name} has non-finite values at positions {bad.tolist()}: "
                           f"{values[bad].tolist()}; every value must be a finite number")
        if values.max() == values.min():
            raise BadInput(f"{name} is constant ({values[0]}); min-max scaling needs two distinct values")
    return xs, ys


def min_max(values: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Scale to [0, 1]; also return (min, max) to map back."""
    low, high = float(values.min()), float(values.max())
    return (values - low) / (high - low), low, high


def fit_numpy(x: np.ndarray, y: np.ndarray, learning_rate: float, steps: int, record_every: int,
              a: float = 0.0, b: float = 0.0) -> Fit:
    """Gradient descent with hand-written gradients: da = sum((y_pred - y) * x), db = sum(y_pred - y)."""
    fit = Fit()
    with np.errstate(over="ignore", invalid="ignore"):
        for step in range(1, steps + 1):
            error = a * x + b - y
            a, b = a - learning_rate * float(error @ x), b - learning_rate * float(error.sum())
            loss = 0.5 * float(np.sum((a * x + b - y) ** 2))
            if not (np.isfinite(a) and np.isfinite(b) and np.isfinite(loss)):
                fit.diverged_at = step
                return fit
            if step % record_every == 0 or step == steps:
                fit.snapshots.append({"step": step, "a": a, "b": b, "loss": loss})
    return fit


def to_original_units(a: float, b: float, x_range: tuple[float, float],
                      y_range: tuple[float, float]) -> tuple[float, float]:
    """Slope and intercept of the normalised fit in original units: y = slope * x + intercept."""
    (x_lo, x_hi), (y_lo, y_hi) = x_range, y_range
    slope = a * (y_hi - y_lo) / (x_hi - x_lo)
    intercept = y_lo + b * (y_hi - y_lo) - slope * x_lo
    return slope, intercept


def compare(numpy_fit: Fit, tf_fit: Fit) -> float:
    """Largest |difference| of a or b between the two fits at the same steps."""
    pairs = zip(numpy_fit.snapshots, tf_fit.snapshots)
    return max((abs(n[k] - t[k]) for n, t in pairs for k in ("a", "b")), default=float("nan"))
