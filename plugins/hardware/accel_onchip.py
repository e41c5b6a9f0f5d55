"""Where each feature map lives between layers: DRAM, or the accelerator's global buffer.

The default cost model (``onchip=none``) sends every layer's input and output
through DRAM, as SCALE-Sim does. Real accelerators do better, and this module
plans two things they do, for :func:`plugins.hardware.accel_model.simulate`:

- ``fuse``: an element-wise add is computed in the output stage of the
  convolution that produces its last operand (as BatchNorm and activations
  already are): that convolution writes the sum, and only the add's other
  operand (the shortcut) is read, so the pre-add feature map never exists
  and the vector unit is not used. Every feature map still goes through DRAM.
- ``reuse``: ``fuse``, and a feature map stays in the global buffer when it
  fits, so its consumers read it there instead of from DRAM, and it is never
  written out. Capacity is accounted: the input and output partitions form one
  pool for activations; at every layer, the feature maps kept on chip that are
  still to be read (a block's shortcut input, the parts of a concatenation),
  plus the staging room that layer needs for whatever it still streams from or
  to DRAM (its partitions, or less when the operand is smaller), must fit the
  pool. Feature maps are decided first come, first served in execution order;
  one that does not fit goes to DRAM as in the default model. Because every
  streaming layer keeps the room the default model gives it, no layer moves
  more DRAM words than it does there.

The producer/consumer relation comes from the layer table: ``extra["sources"]``
(recorded by :func:`harness.layers.layer_table`) lists the rows each operation
reads. BatchNorm, activations, dropout and flatten are views of their input
(they run in the producer's output stage); a concatenation is its parts, placed
side by side. Anything the model cannot read from the buffer with certainty (a
kind it does not simulate, an operand whose size does not match, the network's
input and output) goes through DRAM. A table without sources gets no plan, and
the caller falls back to ``onchip=none`` with a warning.
"""
from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from typing import Any, Sequence

MODES = ("none", "fuse", "reuse")
COMPUTE_KINDS = ("conv", "gconv", "dwconv", "fc")
POOL_KINDS = ("maxpool", "avgpool")
VIEW_KINDS = ("bn", "act", "dropout", "reshape")  # the output is the input, transformed in place
MODELLED_READERS = COMPUTE_KINDS + POOL_KINDS + ("add",)


@dataclass(frozen=True)
class Placement:
    """Where one layer's operands come from and where its output goes.

    ``input_words`` counts the words of the input it reads (whole batch; for a
    fused add, the shortcut operand), ``input_dram`` those of them read from
    DRAM (the rest is read from the buffer). ``output_resident``: the output stays
    in the buffer and is never written to DRAM. ``fused_into`` is the row whose
    output stage computes this add. ``input_from`` and ``output_to`` say it in
    words for the per-layer rows.
    """

    input_words: int = 0
    input_dram: int = 0
    output_resident: bool = False
    fused_into: int | None = None
    input_from: str = "-"
    output_to: str = "-"

    @property
    def key(self) -> tuple:
        """What the cost of a layer depends on (besides its shape)."""
        return (self.input_words, self.input_dram, self.output_resident,
                self.fused_into is not None)


NOTHING = Placement()  # a row that reads nothing the model moves (views, concatenations)


@dataclass
class Value:
    """One feature map as stored: produced at row ``start``, read by rows ``readers``."""

    words: int
    start: int
    readers: list[int] = field(default_factory=list)
    pinned: bool = False  # must go to DRAM (network output, unknown reader, ...)
    resident: bool = False

    @property
    def end(self) -> int:
        return max(self.readers, default=self.start)


@dataclass
class Plan:
    """The placement of every row, the on-chip feature maps, and the buffer's peak use."""

    placements: list[Placement]
    resident_values: int = 0
    fused_adds: int = 0
    peak_words: int = 0


def has_sources(layers: Sequence[Any]) -> bool:
    """True when every row says which rows it reads (tables traced by harness.layers)."""
    return all(isinstance(getattr(l, "extra", {}).get("sources"), list) for l in layers)


def _sources(layer: Any) -> list[int]:
    return list(layer.extra["sources"])


def _in_words(layer: Any) -> int:
    n = layer.batch
    for s in layer.in_shape:
        n *= int(s)
    return n


