"""Hardware backend ``accel``: a simulated embedded neural-network accelerator.

A 2D array of processing elements (a MAC and a small register file each) fed by
a global buffer split into input, weight and output partitions, and by DRAM;
weight-stationary or output-stationary dataflow, or the better of the two per
layer. Per layer it reports cycles (compute and DRAM stalls), PE utilization,
accesses at each level and energy. The cost model is in
:mod:`plugins.hardware.accel_model`; docs/accel.md explains it.

Presets ``accel-8x8``, ``accel-16x16`` and ``accel-32x32`` are the same backend
with other defaults; ``accel`` is ``accel-16x16``. Presets and the energy table are
data files (:mod:`plugins.hardware.accel_presets`): users add their own through
``BENCH_ACCEL_PRESETS``, packages through the ``bench_accel_presets`` hook.
"""
from __future__ import annotations

import re
from dataclasses import replace
from typing import Any, Callable

from harness import BenchUsageError, HardwareSpec, OptionSpec, RunRequest, RunResult, hookimpl
from plugins.hardware import accel_presets
from plugins.hardware.accel_model import (
    COMPAT_MODES,
    COUNT_KEYS,
    EYERISS_COSTS,
    ONCHIP_MODES,
    OPERANDS,
    AccelConfig,
    LayerCost,
    layer_signature,
    simulate_with_plan,
)


# --------------------------------------------------------------------------- option types
def array_shape(text: str) -> str:
    """``ROWSxCOLS``, normalised (kept as text so stored options read like the command line)."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX*]\s*(\d+)\s*", text)
    if not match or int(match.group(1)) < 1 or int(match.group(2)) < 1:
        raise ValueError("expected ROWSxCOLS with positive integers, e.g. 16x16")
    return f"{int(match.group(1))}x{int(match.group(2))}"


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError("expected a whole number") from None
    if value < 1:
        raise ValueError("must be at least 1")
    return value


def positive_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError("expected a number") from None
    if not value > 0 or value == float("inf"):
        raise ValueError("must be greater than 0")
    return value


def non_negative_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError("expected a number") from None
    if not value >= 0 or value == float("inf"):
        raise ValueError("must be 0 or more")
    return value


# --------------------------------------------------------------------------- options
# The energy table behind the cost_* defaults (plugins/hardware/energy/eyeriss.toml).
DEFAULT_ENERGY = accel_presets.load_energy("eyeriss")


def accel_options(array: str = "16x16", buffer_kib: float = 64.0,
                  dram_bw: float = 8.0) -> tuple[OptionSpec, ...]:
    """The backend's options; a preset replaces some of their defaults."""
    costs = DEFAULT_ENERGY.costs
    return (
        OptionSpec("array", array_shape, array_shape(array),
                   "PE array ROWSxCOLS (rows take the SCALE-Sim Sr dimension)"),
        OptionSpec("dataflow", str, "best",
                   "ws (weight stationary), os (output stationary), or best: the cheaper "
                   "of the two per layer, measured by best_by",
                   choices=("ws", "os", "best")),
        OptionSpec("best_by", str, "cycles",
                   "what dataflow=best minimises per layer (ties go to the other)",
                   choices=("cycles", "energy")),
        OptionSpec("ifmap_kib", positive_number, buffer_kib,
                   "global buffer partition for input activations, KiB"),
        OptionSpec("weight_kib", positive_number, buffer_kib,
                   "global buffer partition for weights, KiB"),
        OptionSpec("ofmap_kib", positive_number, buffer_kib,
                   "global buffer partition for outputs and partial sums, KiB"),
        OptionSpec("rf_words", positive_int, 1,
                   "register file words per PE; >=2 double-buffers WS weights "
                   "(next fold loads while this one computes)"),
        OptionSpec("dram_bw", positive_number, dram_bw, "DRAM bandwidth, words per cycle"),
        OptionSpec("word_bits", positive_int, 16, "bits per word (activations, weights, sums)"),
        OptionSpec("clock_mhz", positive_number, 500.0, "clock, MHz (turns cycles into seconds)"),
        OptionSpec("cost_mac", non_negative_number, costs["mac"],
                   "energy of one MAC (Eyeriss-relative units unless pj_per_unit is set)"),
        OptionSpec("cost_rf", non_negative_number, costs["rf"],
                   "energy of one register-file access"),
        OptionSpec("cost_pe", non_negative_number, costs["pe"],
                   "energy of one PE-to-PE transfer"),
        OptionSpec("cost_buffer", non_negative_number, costs["buffer"],
                   "energy of one global-buffer access"),
        OptionSpec("cost_dram", non_negative_number, costs["dram"],
                   "energy of one DRAM access"),
        OptionSpec("pj_per_unit", non_negative_number, 0.0,
                   "picojoules per cost unit; 0 reports relative units (MAC = 1), "
                   "1 makes the cost_* values absolute pJ"),
        OptionSpec("compat", str, "exact",
                   "exact: PyTorch's output sizes and this model's memory; scalesim: "
                   "SCALE-Sim 3.0's rounded-up output sizes and memory model, conv/fc only",
                   choices=COMPAT_MODES),
        OptionSpec("onchip", str, "none",
                   "where feature maps live between layers: none (every layer's input and "
                   "output through DRAM, as SCALE-Sim), fuse (element-wise adds computed in "
                   "the producing layer's output stage), reuse (fuse, and feature maps kept in "
                   "the global buffer when they fit)",
                   choices=ONCHIP_MODES),
    )


