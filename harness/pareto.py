"""Pareto fronts over design points: which (network, hardware) pairs nothing else beats.

A point dominates another when it is at least as good in every objective and
strictly better in one. Objectives are plain numbers with a direction (``max``
for accuracy, ``min`` for energy, latency, parameters). Constraints (an energy
budget, a minimum accuracy, ...) filter points before fronts are computed, so the
front answers "the best choices within my budget". Plots go to PNG, SVG or PDF
through matplotlib (imported only when plotting).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from harness.errors import BenchUsageError

MAXIMIZE, MINIMIZE = "max", "min"


@dataclass(frozen=True)
class Objective:
    """One axis of a front: a metric key, whether larger is better, and how to label it."""

    key: str
    """The key in :attr:`DesignPoint.metrics`, e.g. ``"top1"`` or ``"energy"``."""
    sense: str = MINIMIZE
    """``"max"`` when larger is better (accuracy), ``"min"`` otherwise."""
    label: str = ""
    """Axis label for plots (default: the key)."""
    log: bool = False
    """Plot this axis on a log scale (metrics that span orders of magnitude)."""

    def better(self, a: float, b: float) -> bool:
        return a > b if self.sense == MAXIMIZE else a < b


@dataclass
class DesignPoint:
    """One evaluated design: a network on one hardware configuration, and its figures."""

    label: str
    """Short name for tables and plot annotations, e.g. ``"1.0-SqNxt-23v5"``."""
    group: str = ""
    """The hardware point it ran on (plots colour by group), e.g. ``"accel array=16x16"``."""
    metrics: dict[str, float | None] = field(default_factory=dict)
    """Objective values; ``None`` (or NaN) where unknown, e.g. a model with no cited accuracy."""
    info: dict[str, Any] = field(default_factory=dict)
    """Anything else to carry into tables (model, hardware, options, stored result id)."""

    def value(self, key: str) -> float | None:
        v = self.metrics.get(key)
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return None
        return float(v)


def dominates(a: Sequence[float], b: Sequence[float], objectives: Sequence[Objective]) -> bool:
    """True when ``a`` is at least as good as ``b`` everywhere and strictly better somewhere."""
    strictly = False
    for x, y, obj in zip(a, b, objectives):
        if obj.better(y, x):
            return False
        strictly = strictly or obj.better(x, y)
    return strictly


def pareto_mask(values: Sequence[Sequence[float]], objectives: Sequence[Objective]) -> list[bool]:
    """For each row of ``values`` (one column per objective), whether no other row dominates it.

    Identical rows do not dominate each other, so both stay on the front. Vectorised
    with numpy in blocks, so thousands of points take milliseconds.
    """
    import numpy as np

    if not len(values):
        return []
    signs = np.array([-1.0 if o.sense == MAXIMIZE else 1.0 for o in objectives])
    v = np.asarray(values, dtype=float) * signs  # now every objective is minimised
    if v.ndim != 2 or v.shape[1] != len(objectives):
        raise ValueError(f"expected {len(objectives)} values per point, got shape {v.shape}")
    keep = np.ones(len(v), dtype=bool)
    for start in range(0, len(v), 256):
        block = v[start:start + 256]  # (b, k) candidates against all (n, k) points
        no_worse = (v[None, :, :] <= block[:, None, :]).all(axis=2)
        better = (v[None, :, :] < block[:, None, :]).any(axis=2)
        keep[start:start + len(block)] = ~(no_worse & better).any(axis=1)
    return keep.tolist()


def front(points: Sequence[DesignPoint], objectives: Sequence[Objective]) -> tuple[
        list[DesignPoint], list[DesignPoint], list[DesignPoint]]:
    """Split points into ``(front, dominated, unknown)``; ``unknown`` lack a value for some
    objective (a network with no cited accuracy) and take no part."""
    known = [p for p in points if all(p.value(o.key) is not None for o in objectives)]
    unknown = [p for p in points if p not in known]
    mask = pareto_mask([[p.value(o.key) for o in objectives] for p in known], objectives)
    return ([p for p, m in zip(known, mask) if m], [p for p, m in zip(known, mask) if not m],
            unknown)


@dataclass(frozen=True)
class Constraint:
    """A budget: ``metric <= limit`` (``upper``) or ``metric >= limit``."""

    key: str
    """The metric, e.g. ``"energy"``."""
    limit: float
    """The bound."""
    upper: bool = True
    """``True`` for a maximum (``--max-energy``), ``False`` for a minimum (``--min-top1``)."""
    option: str = ""
    """The command-line option that set it, for messages."""

    def allows(self, point: DesignPoint) -> bool:
        v = point.value(self.key)
        if v is None:
            return False
        return v <= self.limit if self.upper else v >= self.limit

    def describe(self) -> str:
        return f"{self.key} {'<=' if self.upper else '>='} {self.limit:g}"


def apply_constraints(points: Iterable[DesignPoint], constraints: Sequence[Constraint]) -> tuple[
        list[DesignPoint], list[tuple[DesignPoint, str]]]:
    """``(kept, rejected)``; each rejected point comes with the first constraint it breaks
    (a point with no value for a constrained metric breaks it: it cannot be shown to hold)."""
    kept, rejected = [], []
    for p in points:
        broken = next((c for c in constraints if not c.allows(p)), None)
        if broken is None:
            kept.append(p)
        else:
            why = "no value" if p.value(broken.key) is None else "exceeds" if broken.upper else "below"
            rejected.append((p, f"{broken.option or broken.key}: {why} ({broken.describe()})"))
    return kept, rejected


# --------------------------------------------------------------------------- plots
PLOT_SUFFIXES = (".png", ".svg", ".pdf")


def check_plot_path(path: str) -> str:
    suffix = path[path.rfind("."):].lower() if "." in path else ""
    if suffix not in PLOT_SUFFIXES:
        raise BenchUsageError(f"--plot '{path}': expected a file ending in "
                              + ", ".join(PLOT_SUFFIXES))
    return path


def plot_fronts(points: Sequence[DesignPoint], y: Objective, xs: Sequence[Objective], path: str,
                title: str = "", annotate: bool = True) -> None:
    """One panel per x objective: every point, front points joined and labelled, dominated
    points as grey crosses. The file type follows the suffix of ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(dict.fromkeys(p.group for p in points))
    colours = plt.get_cmap("tab10")
    fig, axes = plt.subplots(1, len(xs), figsize=(5.2 * len(xs), 4.6), squeeze=False)
    for ax, x in zip(axes[0], xs):
        on, off, _ = front(points, [x, y])
        if off:
            ax.scatter([p.value(x.key) for p in off], [p.value(y.key) for p in off], marker="x",
                       color="0.65", s=22, linewidths=1, label="dominated", zorder=2)
        for i, g in enumerate(groups):
            mine = [p for p in on if p.group == g]
            if mine:
                ax.scatter([p.value(x.key) for p in mine], [p.value(y.key) for p in mine],
                           color=colours(i % 10), s=36, edgecolors="black", linewidths=0.5,
                           label=g or "front", zorder=3)
        stairs = sorted(on, key=lambda p: (p.value(x.key), p.value(y.key)), reverse=x.better(2, 1))
        ax.step([p.value(x.key) for p in stairs], [p.value(y.key) for p in stairs], where="post",
                color="black", linewidth=0.8, alpha=0.6, zorder=1)
        if annotate:  # once per spot: hardware-independent axes stack identical points
            for text, xy in dict.fromkeys((p.label, (p.value(x.key), p.value(y.key))) for p in on):
                ax.annotate(text, xy, fontsize=6.5, xytext=(4, 3), textcoords="offset points")
        if x.log:
            ax.set_xscale("log")
        ax.set_xlabel(x.label or x.key)
        ax.set_ylabel(y.label or y.key)
        ax.set_title(f"{y.label or y.key} vs {x.label or x.key}: {len(on)} on the front",
                     fontsize=9)
        ax.grid(True, alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    for ax in axes[0][1:]:
        for h, l in zip(*ax.get_legend_handles_labels()):
            if l not in labels:
                handles.append(h)
                labels.append(l)
    if labels:  # none when no point has the accuracy the fronts need
        fig.legend(handles, labels, loc="lower center", ncol=min(6, len(labels)), fontsize=8,
                   frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.08, 1, 0.95 if title else 1))
    fig.savefig(path, dpi=130)
    plt.close(fig)