def plan(layers: Sequence[Any], mode: str, ifmap_words: int, ofmap_words: int) -> Plan | None:
    """The placement of every row under ``mode`` (``fuse`` or ``reuse``), or None when
    the table has no producer/consumer links."""
    if mode not in MODES[1:]:
        raise ValueError(f"onchip mode must be one of {MODES[1:]}, not {mode!r}")
    if not has_sources(layers):
        return None
    n = len(layers)
    values: list[Value] = []
    value_of: list[list[int]] = [[] for _ in range(n)]  # a row's output as stored values
    network_input = Value(words=0, start=-1, pinned=True)
    values.append(network_input)

    def parts(row: int) -> list[int]:
        return [network_input_id] if row < 0 else value_of[row]

    network_input_id = 0
    readers_of_row: list[list[int]] = [[] for _ in range(n)]
    for j, layer in enumerate(layers):
        for s in _sources(layer):
            if 0 <= s < n:
                readers_of_row[s].append(j)

    # Pass 1: stored values, views and concatenations as aliases, every reader noted.
    reads: list[list[int]] = [[] for _ in range(n)]  # value ids each row reads
    for j, layer in enumerate(layers):
        src = _sources(layer)
        own = Value(words=int(layer.elements), start=j)
        if layer.kind in VIEW_KINDS and len(src) == 1 and src[0] >= 0 \
                and readers_of_row[src[0]] == [j]:
            value_of[j] = parts(src[0])  # in place, in the producer's output stage
            continue
        if layer.kind == "concat" and src and all(s >= 0 for s in src) and \
                sum(values[v].words for s in src for v in parts(s)) == layer.elements:
            value_of[j] = [v for s in src for v in parts(s)]  # its parts, side by side
            continue
        inputs = [v for s in src for v in parts(s)]
        reads[j] = inputs
        if layer.kind in VIEW_KINDS + ("concat",):
            own.pinned = True  # a copy the model has no cost for: its consumers read DRAM
        elif layer.kind not in MODELLED_READERS or not _clear_inputs(layer, inputs, values):
            own.pinned = layer.kind not in MODELLED_READERS  # not simulated: DRAM both ways
            for v in inputs:
                values[v].pinned = True  # a reader the model cannot serve from the buffer
        values.append(own)
        value_of[j] = [len(values) - 1]
        for v in reads[j]:
            values[v].readers.append(j)

    # Pass 2: adds computed in the output stage of their last operand's producer.
    placements = [NOTHING] * n
    writes: dict[int, int] = {}  # host row -> the value it writes instead of its own
    fused: dict[int, tuple[int, int]] = {}  # add row -> (host row, shortcut value)
    for j, layer in enumerate(layers):
        if layer.kind != "add" or len(reads[j]) != 2 or len(value_of[j]) != 1:
            continue
        a, b = reads[j]
        host_value, other = (a, b) if values[a].start >= values[b].start else (b, a)
        host = values[host_value].start
        if host < 0 or layers[host].kind not in COMPUTE_KINDS or host in writes \
                or values[host_value].readers != [j] or values[host_value].pinned \
                or values[host_value].words != layer.elements:
            continue
        out = values[value_of[j][0]]
        out.start = host  # the host's output stage writes the sum
        values[host_value].readers = []
        values[host_value].words = 0  # never stored
        writes[host] = value_of[j][0]
        fused[j] = (host, other)

    for v in values:
        if v is not network_input and not v.readers:
            v.pinned = True  # the network's output (or a dead end) leaves the chip

    def output_value(row: int) -> Value | None:
        if row in writes:
            return values[writes[row]]
        ids = value_of[row]
        return values[ids[0]] if len(ids) == 1 and values[ids[0]].start == row else None

    shortcut_of = {host: other for host, other in fused.values()}

    def dram_in(row: int) -> int:
        words = sum(values[v].words if v else _in_words(layers[row]) for v in reads[row]
                    if not values[v].resident)
        other = shortcut_of.get(row)
        if other is not None and not values[other].resident:
            words += values[other].words  # the host streams the shortcut of its add too
        return words

    working = [j for j, l in enumerate(layers) if reads[j] and j not in fused
               and l.kind in MODELLED_READERS]

    live = {r: 0 for r in working}  # words of on-chip feature maps alive at each working row

    def occupancy(row: int) -> int:
        """What the buffer holds while ``row`` runs: the feature maps kept on chip that are
        alive, plus the staging room the row needs for what it streams from or to DRAM."""
        need_in = min(ifmap_words, dram_in(row))
        out = output_value(row)
        need_out = 0 if out is not None and out.resident else \
            min(ofmap_words, out.words if out is not None else layers[row].elements)
        return live[row] + need_in + need_out

    # Pass 3 (reuse): keep feature maps on chip, first come first served, while they fit.
    pool = ifmap_words + ofmap_words
    peak = 0
    if mode == "reuse":
        for vid in sorted(range(1, len(values)), key=lambda i: values[i].start):
            v = values[vid]
            if v.pinned or not v.words:
                continue
            span = working[bisect_left(working, v.start):bisect_right(working, v.end)]
            v.resident = True
            for r in span:
                live[r] += v.words
            if any(occupancy(r) > pool for r in span):
                v.resident = False
                for r in span:
                    live[r] -= v.words
        peak = max((occupancy(r) for r in working), default=0)

    # Placements for the per-layer rows.
    for j, layer in enumerate(layers):
        if j in fused:
            host, other = fused[j]
            here = values[other].resident
            placements[j] = Placement(
                input_words=values[other].words, input_dram=0 if here else values[other].words,
                fused_into=host, input_from="array+" + ("buffer" if here else "dram"),
                output_to=f"in {layers[host].name}")
            continue
        if not reads[j] or layer.kind not in MODELLED_READERS:
            continue
        total = sum(values[v].words if v else _in_words(layer) for v in reads[j])
        from_dram = sum(values[v].words if v else _in_words(layer) for v in reads[j]
                        if not values[v].resident)
        out = output_value(j)
        resident = out is not None and out.resident
        placements[j] = Placement(
            input_words=total, input_dram=from_dram, output_resident=resident,
            input_from="dram" if from_dram == total else ("buffer" if not from_dram else "mixed"),
            output_to="buffer" if resident else "dram")
    return Plan(placements=placements, fused_adds=len(fused),
                resident_values=sum(1 for v in values if v.resident), peak_words=peak)


def _clear_inputs(layer: Any, inputs: list[int], values: list[Value]) -> bool:
    """True when the values a row reads are exactly its input (so it can read them
    from wherever they are); the network input (value 0) only as the sole input."""
    if not inputs or (0 in inputs and inputs != [0]):
        return False
    if inputs == [0]:
        return True
    sizes = [values[v].words for v in inputs]
    if layer.kind == "add":
        return len(inputs) == 2 and all(s == layer.elements for s in sizes)
    return sum(sizes) == _in_words(layer)
