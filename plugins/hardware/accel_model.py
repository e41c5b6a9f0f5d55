"""Cost model of a systolic neural-network accelerator: PE array, global buffer, DRAM.

This is the simulator behind the ``accel`` backend (the option plumbing is in
:mod:`plugins.hardware.accel`; the formulas are explained in docs/accel.md).
It is closed-form arithmetic per layer in plain Python, so a whole network
costs well under a millisecond per layer and the module imports nothing heavy.

Compute cycles follow SCALE-Sim's analytical model (Samajdar et al., 2018/2020)
for an ``R x C`` array, one group at a time::

    WS: Sr = kh*kw*Cin_g, Sc = Cout_g, T = output pixels (x batch)
        cycles = (2R + C + T - 2) * ceil(Sr/R) * ceil(Sc/C)
    OS: Sr = output pixels (x batch), Sc = Cout_g, T = kh*kw*Cin_g
        cycles = (R + C + T - 2) * ceil(Sr/R) * ceil(Sc/C)

and agree with SCALE-Sim 3.0's cycle-level simulation to within one cycle per
layer (benchmarks/bench_accel_scalesim.py). With ``rf_words >= 2`` a PE keeps a
second weight register and WS loads the next fold's weights while the current
fold computes (as the TPU does), so only the first fold pays the ``R`` load
cycles.

``compat="scalesim"`` reproduces what SCALE-Sim 3.0 reports instead of what
the PyTorch network does: output sizes rounded up from the padded input
(:func:`scalesim_output_size`), SCALE-Sim's one-cycle-shorter count, and its
memory model (:func:`scalesim_memory`), so total cycles compare one to one.

``onchip="fuse"`` computes element-wise adds in the output stage of the layer
that produces their last operand, and ``onchip="reuse"`` also keeps feature maps
in the global buffer when they fit (:mod:`plugins.hardware.accel_onchip` plans
where each one lives); the default, ``"none"``, sends every layer's input and
output through DRAM.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Sequence

from plugins.hardware.accel_onchip import MODES as ONCHIP_MODES
from plugins.hardware.accel_onchip import Placement, Plan
from plugins.hardware.accel_onchip import plan as plan_onchip

LEVELS = ("dram", "buffer", "pe", "rf", "mac")
OPERANDS = ("ifmap", "weight", "psum", "ofmap")
# Energy per access relative to one 16-bit MAC, from Eyeriss (Chen et al., ISCA 2016),
# the table the SqueezeNext paper uses.
EYERISS_COSTS = {"mac": 1.0, "rf": 1.0, "pe": 2.0, "buffer": 6.0, "dram": 200.0}
DATAFLOWS = ("ws", "os")
# exact: PyTorch's shapes and this model's memory; scalesim: SCALE-Sim 3.0's view of both.
COMPAT_MODES = ("exact", "scalesim")
# Every (level, operand, kind) the model can count besides the MACs, in report order.
COUNT_KEYS = (
    [("dram", op, kind) for op, kind in (("ifmap", "reads"), ("weight", "reads"),
                                          ("psum", "reads"), ("psum", "writes"),
                                          ("ofmap", "writes"))]
    + [("buffer", op, kind) for op in OPERANDS for kind in ("reads", "writes")]
    + [("pe", op, "transfers") for op in OPERANDS]
    + [("rf", op, kind) for op in ("weight", "psum") for kind in ("reads", "writes")]
)

# Layer kinds the model knows besides the compute ones (harness.layers kinds).
POOL_KINDS = ("maxpool", "avgpool")
FUSED_KINDS = ("bn", "act")  # applied to the producer's outputs on their way to the buffer
FREE_KINDS = ("concat", "dropout", "reshape")  # no data moves at inference


@dataclass(frozen=True)
class AccelConfig:
    """One accelerator: array shape, buffer partitions (words), bandwidth, energy table."""

    rows: int = 16
    cols: int = 16
    dataflow: str = "best"  # ws | os | best
    best_by: str = "cycles"  # what "best" minimises per layer: cycles | energy
    ifmap_words: int = 32768
    weight_words: int = 32768
    ofmap_words: int = 32768
    rf_words: int = 1
    dram_bw: float = 8.0  # words per cycle
    clock_hz: float = 500e6
    costs: dict[str, float] = field(default_factory=lambda: dict(EYERISS_COSTS))
    compat: str = "exact"  # exact | scalesim (see COMPAT_MODES)
    onchip: str = "none"  # none | fuse | reuse (see ONCHIP_MODES)

    @property
    def pes(self) -> int:
        return self.rows * self.cols


@dataclass(frozen=True)
class Gemm:
    """A compute layer as ``groups`` independent matrix products (SCALE-Sim's view).

    Per group: ``pixels`` output positions (batch included) by ``filters`` outputs,
    each a dot product of length ``window``; ``*_words`` are the unique words of
    each operand per group (the input without padding, as DRAM holds it).
    """

    groups: int
    pixels: int
    window: int
    filters: int
    ifmap_words: int
    weight_words: int
    ofmap_words: int

    @property
    def macs(self) -> int:
        return self.groups * self.pixels * self.window * self.filters


Count = tuple[str, str, str]  # (level, operand, "reads" | "writes" | "transfers" | "ops")


@dataclass
class LayerCost:
    """What the model says about one layer.

    ``counts`` maps ``(level, operand, kind)`` to a number of accesses, e.g.
    ``("dram", "weight", "reads")``; the MACs themselves are ``("mac", "-", "ops")``.
    """

    name: str
    kind: str
    simulated: bool = True
    dataflow: str = ""
    loop_order: str = ""
    compute_cycles: int = 0
    stall_cycles: int = 0
    macs: int = 0
    vector_ops: int = 0
    counts: dict[Count, int] = field(default_factory=dict)
    energy: dict[str, float] = field(default_factory=dict)  # by level
    note: str = ""
    input_from: str = ""  # with onchip: dram | buffer | mixed | array+dram | array+buffer
    output_to: str = ""  # with onchip: dram | buffer | "in HOST" for a fused add
    context: tuple = ()  # with onchip: what besides the shape this cost depends on

    @property
    def cycles(self) -> int:
        return self.compute_cycles + self.stall_cycles

    @property
    def total_energy(self) -> float:
        return sum(self.energy.values())

    def totals(self) -> dict[str, int]:
        """Accesses per level (``dram``, ...) and per level and kind (``dram_reads``, ...)."""
        out: dict[str, int] = {}
        for (level, _, kind), count in self.counts.items():
            out[level] = out.get(level, 0) + count
            key = f"{level}_{kind}"
            out[key] = out.get(key, 0) + count
        return out

    def operand_energy(self, costs: dict[str, float]) -> dict[str, float]:
        """Energy split by operand (``mac`` for the arithmetic itself)."""
        out = {op: 0.0 for op in OPERANDS + ("mac",)}
        for (level, operand, _), count in self.counts.items():
            out["mac" if level == "mac" else operand] += count * costs[level]
        return out


# --------------------------------------------------------------------------- mapping
def _prod(values: Iterable[int]) -> int:
    n = 1
    for v in values:
        n *= int(v)
    return n


def scalesim_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output rows (or columns) as SCALE-Sim computes them from the padded input:
    ``ceil((H + 2p - k + s) / s)``, rounding up where PyTorch's
    ``floor((H + 2p - k) / s) + 1`` rounds down (a 1x1 stride-2 layer on 28x28:
    15 against 14). The extra row and column read past the input; SCALE-Sim
    still spends cycles on them."""
    return math.ceil((size + 2 * padding - kernel + stride) / stride)


def gemm_view(layer: Any, compat: str = "exact") -> Gemm:
    """Map a conv/gconv/dwconv/fc layer (``harness.layers.Layer``) to per-group GEMM sizes.

    Grouped and depthwise convolutions are ``groups`` separate products run one
    after another. A fully connected layer is a matrix-vector product at batch 1
    (``pixels == 1``) and a matrix-matrix product for larger batches. With
    ``compat="scalesim"`` a convolution has SCALE-Sim's output size
    (:func:`scalesim_output_size`) and reads its padded input.
    """
    if layer.kind == "fc":
        in_f, out_f = int(layer.in_shape[-1]), int(layer.out_shape[-1])
        rows = max(1, layer.macs // max(1, in_f * out_f))
        return Gemm(1, rows, in_f, out_f, rows * in_f, in_f * out_f, rows * out_f)
    groups = max(1, int(layer.groups))
    cin_g, cout_g = layer.cin // groups, layer.cout // groups
    kh, kw = layer.kernel
    out_hw, in_hw = layer.out_hw, layer.in_hw
    if compat == "scalesim":
        out_hw = tuple(scalesim_output_size(i, k, s, p) for i, k, s, p in
                       zip(layer.in_hw, layer.kernel, layer.stride, layer.padding))
        in_hw = tuple(i + 2 * p for i, p in zip(layer.in_hw, layer.padding))
    pixels = layer.batch * _prod(out_hw)
    window = kh * kw * cin_g
    return Gemm(
        groups=groups, pixels=pixels, window=window, filters=cout_g,
        ifmap_words=layer.batch * cin_g * _prod(in_hw),
        weight_words=window * cout_g, ofmap_words=pixels * cout_g,
    )


def spatial_dims(dataflow: str, g: Gemm) -> tuple[int, int, int]:
    """SCALE-Sim's (Sr, Sc, T): rows and columns mapped onto the array, and streamed length."""
    if dataflow == "ws":
        return g.window, g.filters, g.pixels
    return g.pixels, g.filters, g.window


def compute_cycles(dataflow: str, g: Gemm, rows: int, cols: int, rf_words: int = 1) -> int:
    """Cycles of the array for all groups of a layer, SCALE-Sim's formula (see module doc)."""
    sr, sc, t = spatial_dims(dataflow, g)
    folds = math.ceil(sr / rows) * math.ceil(sc / cols)
    stream = rows + cols + t - 2
    if dataflow == "ws":
        load = rows  # weights shift in, one row per cycle
        per_group = load + folds * stream if rf_words >= 2 else folds * (load + stream)
    else:
        per_group = folds * stream
    return g.groups * per_group


def _triangle_sum(total: int, tile: int) -> int:
    """Sum of r*(r-1)/2 over the folds of ``total`` split into ``tile``-sized pieces:
    the hops values make when shifting through ``r`` used PEs of a column."""
    full, rest = divmod(total, tile)
    return full * tile * (tile - 1) // 2 + rest * (rest - 1) // 2


def _refetch(words: int, passes: int, capacity: int) -> int:
    """DRAM words to read ``words`` ``passes`` times through a buffer of ``capacity``:
    the part that fits stays resident, the rest is fetched again on every pass."""
    return words + max(0, words - capacity) * (passes - 1)


# --------------------------------------------------------------------------- traffic
def array_counts(dataflow: str, g: Gemm, cfg: AccelConfig) -> dict[Count, int]:
    """Buffer-side, PE-to-PE, register-file and MAC counts for all groups of a layer.

    WS: weights are loaded once per fold into the PE register files (shifting
    down the columns), inputs stream from the buffer left to right, partial sums
    flow down and leave the bottom row; partial sums of one row fold are read back
    and accumulated at the buffer by the next. OS: inputs stream left to right and
    weights top to bottom, each PE accumulates one output in its register file,
    and finished outputs drain down the columns into the buffer.
    """
    rows, cols = cfg.rows, cfg.cols
    sr, sc, t = spatial_dims(dataflow, g)
    row_folds, col_folds = math.ceil(sr / rows), math.ceil(sc / cols)
    macs = t * sr * sc
    c: dict[Count, int] = {("mac", "-", "ops"): macs}
    if dataflow == "ws":
        pixels, window, filters = t, sr, sc
        c[("buffer", "ifmap", "reads")] = pixels * window * col_folds
        c[("buffer", "weight", "reads")] = window * filters
        c[("buffer", "psum", "reads")] = pixels * filters * (row_folds - 1)
        c[("buffer", "psum", "writes")] = pixels * filters * (row_folds - 1)
        c[("buffer", "ofmap", "writes")] = pixels * filters
        c[("pe", "ifmap", "transfers")] = pixels * window * (filters - col_folds)
        c[("pe", "psum", "transfers")] = pixels * filters * (window - row_folds)
        c[("pe", "weight", "transfers")] = filters * _triangle_sum(window, rows)
        c[("rf", "weight", "writes")] = window * filters
        c[("rf", "weight", "reads")] = macs
    else:
        pixels, filters, window = sr, sc, t
        c[("buffer", "ifmap", "reads")] = window * pixels * col_folds
        c[("buffer", "weight", "reads")] = window * filters * row_folds
        c[("buffer", "ofmap", "writes")] = pixels * filters
        c[("pe", "ifmap", "transfers")] = window * pixels * (filters - col_folds)
        c[("pe", "weight", "transfers")] = window * filters * (pixels - row_folds)
        c[("pe", "ofmap", "transfers")] = filters * _triangle_sum(pixels, rows)
        c[("rf", "psum", "reads")] = macs
        c[("rf", "psum", "writes")] = macs
    return {k: v * g.groups for k, v in c.items()}


def dram_counts(dataflow: str, g: Gemm, cfg: AccelConfig,
                placement: Placement | None = None) -> tuple[str, dict[Count, int]]:
    """Choose the fold loop order that moves the fewest DRAM words; return it and the counts.

    By default every layer reads its inputs and weights from DRAM and writes its
    outputs back (no fusion across layers). An operand re-read by an inner loop
    stays in its buffer partition if it fits; the part that does not fit is
    fetched again on every pass (:func:`_refetch`). In WS, partial sums that
    outgrow the output partition between row folds spill to DRAM and come back.

    With a ``placement`` (``onchip`` modes), the part of the input already in the
    buffer is never fetched (the DRAM input words of each order scale by the
    share that is not), and an output kept in the buffer is neither written out
    nor spilled: its partial sums accumulate in place.
    """
    rows, cols = cfg.rows, cfg.cols
    sr, sc, _ = spatial_dims(dataflow, g)
    row_folds, col_folds = math.ceil(sr / rows), math.ceil(sc / cols)
    i_words, w_words, o_words = g.ifmap_words, g.weight_words, g.ofmap_words
    candidates: list[tuple[str, int, int, int]] = []  # order, ifmap, weight, psum spill
    if dataflow == "ws":
        # Filter folds outer: the whole input is streamed once per filter fold, and one
        # fold's partial sums (pixels x cols) live across the row folds.
        tile = g.pixels * min(cols, g.filters)
        spill = max(0, tile - cfg.ofmap_words) * (row_folds - 1) * col_folds
        candidates.append(("filter folds outer",
                           _refetch(i_words, col_folds, cfg.ifmap_words), w_words, spill))
        # Window folds outer: each slice of input channels is reused by every filter
        # fold, but all outputs' partial sums live across the row folds.
        chunk = math.ceil(i_words / row_folds)
        spill = max(0, o_words - cfg.ofmap_words) * (row_folds - 1)
        candidates.append(("window folds outer",
                           row_folds * _refetch(chunk, col_folds, cfg.ifmap_words), w_words, spill))
    else:
        # Pixel folds outer: a patch of the input is reused by every filter fold; all
        # weights are streamed once per pixel fold.
        chunk = math.ceil(i_words / row_folds)
        candidates.append(("pixel folds outer",
                           row_folds * _refetch(chunk, col_folds, cfg.ifmap_words),
                           _refetch(w_words, row_folds, cfg.weight_words), 0))
        # Filter folds outer: one fold's filters are reused by every pixel fold; the
        # input is streamed once per filter fold.
        chunk = math.ceil(w_words / col_folds)
        candidates.append(("filter folds outer",
                           _refetch(i_words, col_folds, cfg.ifmap_words),
                           col_folds * _refetch(chunk, row_folds, cfg.weight_words), 0))
    if placement is not None:
        share, whole = placement.input_dram, placement.input_words
        candidates = [(o, -(-i * share // whole) if whole else i, w,
                       0 if placement.output_resident else p) for o, i, w, p in candidates]
        if placement.output_resident:
            o_words = 0
    order, ifmap, weight, spill = min(candidates, key=lambda c: c[1] + c[2] + 2 * c[3])
    counts = {
        ("dram", "ifmap", "reads"): ifmap * g.groups,
        ("dram", "weight", "reads"): weight * g.groups,
        ("dram", "psum", "reads"): spill * g.groups,
        ("dram", "psum", "writes"): spill * g.groups,
        ("dram", "ofmap", "writes"): o_words * g.groups,
    }
    return order, counts


def _add_dram_side_buffer(counts: dict[Count, int]) -> None:
    """Every word read from DRAM is written into the buffer; every word written to
    DRAM is read from it."""
    for (level, operand, kind), value in list(counts.items()):
        if level == "dram" and value:
            key = ("buffer", operand, "writes" if kind == "reads" else "reads")
            counts[key] = counts.get(key, 0) + value


def energy_by_level(counts: dict[Count, int], costs: dict[str, float]) -> dict[str, float]:
    """Energy = sum of accesses x cost per access, per level."""
    out = {level: 0.0 for level in LEVELS}
    for (level, _, _), count in counts.items():
        out[level] += count * costs[level]
    return out


def stall_cycles(counts: dict[Count, int], compute: int, dram_bw: float) -> int:
    """Cycles the array waits for DRAM: transfers overlap compute (double-buffered
    partitions), so the layer takes the longer of the two."""
    dram_words = sum(v for k, v in counts.items() if k[0] == "dram")
    return max(0, math.ceil(dram_words / dram_bw) - compute)


def scalesim_memory(dataflow: str, g: Gemm, cfg: AccelConfig,
                    compute: int) -> tuple[dict[Count, int], int, bool]:
    """SCALE-Sim 3.0's memory model in closed form: DRAM words per operand and the
    cycles the array is not computing, for all groups of a layer.

    SCALE-Sim streams each operand as the array consumes it (the im2col matrix,
    each fold padded to the array's width) through a double-buffered SRAM: half
    active, half prefetching, each operand on its own DRAM port of ``dram_bw``
    words per cycle. A stream that fits the active half is fetched once, before
    compute starts; a longer one is fetched again on every pass the dataflow
    makes over it (WS and OS: once per filter fold for inputs; OS: once per
    pixel fold for each filter fold's weights). Outputs (in WS, every row fold's
    partial sums) are written through the output SRAM and drained at the end.
    The returned cycles are the initial fill, the streaming time beyond compute,
    and the final drain: SCALE-Sim's "Total Cycles (incl. prefetch)" minus its
    compute cycles, to the cycle when every stream fits the active half of its
    SRAM. The flag says that one does not: SCALE-Sim's prefetcher then re-fetches
    more than once per pass (it thrashes when the array asks for words in another
    order than they were fetched), so the cycles here are a lower bound.
    """
    rows, cols, bw = cfg.rows, cfg.cols, cfg.dram_bw
    sr, sc, t = spatial_dims(dataflow, g)
    row_folds, col_folds = math.ceil(sr / rows), math.ceil(sc / cols)
    half = {op: math.ceil(words / 2) for op, words in
            (("ifmap", cfg.ifmap_words), ("weight", cfg.weight_words),
             ("ofmap", cfg.ofmap_words))}
    if dataflow == "ws":  # inputs swept once per filter fold; weights once
        streams = {"ifmap": (t * rows * row_folds, t * rows * row_folds, col_folds),
                   "weight": (sr * cols * col_folds, sr * cols * col_folds, 1)}
        ofmap = t * sc * row_folds
    else:  # inputs swept once per filter fold; each filter fold's weights once per pixel fold
        streams = {"ifmap": (rows * row_folds * t, rows * row_folds * t, col_folds),
                   "weight": (t * cols * col_folds, t * cols, row_folds)}
        ofmap = sr * sc
    fill, busy, reads, spills = 0.0, 0.0, {}, False
    for operand, (stream, reused, passes) in streams.items():
        reads[operand] = stream if reused <= half[operand] else stream * passes
        spills |= stream > half[operand]
        first = min(stream, half[operand])
        fill = max(fill, first / bw)
        busy = max(busy, (reads[operand] - first) / bw)
    drain = min(ofmap, half["ofmap"]) / bw
    busy = max(busy, (ofmap - min(ofmap, half["ofmap"])) / bw)
    spills |= ofmap > half["ofmap"]
    # SCALE-Sim counts from the first fetch to the last write, one cycle less than the sum.
    idle = math.ceil(fill + max(0.0, busy - compute / g.groups) + drain) - 1
    counts = {("dram", "ifmap", "reads"): reads["ifmap"] * g.groups,
              ("dram", "weight", "reads"): reads["weight"] * g.groups,
              ("dram", "ofmap", "writes"): ofmap * g.groups}
    return counts, max(0, idle) * g.groups, spills


# --------------------------------------------------------------------------- layers
def cost_compute_layer(layer: Any, cfg: AccelConfig, dataflow: str,
                       placement: Placement | None = None) -> LayerCost:
    """One conv/fc layer under one dataflow (and, with ``onchip``, one placement)."""
    g = gemm_view(layer, cfg.compat)
    cycles = compute_cycles(dataflow, g, cfg.rows, cfg.cols, cfg.rf_words)
    counts = array_counts(dataflow, g, cfg)
    if cfg.compat == "scalesim":
        cycles -= g.groups  # SCALE-Sim's count is one cycle shorter per layer it runs
        dram, stalls, spills = scalesim_memory(dataflow, g, cfg, cycles)
        order = "SCALE-Sim: a stream exceeds half its SRAM" if spills else \
            "SCALE-Sim: streams fit"
        counts.update(dram)
        _add_dram_side_buffer(counts)
    else:
        order, dram = dram_counts(dataflow, g, cfg, placement)
        counts.update(dram)
        _add_dram_side_buffer(counts)
        stalls = stall_cycles(counts, cycles, cfg.dram_bw)
    return LayerCost(
        name=layer.name, kind=layer.kind, dataflow=dataflow, loop_order=order,
        compute_cycles=cycles, stall_cycles=stalls,
        macs=g.macs, counts=counts, energy=energy_by_level(counts, cfg.costs),
    )


def _from_dram(words: int, placement: Placement | None) -> int:
    """The DRAM words of an input of ``words``, given where the placement has it."""
    if placement is None or not placement.input_words:
        return words
    return -(-words * placement.input_dram // placement.input_words)


def cost_fused_add(layer: Any, cfg: AccelConfig, placement: Placement) -> LayerCost:
    """An element-wise add computed in the output stage of the layer that produces its
    last operand: one operation per element, and a read of the other operand (the
    shortcut) from the buffer, fetched from DRAM first unless it is kept there. The
    host writes the sum instead of its own output, so nothing else moves. No cycles
    of its own; its DRAM words extend the host's stalls (:func:`simulate`)."""
    ops = int(layer.elements)
    counts: dict[Count, int] = {("mac", "-", "ops"): ops, ("buffer", "ifmap", "reads"): ops}
    if placement.input_dram:
        counts[("dram", "ifmap", "reads")] = placement.input_dram
    _add_dram_side_buffer(counts)
    return LayerCost(name=layer.name, kind=layer.kind, vector_ops=ops, counts=counts,
                     energy=energy_by_level(counts, cfg.costs))


def cost_vector_layer(layer: Any, cfg: AccelConfig,
                      placement: Placement | None = None) -> LayerCost:
    """Pooling and element-wise adds on a ``cols``-lane vector unit beside the array.

    They read their inputs from DRAM through the buffer and write their outputs
    back (with ``onchip``: the parts the placement keeps in the buffer stay
    there), one operation per output element and window position, each costed
    like a MAC. BatchNorm and activations are fused into the producer's output
    stage: one operation per element and no cycles or traffic of their own.
    Concatenation, dropout and flatten move no data at inference.
    """
    if placement is not None and placement.fused_into is not None:
        return cost_fused_add(layer, cfg, placement)
    cost = LayerCost(name=layer.name, kind=layer.kind)
    if cfg.compat == "scalesim":  # SCALE-Sim simulates conv and fc layers only
        cost.energy = energy_by_level({}, cfg.costs)
        cost.note = "not in SCALE-Sim's model (compat=scalesim)"
        return cost
    out_words = int(layer.elements)
    in_words = layer.batch * _prod(layer.in_shape) if layer.in_shape else out_words
    kept = placement is not None and placement.output_resident
    if layer.kind in POOL_KINDS:
        window = _prod(layer.kernel)
        ops = out_words * window
        counts = {("mac", "-", "ops"): ops,
                  ("dram", "ifmap", "reads"): _from_dram(in_words, placement),
                  ("buffer", "ifmap", "reads"): ops, ("buffer", "ofmap", "writes"): out_words,
                  ("dram", "ofmap", "writes"): 0 if kept else out_words}
        cost.note = f"vector unit, {cfg.cols} lanes"
    elif layer.kind == "add":
        ops = out_words
        counts = {("mac", "-", "ops"): ops,
                  ("dram", "ifmap", "reads"): _from_dram(2 * out_words, placement),
                  ("buffer", "ifmap", "reads"): 2 * out_words, ("buffer", "ofmap", "writes"): out_words,
                  ("dram", "ofmap", "writes"): 0 if kept else out_words}
        cost.note = f"vector unit, {cfg.cols} lanes"
    elif layer.kind in FUSED_KINDS:
        cost.vector_ops = out_words
        cost.counts = {("mac", "-", "ops"): out_words}
        cost.energy = energy_by_level(cost.counts, cfg.costs)
        cost.note = "fused into the producer's output stage"
        return cost
    elif layer.kind in FREE_KINDS:
        cost.energy = energy_by_level({}, cfg.costs)
        cost.note = "no data movement at inference"
        return cost
    else:
        cost.simulated = False
        cost.energy = energy_by_level({}, cfg.costs)
        cost.note = f"not simulated: the model has no cost for kind '{layer.kind}'"
        return cost
    _add_dram_side_buffer(counts)
    cost.vector_ops = ops
    cost.counts = counts
    cost.compute_cycles = math.ceil(ops / cfg.cols)
    cost.stall_cycles = stall_cycles(counts, cost.compute_cycles, cfg.dram_bw)
    cost.energy = energy_by_level(counts, cfg.costs)
    return cost


def simulate_layer(layer: Any, cfg: AccelConfig, placement: Placement | None = None) -> LayerCost:
    """Cost one layer; with ``dataflow='best'`` keep the cheaper of WS and OS
    (by total cycles or by energy, ``cfg.best_by``; ties go to the other measure).
    ``placement`` says where its operands are (``onchip`` modes; None: DRAM)."""
    if not layer.is_compute:
        return cost_vector_layer(layer, cfg, placement)
    if cfg.dataflow in DATAFLOWS:
        return cost_compute_layer(layer, cfg, cfg.dataflow, placement)
    options = [cost_compute_layer(layer, cfg, df, placement) for df in DATAFLOWS]
    if cfg.best_by == "energy":
        return min(options, key=lambda c: (c.total_energy, c.cycles))
    return min(options, key=lambda c: (c.cycles, c.total_energy))


def layer_signature(layer: Any) -> tuple:
    """Everything the cost of a layer depends on (all but its name)."""
    return (layer.kind, tuple(layer.in_shape), tuple(layer.out_shape), tuple(layer.kernel),
            tuple(layer.stride), layer.groups, layer.batch, layer.macs, layer.elements)


def simulate(layers: Sequence[Any], cfg: AccelConfig) -> list[LayerCost]:
    """Cost every layer of a network, in order; none is dropped.

    Networks repeat blocks, so a layer shaped like an earlier one reuses its cost.
    """
    return simulate_with_plan(layers, cfg)[0]


def simulate_with_plan(layers: Sequence[Any], cfg: AccelConfig
                       ) -> tuple[list[LayerCost], Plan | None]:
    """:func:`simulate`, and the on-chip plan it followed (None with ``onchip="none"``,
    under ``compat="scalesim"``, or when the table has no producer/consumer links:
    then every feature map goes through DRAM)."""
    plan = None
    if cfg.onchip != "none" and cfg.compat == "exact":
        plan = plan_onchip(layers, cfg.onchip, cfg.ifmap_words, cfg.ofmap_words)
    if plan is None:
        return _simulate_through_dram(layers, cfg), None
    seen: dict[tuple, LayerCost] = {}
    out: list[LayerCost] = []
    for layer, placement in zip(layers, plan.placements):
        key = (layer_signature(layer), placement.key)
        cost = seen.get(key)
        if cost is None:
            cost = seen[key] = simulate_layer(layer, cfg, placement)
        row = copy.copy(cost)  # a shallow copy per row: its name and placement differ
        row.name, row.input_from, row.output_to = layer.name, placement.input_from, \
            placement.output_to
        out.append(row)
    for i, placement in enumerate(plan.placements):
        if placement.fused_into is not None:  # the shortcut's DRAM words delay the host
            host, add = out[placement.fused_into], out[i]
            words = sum(v for k, v in host.counts.items() if k[0] == "dram") + \
                sum(v for k, v in add.counts.items() if k[0] == "dram")
            together = max(0, math.ceil(words / cfg.dram_bw) - host.compute_cycles)
            out[i] = replace(add, stall_cycles=together - host.stall_cycles,
                             note=f"in the output stage of {host.name}")
    for i, (cost, placement) in enumerate(zip(out, plan.placements)):
        out[i].context = (placement.key, cost.input_from, cost.output_to, cost.stall_cycles)
    return out, plan


def _simulate_through_dram(layers: Sequence[Any], cfg: AccelConfig) -> list[LayerCost]:
    """Every layer reads its inputs from DRAM and writes its output back."""
    seen: dict[tuple, LayerCost] = {}
    out = []
    for layer in layers:
        key = layer_signature(layer)
        cost = seen.get(key)
        if cost is None:
            cost = seen[key] = simulate_layer(layer, cfg)
        elif cost.name != layer.name:
            cost = replace(cost, name=layer.name)
        out.append(cost)
    return out
