"""The figure for ``bench rank --plot FILE``: fitted curves beside predicted time-to-eps."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from harness.errors import BenchUsageError
from plugins.hemingway.fitting import AlgorithmFit


def check_plot_path(path: str) -> None:
    """Fail before any fitting when matplotlib cannot write this file type."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backend_bases import FigureCanvasBase

    supported = FigureCanvasBase.get_supported_filetypes()
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in supported:
        raise BenchUsageError(
            f"--plot '{path}': unknown image type '{suffix or '(none)'}'; use one of "
            + ", ".join(sorted(supported))
        )


def plot(fits: Sequence[AlgorithmFit], rows: Sequence[dict[str, Any]], eps: float,
         title: str, path: str) -> None:
    """Left: measured (solid) and fitted (dashed) suboptimality per algorithm, one colour
    per m. Right: predicted T(eps, m) per algorithm with its bootstrap interval
    (band) and the measured times (dots)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    height = max(6.0, 2.6 * len(fits))
    fig = plt.figure(figsize=(13, height), layout="constrained")
    grid = fig.add_gridspec(len(fits), 2, width_ratios=(1, 1.2))
    colours = plt.get_cmap("viridis")
    for k, fit in enumerate(fits):
        ax = fig.add_subplot(grid[k, 0])
        sizes = fit.sizes
        for run in fit.runs:
            colour = colours(sizes.index(run.ranks) / max(1, len(sizes) - 1))
            ok = np.isfinite(run.subopt) & (run.subopt > 0)
            ax.plot(run.iteration[ok], run.subopt[ok], color=colour, lw=1.2, label=f"m={run.ranks}")
            i = np.arange(0, max(2, run.iterations_run) + 1)
            ax.plot(i, fit.convergence.subopt_after(i, np.full(i.shape, float(run.ranks))),
                    color=colour, lw=1, ls="--")
        ax.axhline(eps, color="black", lw=0.8, ls=":")
        ax.set_yscale("log")
        ax.set_ylabel("suboptimality")
        ax.set_title(f"{fit.algorithm}: measured (solid), fitted (dashed)", fontsize=9)
        handles, labels = ax.get_legend_handles_labels()
        unique = dict(zip(labels, handles))
        ax.legend(unique.values(), unique.keys(), fontsize=7, ncol=2)
        if k == len(fits) - 1:
            ax.set_xlabel("iteration")

    ax = fig.add_subplot(grid[:, 1])
    for fit in fits:
        mine = sorted((r for r in rows if r["algorithm"] == fit.algorithm), key=lambda r: r["m"])
        m = np.array([r["m"] for r in mine])
        line, = ax.plot(m, [r["time_s"] for r in mine], lw=1.5, label=fit.algorithm)
        lo = np.array([r["time_lo_s"] for r in mine], dtype=float)
        hi = np.array([r["time_hi_s"] for r in mine], dtype=float)
        band = np.isfinite(lo) & np.isfinite(hi)
        ax.fill_between(m[band], lo[band], hi[band], color=line.get_color(), alpha=0.15)
        measured = [(r["m"], r["measured_time_s"]) for r in mine if r["measured_time_s"]]
        if measured:
            ax.plot(*zip(*measured), "o", color=line.get_color(), ms=5)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("cluster size m (ranks)")
    ax.set_ylabel(f"time to suboptimality {eps:g} (s)")
    ax.set_title("predicted (line, 90% band) and measured (dots)", fontsize=9)
    ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    try:
        fig.savefig(path, dpi=110)
    except OSError as exc:
        raise BenchUsageError(f"cannot write --plot file '{path}': {exc.strerror}") from None
    finally:
        plt.close(fig)