def config_from_options(options: dict[str, Any]) -> AccelConfig:
    """Build the accelerator from parsed options; cross-option checks raise BenchUsageError."""
    rows, cols = (int(n) for n in array_shape(str(options["array"])).split("x"))
    word_bits = options["word_bits"]
    words = {}
    for key in ("ifmap_kib", "weight_kib", "ofmap_kib"):
        kib = options[key]
        words[key] = int(kib * 1024 * 8 // word_bits)
        if words[key] < rows * cols:
            need = rows * cols * word_bits / 8 / 1024
            raise BenchUsageError(
                f"{key}={kib:g} holds {words[key]} words of {word_bits} bits, less than one "
                f"{rows}x{cols} array tile ({rows * cols} words); use {key}>={need:g} "
                f"or a smaller array/word_bits"
            )
    if options["compat"] == "scalesim" and options["onchip"] != "none":
        raise BenchUsageError(f"onchip={options['onchip']} has no SCALE-Sim equivalent (it "
                              "sends every layer through DRAM); compat=scalesim needs onchip=none")
    if options["compat"] == "scalesim" and options["rf_words"] != 1:
        raise BenchUsageError(f"rf_words={options['rf_words']} has no SCALE-Sim equivalent; "
                              "compat=scalesim needs rf_words=1")
    return AccelConfig(
        rows=rows, cols=cols, compat=options["compat"], dataflow=options["dataflow"], best_by=options["best_by"],
        ifmap_words=words["ifmap_kib"], weight_words=words["weight_kib"],
        ofmap_words=words["ofmap_kib"], rf_words=options["rf_words"],
        dram_bw=options["dram_bw"], clock_hz=options["clock_mhz"] * 1e6,
        costs={level: options[f"cost_{level}"] for level in EYERISS_COSTS},
        onchip=options["onchip"],
    )


# --------------------------------------------------------------------------- results
LAYER_COLUMNS = [
    "name", "kind", "shape", "kernel", "dataflow", "cycles", "stall_cycles", "utilization",
    "macs", "dram_accesses", "buffer_accesses", "pe_transfers", "rf_accesses", "energy",
]


# With onchip=fuse|reuse the table also says where each layer's input came from and its
# output went.
PLACEMENT_COLUMNS = ["input_from", "output_to"]

# Per-operand access counts, one column each: dram_weight_reads, pe_psum_transfers, ...
COUNT_COLUMNS = [(key, "_".join(key)) for key in COUNT_KEYS]


def _shape_text(shape: tuple[int, ...]) -> str:
    return "x".join(str(s) for s in shape)


# The per-layer columns every accel result stores (bench compare matches them by name).
COMPARED_COLUMNS = ("name", "kind", "cycles", "stall_cycles", "energy", "utilization",
                    "dram_accesses")


def layer_row(layer: Any, cost: LayerCost, cfg: AccelConfig, scale: float) -> dict[str, Any]:
    """One per-layer row: the table columns first, then the per-level and per-operand detail."""
    kernel = ""
    if (layer.is_compute and layer.kind != "fc") or layer.kind in ("maxpool", "avgpool"):
        kernel = f"{layer.kernel[0]}x{layer.kernel[1]}/s{layer.stride[0]}" + (
            f",{layer.stride[1]}" if layer.stride[0] != layer.stride[1] else "")
        if layer.groups > 1:
            kernel += f" g{layer.groups}"
    totals = cost.totals()
    row: dict[str, Any] = {
        "name": cost.name,
        "kind": cost.kind,
        "shape": f"{_shape_text(layer.in_shape)}>{_shape_text(layer.out_shape)}",
        "kernel": kernel,
        "dataflow": cost.dataflow or "-",
        "cycles": cost.cycles,
        "stall_cycles": cost.stall_cycles,
        "utilization": cost.macs / (cost.cycles * cfg.pes) if cost.cycles else 0.0,
        "macs": cost.macs,
        "dram_accesses": totals.get("dram", 0),
        "buffer_accesses": totals.get("buffer", 0),
        "pe_transfers": totals.get("pe", 0),
        "rf_accesses": totals.get("rf", 0),
        "energy": cost.total_energy * scale,
        "compute_cycles": cost.compute_cycles,
        "loop_order": cost.loop_order,
        "vector_ops": cost.vector_ops,
        "simulated": cost.simulated,
        "note": cost.note,
        "dram_reads": totals.get("dram_reads", 0),
        "dram_writes": totals.get("dram_writes", 0),
    }
    for level in ("dram", "buffer", "pe", "rf", "mac"):
        row[f"energy_{level}"] = cost.energy.get(level, 0.0) * scale
    for operand, value in cost.operand_energy(cfg.costs).items():
        row[f"energy_{operand}"] = value * scale
    counts = cost.counts
    for key, column in COUNT_COLUMNS:
        row[column] = counts.get(key, 0)
    if cfg.onchip != "none":
        row["input_from"] = cost.input_from or "-"
        row["output_to"] = cost.output_to or "-"
    return row


def summarize(rows: list[dict[str, Any]], cfg: AccelConfig, options: dict[str, Any],
              plan: Any = None) -> dict[str, Any]:
    """Totals over the network, from the per-layer rows (and the on-chip plan, if any)."""
    def total(key: str) -> Any:
        return sum(r[key] for r in rows)

    cycles, compute, macs, energy = (total(k) for k in ("cycles", "compute_cycles", "macs", "energy"))
    summary: dict[str, Any] = {
        "cycles": cycles,
        "compute_cycles": compute,
        "stall_cycles": cycles - compute,
        "time_s": cycles / cfg.clock_hz,
        "energy": energy,
        "energy_unit": "pJ" if options["pj_per_unit"] else "MAC-relative",
        "utilization": macs / (cycles * cfg.pes) if cycles else 0.0,
        "compute_utilization": macs / (compute * cfg.pes) if compute else 0.0,
        "macs": macs,
        "array": f"{cfg.rows}x{cfg.cols}",
        "dataflow": cfg.dataflow if cfg.dataflow != "best" else f"best by {cfg.best_by}",
        "ws_layers": sum(1 for r in rows if r["dataflow"] == "ws"),
        "os_layers": sum(1 for r in rows if r["dataflow"] == "os"),
    }
    for key in ("dram_reads", "dram_writes", "dram_accesses", "buffer_accesses", "pe_transfers",
                "rf_accesses"):
        summary[key] = total(key)
    for key in ("dram", "buffer", "pe", "rf", "mac") + OPERANDS:
        summary[f"energy_{key}"] = total(f"energy_{key}")
    if options["pj_per_unit"]:
        summary["energy_pj"] = energy
        summary["energy_j"] = energy * 1e-12
    summary["layers"] = len(rows)
    summary["layers_not_simulated"] = sum(1 for r in rows if not r["simulated"])
    if plan is not None:
        summary["onchip"] = cfg.onchip
        summary["fused_adds"] = plan.fused_adds
        if cfg.onchip == "reuse":
            summary["feature_maps_on_chip"] = plan.resident_values
            summary["activation_buffer_words"] = cfg.ifmap_words + cfg.ofmap_words
            summary["activation_buffer_peak_words"] = plan.peak_words
    return summary


def make_runner(specs: tuple[OptionSpec, ...]) -> Callable[[RunRequest], RunResult]:
    """The run function of one preset (its defaults fill options the request lacks)."""
    defaults = {o.name: o.default for o in specs}

    def run(request: RunRequest) -> RunResult:
        options = {**defaults, **request.options}
        cfg = config_from_options(options)
        layers = request.layers()
        costs, plan = simulate_with_plan(layers, cfg)
        scale = options["pj_per_unit"] or 1.0
        rows, seen = [], {}
        for layer, cost in zip(layers, costs):
            key = (layer_signature(layer), cost.context)
            if key not in seen:
                seen[key] = layer_row(layer, cost, cfg, scale)
            rows.append({**seen[key], "name": layer.name})
        warnings = []
        columns = list(LAYER_COLUMNS)
        if cfg.onchip != "none":
            if plan is None:
                warnings.append(f"onchip={cfg.onchip} ignored: the layer table does not say "
                                "which layer feeds which (extra['sources']), so every feature "
                                "map goes through DRAM")
                cfg = replace(cfg, onchip="none")
                rows = [{k: v for k, v in r.items() if k not in PLACEMENT_COLUMNS} for r in rows]
            else:
                columns += PLACEMENT_COLUMNS
        skipped = [c.name for c in costs if not c.simulated]
        if skipped:
            warnings.append(f"{len(skipped)} layer(s) not simulated (no cost model for their "
                            f"kind): {', '.join(skipped[:8])}" + (" ..." if len(skipped) > 8 else ""))
        return RunResult(summary=summarize(rows, cfg, options, plan), layers=rows,
                         layer_columns=columns, warnings=warnings,
                         stored_layer_columns=list(COMPARED_COLUMNS))

    return run


def _description(name: str, defaults: dict[str, Any], energy: str) -> str:
    alias = " (same as accel-16x16)" if name == "accel" else ""
    kib = [defaults[k] for k in ("ifmap_kib", "weight_kib", "ofmap_kib")]
    buffer = f"3x{kib[0]:g} KiB" if len(set(kib)) == 1 else "/".join(f"{k:g}" for k in kib) + " KiB"
    table = "Eyeriss" if energy == "eyeriss" else f"'{energy}'"
    return (f"simulated accelerator{alias}: {defaults['array']} PEs, WS/OS dataflow, {buffer} "
            f"buffer, {defaults['dram_bw']:g} words/cycle DRAM, {table} energy table")


def preset_spec(preset: accel_presets.Preset, base: tuple[OptionSpec, ...]) -> HardwareSpec:
    """The backend for one preset; an invalid preset's backend reports its error when used."""
    if preset.error:
        def refuse(request: RunRequest) -> RunResult:
            raise BenchUsageError(preset.error)

        return HardwareSpec(name=preset.name, options=base, run=refuse,
                            description=f"INVALID preset ({preset.origin}): {preset.error}")
    options = preset.options(base)
    energy = preset.energy.name if preset.energy else "custom"
    description = preset.description or _description(
        preset.name, {o.name: o.default for o in options}, energy)
    return HardwareSpec(name=preset.name, description=description, options=options,
                        run=make_runner(options))


def presets(base: tuple[OptionSpec, ...] | None = None) -> list[accel_presets.Preset]:
    """Built-in presets, those of plugins (``bench_accel_presets``) and the user's files."""
    from harness.plugins.manager import get_plugin_manager

    sources = get_plugin_manager().call_each("bench_accel_presets")
    return accel_presets.discover(base or accel_options(), config_from_options, sources)


@hookimpl
def bench_hardware() -> list[HardwareSpec]:
    base = accel_options()
    found = presets(base)
    default = next(p for p in found if p.name == "accel-16x16" and p.origin == "built-in")
    return [preset_spec(replace(default, name="accel"), base), *(preset_spec(p, base) for p in found)]

