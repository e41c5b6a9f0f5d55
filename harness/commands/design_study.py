"""``bench design-study``: the SqueezeNext paper's hardware study, reproduced in one command.

Gholami et al. (CVPR-W 2018) simulated each SqueezeNext variant on an embedded
accelerator and changed the network where the PEs sat idle: a smaller first
layer, blocks moved out of the few-channel first stage (v1 -> v5). This command
runs the same study on the ``accel`` simulator:

1. the table: v1..v5, SqueezeNet 1.0 and AlexNet on each array size, with
   speed-up and energy efficiency against SqueezeNet 1.0 and against AlexNet;
2. the four headline ratios of v5 on the reference hardware next to the paper's
   (2.59x / 2.25x against SqueezeNet 1.0, 8.26x / 7.5x against AlexNet);
3. the per-layer utilisation view behind each change: first layer, 1x1 squeeze,
   separable 3x1/1x3, expand, shortcut, vector layers, and each stage's share;
4. the four ratios under each on-chip policy (``onchip=none|fuse|reuse``: every
   feature map through DRAM, adds fused into the producing convolution, and
   feature maps kept in the global buffer when they fit);
5. the sensitivity of the four ratios to one parameter at a time (array,
   buffers, DRAM bandwidth, DRAM energy, dataflow, weight double-buffering,
   on-chip policy, batch);
6. plots of all of it (``--plot-dir``).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, Sequence

import click

from harness import params, paths
from harness.cli import open_store, record_result, split_names, store_option
from harness.errors import BenchUsageError
from harness.output import render, to_json, write
from harness.plugins.manager import get_plugin_manager

VARIANTS = ("1.0-SqNxt-23", "1.0-SqNxt-23v2", "1.0-SqNxt-23v3", "1.0-SqNxt-23v4",
            "1.0-SqNxt-23v5")
BASELINES = ("squeezenet1_0", "alexnet")
BEST = "1.0-SqNxt-23v5"
# The paper's abstract: v5 is 2.59x / 8.26x faster and 2.25x / 7.5x more energy efficient
# than SqueezeNet / AlexNet.
PAPER = {("squeezenet1_0", "speed-up"): 2.59, ("squeezenet1_0", "energy eff."): 2.25,
         ("alexnet", "speed-up"): 8.26, ("alexnet", "energy eff."): 7.5}
TOLERANCE = 0.15

# One parameter at a time around the reference hardware: (label, values, options per value).
BUFFERS = (16, 32, 64, 128, 256, 512)
SENSITIVITY: tuple[tuple[str, tuple[Any, ...]], ...] = (
    ("array", ("8x8", "16x16", "32x32")),
    ("buffer KiB (each of 3)", BUFFERS),
    ("dram_bw", (2, 4, 8, 16, 32)),
    ("cost_dram", (100, 200, 400)),
    ("dataflow", ("best", "ws", "os")),
    ("rf_words", (1, 2)),
    ("onchip", ("none", "fuse", "reuse")),
    ("batch", (1, 4, 16)),
)
ONCHIP = ("none", "fuse", "reuse")  # accel's on-chip policies, DRAM-everything first


def _sensitivity_options(parameter: str, value: Any) -> tuple[list[str], int]:
    """``(hw_opts, batch)`` for one sensitivity setting."""
    if parameter.startswith("buffer"):
        return [f"{k}={value}" for k in ("ifmap_kib", "weight_kib", "ofmap_kib")], 1
    if parameter == "batch":
        return [], int(value)
    return [f"{parameter}={value}"], 1


# --------------------------------------------------------------------------- layer roles
ROLES = (  # (role, pattern on the layer name): the parts of the network each change targets
    ("first layer (stem conv)", r"^stem\."),
    ("1x1 squeeze (two per block)", r"\.body\.squeeze[12]\."),
    ("separable 3x1 / 1x3", r"\.body\.sep[12]\."),
    ("1x1 expand", r"\.body\.expand\."),
    ("1x1 projection shortcut", r"\.shortcut\."),
    ("head 1x1 conv + fc", r"^(head|classifier)\."),
)


def layer_role(row: dict[str, Any]) -> str:
    if str(row.get("output_to", "")).startswith("in "):  # onchip=fuse|reuse
        return "adds fused into the producing conv"
    if row["kind"] in ("add", "maxpool", "avgpool"):
        return "adds and pooling (vector unit)"
    for role, pattern in ROLES:
        if re.search(pattern, row["name"]):
            return role
    return "other"


def layer_stage(name: str) -> str:
    match = re.match(r"stage(\d+)\.", name)
    return f"stage {match.group(1)}" if match else ("stem" if name.startswith(("stem", "pool"))
                                                   else "head")


def utilisation_view(rows: Sequence[dict[str, Any]], pes: int, key: Any) -> list[dict[str, Any]]:
    """Group per-layer rows by ``key(row)``: share of cycles and MACs, utilisation."""
    total = sum(r["cycles"] for r in rows) or 1
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r["cycles"] or r["macs"]:
            groups.setdefault(key(r), []).append(r)
    out = []
    for name, members in groups.items():
        cycles = sum(r["cycles"] for r in members)
        macs = sum(r["macs"] for r in members)
        stalls = sum(r["stall_cycles"] for r in members)
        out.append({"part": name, "layers": len(members), "cycles": cycles,
                    "share of cycles": cycles / total, "stall share": stalls / cycles if cycles else 0,
                    "MACs": macs, "utilization": macs / (cycles * pes) if cycles else 0.0})
    return out


# --------------------------------------------------------------------------- running
@dataclass
class StudyRun:
    model: str
    hardware: str
    batch: int
    summary: dict[str, Any]
    layers: list[dict[str, Any]]


def _run(cells: Sequence[Any], jobs: int | None, store: Any) -> dict[tuple, StudyRun]:
    from harness.cells import run_cells

    environment = None
    if store is not None:
        from harness.environment import capture

        environment = capture()
    out: dict[tuple, StudyRun] = {}
    for res in run_cells(cells, jobs=jobs):
        if not res.ok:
            raise BenchUsageError(f"{res.cell.model} on {res.cell.point.label}: {res.error}")
        if store is not None:
            record_result(store, **res.fields, environment={**environment,
                                                            "plugin": res.fields["plugin"]})
        key = (res.cell.model, res.cell.point, res.cell.batch)
        if key not in out or res.result.layers:  # the same point with its per-layer rows wins
            out[key] = StudyRun(res.cell.model, res.cell.point.label, res.cell.batch,
                                res.summary, res.result.layers)
    return out


def _within(ratios: dict[tuple[str, str], float]) -> str:
    return "yes" if all(abs(v / PAPER[k] - 1) <= TOLERANCE for k, v in ratios.items()) else "no"


def _ratios(runs: dict[str, StudyRun], model: str) -> dict[tuple[str, str], float]:
    mine = runs[model].summary
    out = {}
    for base in BASELINES:
        theirs = runs[base].summary
        out[(base, "speed-up")] = theirs["time_s"] / mine["time_s"]
        out[(base, "energy eff.")] = theirs["energy"] / mine["energy"]
    return out


# --------------------------------------------------------------------------- plots
def _plot_ratios(table: list[dict[str, Any]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hardware = list(dict.fromkeys(r["hardware"] for r in table))
    models = list(dict.fromkeys(r["model"] for r in table))
    fig, axes = plt.subplots(1, 4, figsize=(18, 4.2))
    metrics = [(f"speed-up vs {b}" if "speed" in m else f"energy eff. vs {b}", b, m)
               for b in BASELINES for m in ("speed-up", "energy eff.")]
    width = 0.8 / len(hardware)
    for ax, (column, base, metric) in zip(axes, metrics):
        for i, hw in enumerate(hardware):
            values = [next(r[column] for r in table if r["hardware"] == hw and r["model"] == m)
                      for m in models]
            ax.bar([j + i * width for j in range(len(models))], values, width, label=hw)
        ax.axhline(1, color="black", linewidth=0.6)
        paper = PAPER[(base, metric)]
        ax.axhline(paper, color="red", linestyle="--", linewidth=0.9, label=f"paper (v5) {paper}x")
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(models))])
        ax.set_xticklabels([m.replace("1.0-SqNxt-23", "v1 ").replace("v1 v", "v") for m in models],
                           rotation=30, fontsize=7)
        ax.set_title(column, fontsize=9)
        ax.set_yscale("log")
        ax.grid(True, axis="y", alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_layers(layer_runs: dict[str, StudyRun], pes: int, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    roles = [r for r, _ in ROLES] + ["adds and pooling (vector unit)",
                                     "adds fused into the producing conv"]
    colours = plt.get_cmap("tab10")
    fig, axes = plt.subplots(len(layer_runs), 1, figsize=(14, 2.3 * len(layer_runs)), sharex=True,
                             squeeze=False)
    for ax, (model, run) in zip(axes[:, 0], layer_runs.items()):
        rows = [r for r in run.layers if r["cycles"]]
        x0 = 0
        for r in rows:
            role = layer_role(r)
            colour = colours(roles.index(role) % 10) if role in roles else "0.5"
            ax.bar(x0, r["utilization"], width=r["cycles"], align="edge", color=colour,
                   edgecolor="none")
            x0 += r["cycles"]
        ax.set_ylabel("utilization", fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_title(f"{model}: per-layer PE utilization, bar width = cycles "
                     f"(total {x0:,} cycles)", fontsize=9)
        ax.grid(True, axis="y", alpha=0.3)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours(i % 10)) for i in range(len(roles))]
    fig.legend(handles, roles, loc="lower center", ncol=4, fontsize=8, frameon=False)
    axes[-1, 0].set_xlabel("cycles, layer by layer in execution order")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_onchip(rows: list[dict[str, Any]], path: str) -> None:
    """The four headline ratios under each on-chip policy, against the paper's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(PAPER)
    fig, ax = plt.subplots(figsize=(9, 3.8))
    width = 0.8 / len(rows)
    colours = plt.get_cmap("tab10")
    for i, row in enumerate(rows):
        values = [row[f"{k[1]} vs {k[0]}"] for k in keys]
        bars = ax.bar([j + i * width for j in range(len(keys))], values, width,
                      color=colours(i), label=f"onchip={row['onchip']}")
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    for j, key in enumerate(keys):
        left, right = j - width / 2, j + 0.8 - width / 2
        ax.fill_between([left, right], PAPER[key] * (1 - TOLERANCE), PAPER[key] * (1 + TOLERANCE),
                        color="red", alpha=0.1, linewidth=0, zorder=0)
        ax.plot([left, right], [PAPER[key]] * 2, color="red", linestyle="--", linewidth=1,
                label="paper, +-15%" if j == 0 else None)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(keys))])
    ax.set_xticklabels([f"{BEST}\n{k[1]} vs {k[0]}" for k in keys], fontsize=8)
    ax.set_ylabel("ratio (dashed: paper; band: +-15%)")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_sensitivity(rows: list[dict[str, Any]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parameters = list(dict.fromkeys(r["parameter"] for r in rows))
    fig, axes = plt.subplots(1, len(parameters), figsize=(3.1 * len(parameters), 3.6), sharey=True)
    keys = list(PAPER)
    colours = plt.get_cmap("tab10")
    for ax, parameter in zip(axes, parameters):
        mine = [r for r in rows if r["parameter"] == parameter]
        xs = list(range(len(mine)))
        for i, key in enumerate(keys):
            column = f"{key[1]} vs {key[0]}"
            ax.plot(xs, [r[column] for r in mine], marker="o", color=colours(i), label=column)
            ax.axhspan(PAPER[key] * (1 - TOLERANCE), PAPER[key] * (1 + TOLERANCE),
                       color=colours(i), alpha=0.08)
            ax.axhline(PAPER[key], color=colours(i), linestyle="--", linewidth=0.7)
        ax.set_xticks(xs)
        ax.set_xticklabels([str(r["value"]) for r in mine], fontsize=7)
        ax.set_title(parameter, fontsize=9)
        ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("v5 ratio (dashed: paper; band: +-15%)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --------------------------------------------------------------------------- command
@click.command("design-study")
@click.option("--hw", "backends", default="accel-8x8,accel-16x16,accel-32x32", show_default=True,
              help="Array sizes of the table (accel presets).")
@click.option("--reference", default="accel-16x16", show_default=True,
              help="The hardware of the headline ratios, the utilisation view and the "
                   "sensitivity study.")
@click.option("--hw-opt", "hw_opts", multiple=True, metavar="[BACKEND:]KEY=VALUE",
              help="Backend option for every run (e.g. dram_bw=4).")
@click.option("--no-sensitivity", is_flag=True, help="Skip the one-at-a-time sensitivity runs.")
@click.option("--plot-dir", type=params.OUTPUT_DIR, default=None,
              help="Write design_study_{ratios,layers,sensitivity}.{png,svg} here.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
@click.option("--out", type=params.OUTPUT_FILE, help="Write the output to this file.")
@click.option("--jobs", type=params.JOBS, default=None,
              help="Worker processes (default: one per core).")
@click.option("--no-store", is_flag=True, help="Do not store the runs.")
@store_option
def command(backends: str, reference: str, hw_opts: tuple[str, ...], no_sensitivity: bool,
            plot_dir: str | None, fmt: str, out: str | None, jobs: int | None, no_store: bool,
            store_path: str | None) -> None:
    """Reproduce the SqueezeNext paper's hardware study: speed-up and energy of v1..v5
    against SqueezeNet 1.0 and AlexNet across array sizes, the four headline ratios next
    to the paper's, the per-layer utilisation behind each change, and their sensitivity."""
    from harness.cells import Cell, hardware_points

    pm = get_plugin_manager()
    models = [pm.model(n).name for n in VARIANTS + BASELINES]
    names = split_names(backends)
    if reference.lower() not in [n.lower() for n in names]:
        names.append(reference)
    specs = [pm.backend(n) for n in names]
    points = hardware_points(specs, hw_opts)
    ref_point = next(p for p in points if p.backend.lower() == reference.lower())
    ref_spec = pm.backend(reference)
    cells = [Cell(m, p, per_layer=True) for p in points for m in models]
    sens_cells: list[tuple[str, Any, Any]] = []
    if not no_sensitivity:
        for parameter, values in SENSITIVITY:
            for value in values:
                opts, batch = _sensitivity_options(parameter, value)
                keys = {o.partition("=")[0] for o in opts}
                base = [o for o in hw_opts if o.partition("=")[0].split(":")[-1] not in keys]
                (point,) = hardware_points([ref_spec], base + opts)
                sens_cells.append((parameter, value, point))
                cells += [Cell(m, point, batch) for m in (BEST, *BASELINES)]
    others = [o for o in hw_opts if o.partition("=")[0].split(":")[-1] != "onchip"]
    onchip_points = {mode: hardware_points([ref_spec], others + [f"onchip={mode}"])[0]
                     for mode in ONCHIP}
    cells += [Cell(m, p) for p in onchip_points.values() for m in (BEST, *BASELINES)]
    cells = list(dict.fromkeys(cells))
    store = None if no_store else open_store(store_path)
    runs = _run(cells, jobs, store)

    def by(point: Any, batch: int = 1) -> dict[str, StudyRun]:
        return {m: runs[(m, point, batch)] for m in models if (m, point, batch) in runs}

    table = []
    for point in points:
        found = by(point)
        for m in models:
            s = found[m].summary
            row = {"hardware": point.label, "model": m, "time (ms)": s["time_s"] * 1e3,
                   "energy": s["energy"], "utilization": s["utilization"]}
            for base in BASELINES:
                row[f"speed-up vs {base}"] = found[base].summary["time_s"] / s["time_s"]
                row[f"energy eff. vs {base}"] = found[base].summary["energy"] / s["energy"]
            table.append(row)
    ref_runs = by(ref_point)
    headline = []
    for key, value in _ratios(ref_runs, BEST).items():
        paper = PAPER[key]
        headline.append({"ratio": f"{BEST} {key[1]} vs {key[0]}", "this run": value,
                         "paper": paper, "difference": f"{(value / paper - 1) * 100:+.0f}%",
                         "within 15%": "yes" if abs(value / paper - 1) <= TOLERANCE else "no"})
    by_onchip = []
    for mode, point in onchip_points.items():
        ratios = _ratios(by(point), BEST)
        by_onchip.append({"onchip": mode, **{f"{k[1]} vs {k[0]}": v for k, v in ratios.items()},
                          "worst difference": f"{max((v / PAPER[k] - 1 for k, v in ratios.items()), key=abs) * 100:+.0f}%",
                          "all within 15%": _within(ratios)})
    # The paper's ratios imply how the two baselines compare, whatever SqueezeNext does.
    baselines = [{"onchip": mode,
                  **{f"squeezenet1_0 {metric} vs alexnet": _ratios(by(point), "squeezenet1_0")[
                      ("alexnet", metric)] for metric in ("speed-up", "energy eff.")}}
                 for mode, point in onchip_points.items()]
    baselines.append({"onchip": "paper (implied)",
                      **{f"squeezenet1_0 {metric} vs alexnet":
                         PAPER[("alexnet", metric)] / PAPER[("squeezenet1_0", metric)]
                         for metric in ("speed-up", "energy eff.")}})
    cfg = ref_spec.parse_options(list(ref_point.options))
    rows_, cols_ = (int(n) for n in cfg["array"].split("x"))
    pes = rows_ * cols_
    roles = {m: utilisation_view(ref_runs[m].layers, pes, layer_role) for m in VARIANTS}
    stages = {m: utilisation_view(ref_runs[m].layers, pes, lambda r: layer_stage(r["name"]))
              for m in VARIANTS}
    sensitivity = []
    for parameter, value, point in sens_cells:
        batch = int(value) if parameter == "batch" else 1
        ratios = _ratios(by(point, batch), BEST)
        sensitivity.append({"parameter": parameter, "value": value,
                            **{f"{k[1]} vs {k[0]}": v for k, v in ratios.items()},
                            "all within 15%": _within(ratios)})
    configuration = (f"{reference}: array {cfg['array']}, buffers {cfg['ifmap_kib']:g}/"
                     f"{cfg['weight_kib']:g}/{cfg['ofmap_kib']:g} KiB (ifmap/weight/ofmap), "
                     f"DRAM {cfg['dram_bw']:g} words/cycle of {cfg['word_bits']} bits, energy per "
                     f"access MAC {cfg['cost_mac']:g} / RF {cfg['cost_rf']:g} / PE {cfg['cost_pe']:g}"
                     f" / buffer {cfg['cost_buffer']:g} / DRAM {cfg['cost_dram']:g}, batch 1, "
                     f"{cfg['clock_mhz']:g} MHz, dataflow {cfg['dataflow']} (by {cfg['best_by']}), "
                     f"onchip {cfg['onchip']}")
    plots = []
    if plot_dir:
        paths.output_dir(plot_dir, "--plot-dir", create=True)
        for suffix in ("png", "svg"):
            path = os.path.join(plot_dir, f"design_study_ratios.{suffix}")
            _plot_ratios(table, path)
            path_l = os.path.join(plot_dir, f"design_study_layers.{suffix}")
            _plot_layers({m: ref_runs[m] for m in (VARIANTS[0], BEST)}, pes, path_l)
            path_o = os.path.join(plot_dir, f"design_study_onchip.{suffix}")
            _plot_onchip(by_onchip, path_o)
            plots += [path, path_l, path_o]
            if sensitivity:
                path_s = os.path.join(plot_dir, f"design_study_sensitivity.{suffix}")
                _plot_sensitivity(sensitivity, path_s)
                plots.append(path_s)
    if fmt == "json":
        write(to_json({"configuration": configuration, "table": table, "headline": headline,
                       "onchip": by_onchip, "baselines": baselines, "layer_roles": roles, "stages": stages,
                       "sensitivity": sensitivity, "plots": plots}), out)
        return
    parts = ["SqueezeNext design study (Gholami et al., CVPR-W 2018) on the accel simulator",
             render(table, "table"),
             f"Headline ratios on {configuration}:",
             render(headline, "table"),
             f"The same ratios under each on-chip policy (onchip=none: every feature map "
             f"through DRAM; fuse: adds computed in the producing convolution; reuse: fuse, "
             f"and feature maps kept in the global buffer when they fit), on {reference}:",
             render(by_onchip, "table"),
             "What the paper's four ratios imply for the two baselines (SqueezeNext aside):",
             render(baselines, "table")]
    role_rows = [{"variant": m, **r} for m in VARIANTS for r in roles[m]]
    parts += ["Per-layer utilisation by part of the network, on the reference hardware "
              "(what each SqueezeNext change targets):",
              render(role_rows, "table", ["variant", "part", "layers", "share of cycles",
                                          "stall share", "utilization"])]
    stage_rows = [{"variant": m, **r} for m in VARIANTS for r in stages[m]]
    parts += ["By stage (v2..v5 move blocks out of the few-channel first stage):",
              render(stage_rows, "table", ["variant", "part", "layers", "cycles",
                                           "share of cycles", "utilization"])]
    if sensitivity:
        parts += [f"Sensitivity of {BEST}'s ratios, one parameter at a time around {reference}:",
                  render(sensitivity, "table")]
    if plots:
        parts.append("plots: " + ", ".join(plots))
    write("\n\n".join(parts), out)
