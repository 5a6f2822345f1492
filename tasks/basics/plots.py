"""PNG plots of the basics runs: linear regression fits and eager-vs-graph timings."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from tasks.plots import _pyplot, save_figure


def linreg_png(x: Sequence[float], y: Sequence[float], fits: dict[str, list[dict[str, float]]],
               original: dict[str, Any], path: Path) -> None:
    """One panel per method (normalised data and the line at every recorded step), then the
    final fits in original units. `original`: {"x", "y", "lines": {method: (slope, intercept)}}."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(fits) + 1, figsize=(5.0 * (len(fits) + 1), 4.2))
    grid = np.linspace(0.0, 1.0, 50)
    for ax, (method, snapshots) in zip(axes, fits.items()):
        ax.scatter(x, y, color="black", zorder=3, label="data")
        colors = plt.cm.viridis(np.linspace(0.15, 0.9, max(len(snapshots), 1)))
        for color, snap in zip(colors, snapshots):
            ax.plot(grid, snap["a"] * grid + snap["b"], color=color,
                    label=f"step {snap['step']}: a={snap['a']:.4f} b={snap['b']:.4f}")
        ax.set_title(f"{method} (normalised)")
        ax.set_xlabel("year (min-max)")
        ax.set_ylabel("price (min-max)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    ax = axes[-1]
    xs = np.asarray(original["x"], dtype=float)
    ax.scatter(xs, original["y"], color="black", zorder=3, label="data")
    span = np.linspace(xs.min(), xs.max(), 50)
    for style, (method, (slope, intercept)) in zip(("-", "--", ":"), original["lines"].items()):
        ax.plot(span, slope * span + intercept, style, label=f"{method}: {slope:,.1f} per year")
    ax.set_title("final fit, original units")
    ax.set_xlabel("year")
    ax.set_ylabel("price")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)
    plt.close(fig)


def speedup_png(timings: dict[str, dict[str, float]], path: Path, title: str) -> None:
    """Grouped bars: median milliseconds per call, eager vs tf.function, per model."""
    plt = _pyplot()
    models = list(timings)
    fig, ax = plt.subplots(figsize=(6.5, 4.0))
    width = 0.38
    for offset, mode in ((-width / 2, "eager"), (width / 2, "graph")):
        values = [timings[m][f"{mode}_median_ms"] for m in models]
        bars = ax.bar(np.arange(len(models)) + offset, values, width, label=mode)
        ax.bar_label(bars, labels=[f"{v:.2f}" for v in values], fontsize=8)
    ax.set_xticks(range(len(models)), [f"{m}\n(x{timings[m]['speedup']:.2f})" for m in models])
    ax.set_ylabel("median ms per call")
    ax.set_title(title, fontsize=9)
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    save_figure(fig, path)
    plt.close(fig)
