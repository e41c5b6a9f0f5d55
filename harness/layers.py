"""The layer table: the one place that knows a network's shapes, parameters and MACs.

``layer_table(model, input_size)`` runs one forward pass on zeros and records
every tensor operation that matters for cost (convolutions, fully connected
layers, pooling, normalization, activations, element-wise adds, concatenations)
at the functional level, so it sees operations written inline in ``forward``
(``x + y``, ``torch.cat``) as well as those inside ``nn`` modules. It works for
any ``torch.nn.Module``, third-party ones included. Every hardware backend
consumes this table.

Counting conventions (the standard ones):

- MACs: one multiply-add per weight use. A convolution costs
  ``out_h * out_w * cout * (cin / groups) * kh * kw`` per sample; a fully
  connected layer ``in_features * out_features``. Bias additions, pooling,
  normalization, activations and element-wise adds cost no MACs (their element
  counts are in ``elements``).
- Parameters: the weights and biases the operation uses (BatchNorm's affine
  scale and shift, not its running statistics).
- Shapes are per sample, ``(C, H, W)`` or ``(F,)``; ``macs`` and ``elements``
  cover the whole batch.

Every row's ``extra["sources"]`` lists the rows whose outputs the operation
reads (indices into the table, in argument order; ``-1`` is the network's
input), so backends can follow tensors from producer to consumer. Operations
the table does not record (views, slicing, ...) pass their inputs' sources on.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Iterator, Sequence

from harness.errors import BenchUsageError

# Layer kinds.
CONV, GROUPED_CONV, DEPTHWISE_CONV, FC = "conv", "gconv", "dwconv", "fc"
MAXPOOL, AVGPOOL, BATCHNORM, ACTIVATION = "maxpool", "avgpool", "bn", "act"
ADD, CONCAT, DROPOUT, RESHAPE = "add", "concat", "dropout", "reshape"
COMPUTE_KINDS = (CONV, GROUPED_CONV, DEPTHWISE_CONV, FC)
META_ABOVE = 4  # inputs above 4x the default pixel count: shape-only, on the meta device
NETWORK_INPUT = -1  # the source index of the network's input in ``extra["sources"]``
_SOURCES = "_bench_sources"  # attribute tagging a traced tensor with the rows that produced it


@dataclass
class Layer:
    """One operation of a network, as hardware models need it."""

    name: str
    """The module path, e.g. ``features.conv1`` (``nn.Sequential`` children are named
    ``0``, ``1``, ...: name submodules for readable tables); an operation written inline
    in ``forward`` adds its own name (``block.add``), and repeats get ``.1``, ``.2``."""
    kind: str
    """``conv``, ``gconv`` (grouped), ``dwconv`` (depthwise), ``fc`` (the compute kinds);
    ``maxpool``, ``avgpool``, ``bn``, ``act``, ``add``, ``concat``, ``dropout``, ``reshape``."""
    in_shape: tuple[int, ...]
    """One sample's input, ``(C, H, W)`` or ``(F,)``; no batch dimension."""
    out_shape: tuple[int, ...]
    """One sample's output, as PyTorch computes it."""
    kernel: tuple[int, int] = (1, 1)
    """``(kh, kw)`` of a convolution or pooling window."""
    stride: tuple[int, int] = (1, 1)
    """``(sh, sw)``."""
    padding: tuple[int, int] = (0, 0)
    """``(ph, pw)`` added on each side."""
    groups: int = 1
    """Convolution groups (``Cin`` for a depthwise convolution)."""
    params: int = 0
    """Weights and biases the operation uses (BatchNorm: scale and shift)."""
    macs: int = 0
    """Multiply-accumulates over the whole batch (0 for non-compute kinds)."""
    batch: int = 1
    """The batch the counts cover."""
    elements: int = 0
    """Output elements over the whole batch: the work of non-MAC layers."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Kind-specific details, e.g. ``ceil_mode`` of a max pool, ``inputs`` of a concat; and
    for every traced row ``sources``: the rows whose outputs it reads (``-1``: the input)."""

    @property
    def cin(self) -> int:
        """Input channels (or features)."""
        return self.in_shape[0]

    @property
    def cout(self) -> int:
        """Output channels (or features)."""
        return self.out_shape[0]

    @property
    def out_hw(self) -> tuple[int, int]:
        """Output ``(H, W)``; ``(1, 1)`` for a flat output."""
        return (self.out_shape[1], self.out_shape[2]) if len(self.out_shape) == 3 else (1, 1)

    @property
    def in_hw(self) -> tuple[int, int]:
        """Input ``(H, W)``; ``(1, 1)`` for a flat input."""
        return (self.in_shape[1], self.in_shape[2]) if len(self.in_shape) == 3 else (1, 1)

    @property
    def is_compute(self) -> bool:
        """True for conv, gconv, dwconv and fc layers."""
        return self.kind in COMPUTE_KINDS

    def as_dict(self) -> dict[str, Any]:
        """The row as plain JSON-ready values (tuples become lists)."""
        row = asdict(self)
        for key in ("in_shape", "out_shape", "kernel", "stride", "padding"):
            row[key] = list(row[key])
        return row


def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        return (int(value[0]), int(value[-1]))
    return (int(value), int(value))


def _numel(shape: Sequence[int]) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


def _arg(args: tuple, kwargs: dict, index: int, name: str, default: Any) -> Any:
    if name in kwargs:
        return kwargs[name]
    return args[index] if len(args) > index else default


def _conv_kind(cin: int, cout: int, groups: int) -> str:
    if groups == 1:
        return CONV
    if groups == cin and cout % cin == 0:
        return DEPTHWISE_CONV
    return GROUPED_CONV


def layer_table(model: Any, input_size: Sequence[int], batch: int = 1) -> list[Layer]:
    """Run ``model`` once on zeros of shape ``(batch, *input_size)`` and return its layers.

    The model is put in eval mode for the pass and restored afterwards.
    """
    import torch
    import torch.nn.functional as F
    from torch.overrides import TorchFunctionMode

    layers: list[Layer] = []
    scope: list[str] = []  # names of the modules currently running
    used_names: dict[str, int] = {}

    def unique(name: str) -> str:
        count = used_names.get(name, 0)
        used_names[name] = count + 1
        return name if count == 0 else f"{name}.{count}"

    def shape(t: Any) -> tuple[int, ...]:
        return tuple(int(s) for s in t.shape[1:]) if isinstance(t, torch.Tensor) else ()

    def sources(values: Any) -> list[int]:
        """The rows that produced the tensors among ``values`` (lists/tuples opened once)."""
        found: list[int] = []
        for v in values:
            for t in (v if isinstance(v, (list, tuple)) else (v,)):
                if isinstance(t, torch.Tensor):
                    found += [i for i in getattr(t, _SOURCES, ()) if i not in found]
        return found

    def tag(out: Any, rows: Sequence[int]) -> None:
        for t in (out if isinstance(out, (list, tuple)) else (out,)):
            if isinstance(t, torch.Tensor):
                setattr(t, _SOURCES, tuple(rows))

    def record(kind: str, op: str, inp: Any, out: Any, **attrs: Any) -> None:
        attrs["extra"] = {**attrs.get("extra", {}), "sources": pending_sources}
        where = scope[-1] if scope else ""
        # A leaf module's first op is named by the module; other ops add their own name.
        leaf = attrs.pop("leaf", False)
        name = where if leaf and where not in used_names else (f"{where}.{op}" if where else op)
        out_t = out[0] if isinstance(out, (tuple, list)) else out
        layers.append(
            Layer(
                name=unique(name),
                kind=kind,
                in_shape=shape(inp),
                out_shape=shape(out_t),
                batch=batch,
                elements=int(out_t.numel()) if isinstance(out_t, torch.Tensor) else 0,
                **attrs,
            )
        )

    class Recorder(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            nonlocal pending_sources
            kwargs = kwargs or {}
            pending_sources = sources((*args, *kwargs.values()))
            rows_before = len(layers)
            out = func(*args, **kwargs)
            leaf = bool(scope) and scope[-1] in leaf_names
            fname = getattr(func, "__name__", "")
            if func is F.conv2d or fname == "conv2d":
                x, w = args[0], _arg(args, kwargs, 1, "weight", None)
                b = _arg(args, kwargs, 2, "bias", None)
                groups = int(_arg(args, kwargs, 6, "groups", 1))
                padding = _arg(args, kwargs, 4, "padding", 0)
                if isinstance(padding, str):  # 'same' / 'valid'
                    padding = [(k - 1) // 2 for k in w.shape[2:]] if padding == "same" else 0
                cout, cin_g, kh, kw = (int(s) for s in w.shape)
                oh, ow = int(out.shape[2]), int(out.shape[3])
                record(
                    _conv_kind(int(x.shape[1]), cout, groups), "conv", x, out,
                    kernel=(kh, kw), stride=_pair(_arg(args, kwargs, 3, "stride", 1)),
                    padding=_pair(padding), groups=groups,
                    params=int(w.numel()) + (int(b.numel()) if b is not None else 0),
                    macs=batch * oh * ow * cout * cin_g * kh * kw, leaf=leaf,
                )
            elif func is F.linear or fname == "linear":
                x, w = args[0], _arg(args, kwargs, 1, "weight", None)
                b = _arg(args, kwargs, 2, "bias", None)
                rows = _numel(x.shape[:-1])
                record(
                    FC, "fc", x, out,
                    params=int(w.numel()) + (int(b.numel()) if b is not None else 0),
                    macs=rows * int(w.shape[0]) * int(w.shape[1]), leaf=leaf,
                )
            elif fname in {"max_pool2d", "_max_pool2d", "max_pool2d_with_indices"}:
                k = _pair(_arg(args, kwargs, 1, "kernel_size", 1))
                s = _arg(args, kwargs, 2, "stride", None)
                record(
                    MAXPOOL, "maxpool", args[0], out, kernel=k, stride=_pair(s or k),
                    padding=_pair(_arg(args, kwargs, 3, "padding", 0)), leaf=leaf,
                    extra={"ceil_mode": bool(_arg(args, kwargs, 5, "ceil_mode", False))},
                )
            elif fname == "avg_pool2d":
                k = _pair(_arg(args, kwargs, 1, "kernel_size", 1))
                s = _arg(args, kwargs, 2, "stride", None)
                record(
                    AVGPOOL, "avgpool", args[0], out, kernel=k, stride=_pair(s or k),
                    padding=_pair(_arg(args, kwargs, 3, "padding", 0)), leaf=leaf,
                )
            elif fname == "adaptive_avg_pool2d" or (
                fname == "mean" and isinstance(args[0], torch.Tensor) and args[0].dim() == 4
            ):
                # Adaptive pooling to (oh, ow) is a plain pool with stride in // out and
                # the kernel that covers the rest (exact when in is a multiple of out).
                x = args[0]
                ih, iw = int(x.shape[2]), int(x.shape[3])
                oh, ow = (int(out.shape[2]), int(out.shape[3])) if out.dim() == 4 else (1, 1)
                sh, sw = max(ih // oh, 1), max(iw // ow, 1)
                record(AVGPOOL, "avgpool", x, out, kernel=(ih - (oh - 1) * sh, iw - (ow - 1) * sw),
                       stride=(sh, sw), leaf=leaf)
            elif fname == "batch_norm":
                w = _arg(args, kwargs, 3, "weight", None)
                b = _arg(args, kwargs, 4, "bias", None)
                params = sum(int(t.numel()) for t in (w, b) if t is not None)
                record(BATCHNORM, "bn", args[0], out, params=params, leaf=leaf)
            elif fname in {"relu", "relu_", "relu6", "hardtanh", "hardtanh_", "sigmoid",
                           "silu", "gelu", "leaky_relu", "hardswish", "tanh"}:
                record(ACTIVATION, fname.rstrip("_"), args[0], out, leaf=leaf)
            elif fname in {"add", "__add__", "__iadd__", "add_", "__radd__"} and all(
                isinstance(a, torch.Tensor) and a.dim() >= 2 for a in args[:2]
            ):
                record(ADD, "add", args[0], out, leaf=leaf)
            elif fname in {"cat", "concat", "concatenate"}:
                tensors = args[0] if args else kwargs["tensors"]
                record(CONCAT, "concat", tensors[0], out, leaf=leaf,
                       extra={"inputs": [list(shape(t)) for t in tensors]})
            elif fname in {"dropout", "dropout_"}:
                record(DROPOUT, "dropout", args[0], out, leaf=leaf)
            elif fname in {"flatten", "view", "reshape"} and isinstance(args[0], torch.Tensor) \
                    and args[0].dim() == 4 and isinstance(out, torch.Tensor) and out.dim() == 2:
                record(RESHAPE, "flatten", args[0], out, leaf=leaf)
            # a recorded op's output comes from its row; any other op passes its inputs' on
            tag(out, [rows_before] if len(layers) > rows_before else pending_sources)
            return out

    pending_sources: list[int] = []
    leaf_names: set[str] = set()
    handles = []
    for mod_name, module in model.named_modules():
        if not mod_name:
            continue
        if not any(True for _ in module.children()):
            leaf_names.add(mod_name)

        def pre(_m, _inp, _name=mod_name):
            scope.append(_name)

        def post(_m, _inp, _out, _name=mod_name):
            if scope and scope[-1] == _name:
                scope.pop()

        handles.append(module.register_forward_pre_hook(pre))
        handles.append(module.register_forward_hook(post))

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), Recorder():
            x = torch.zeros((batch, *input_size))
            setattr(x, _SOURCES, (NETWORK_INPUT,))
            model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return layers


def totals(layers: Sequence[Layer]) -> dict[str, int]:
    """Sums a report shows under a layer table."""
    return {
        "layers": len(layers),
        "compute_layers": sum(1 for l in layers if l.is_compute),
        "params": sum(l.params for l in layers),
        "params_conv_fc": sum(l.params for l in layers if l.is_compute),
        "macs": sum(l.macs for l in layers),
    }


# --------------------------------------------------------------------------- from a spec
@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one thread inside the block, and restore the count after."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def cpu_table(spec: Any, input_size: tuple[int, ...], batch: int = 1) -> list:
    """The layer table computed for real: build the model, run it once."""
    with one_thread():
        return layer_table(spec.build(), input_size, batch=batch)


def shape_only_table(spec: Any, input_size: tuple[int, ...], batch: int = 1) -> list:
    """The same layer table on the meta device: shapes only, no memory, no compute."""
    import torch
    import torch.nn.functional as F
    from torch.overrides import TorchFunctionMode

    class SkipBatchNormMath(TorchFunctionMode):
        """On meta, BatchNorm runs a slow Python decomposition only to return its
        input's shape; answer that shape directly. The layer table, a mode above
        this one, has already recorded the call with its arguments."""

        def __torch_function__(self, func, types, args=(), kwargs=None):
            if func is F.batch_norm:
                return torch.empty_like(args[0])
            return func(*args, **(kwargs or {}))

    with torch.device("meta"):
        model = spec.build()
        with SkipBatchNormMath():
            return layer_table(model, input_size, batch=batch)


def smallest_input(spec: Any) -> int | None:
    """The smallest square input side the model accepts, or None if its default fails.

    Bisection with plain forward passes of one model (valid sizes form an
    upward-closed range for convolution and pooling networks).
    """
    import torch

    channels, default = spec.input_size[0], max(spec.input_size[1:])
    model = spec.build().eval()

    def fits(side: int) -> bool:
        try:
            with torch.no_grad():
                model(torch.zeros((1, channels, side, side)))
        except RuntimeError:
            return False
        return True

    with one_thread():
        if not fits(default):
            return None
        low, high = 1, default  # high fits
        while low < high:
            middle = (low + high) // 2
            if fits(middle):
                high = middle
            else:
                low = middle + 1
    return high


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def with_batch(layers: Sequence[Layer], batch: int) -> list[Layer]:
    """The table at ``batch`` from the table at batch 1.

    Shapes are per sample and every operation treats samples independently, so
    only the batch-wide counts change, by the factor ``batch``: a table at batch
    100,000 costs what the table at batch 1 costs.
    """
    if batch == 1:
        return list(layers)
    return [replace(layer, batch=batch, macs=layer.macs * batch,
                    elements=layer.elements * batch, extra=dict(layer.extra))
            for layer in layers]


def _pixels(size: tuple[int, ...]) -> int:
    """Spatial positions of one sample: H*W for (C, H, W), 1 for a flat (F,) input."""
    n = 1
    for side in size[1:]:
        n *= int(side)
    return n


def model_layers(spec: Any, input_size: tuple[int, ...], batch: int = 1) -> list:
    """The layer table of a ModelSpec at ``input_size``: what backends and ``inspect`` use.

    Traced at batch 1 and scaled to ``batch`` (:func:`with_batch`), so
    ``--batch 100000`` costs what batch 1 costs. Traced on the CPU with one
    thread (a shape table needs no speed, and two OpenMP threads on a shared
    2-core machine can make small convolutions ten times slower). Inputs with
    more than ``META_ABOVE`` times the model's default pixel count go to
    PyTorch's ``meta`` device instead: the same rows, but no weights initialised
    and no activations computed, so ``--input-size 4096`` costs neither minutes
    nor gigabytes. (At default sizes the meta device is the slower choice: its
    first use imports torch's symbolic-shape machinery, about 0.8 s.)

    A size the model cannot take is a :class:`BenchUsageError` naming the sizes
    that work.
    """
    if _pixels(input_size) > META_ABOVE * _pixels(spec.input_size):
        try:
            return with_batch(shape_only_table(spec, input_size), batch)
        except (RuntimeError, NotImplementedError):
            pass  # an operation the meta device cannot run: compute it for real
    try:
        return with_batch(cpu_table(spec, input_size), batch)
    except RuntimeError as exc:
        error = exc
    side = input_size[-1]
    if len(spec.input_size) != 3 or len(input_size) != 3:  # no square side to search over
        raise BenchUsageError(f"model '{spec.name}' fails at input size "
                              f"{'x'.join(map(str, input_size))}: {_reason(error)}")
    smallest = smallest_input(spec)
    if smallest is not None and side < smallest:
        raise BenchUsageError(
            f"input size {side} does not fit model '{spec.name}' ({_reason(error)}); "
            f"valid: {smallest} or more (default {spec.input_size[-1]})"
        )
    raise BenchUsageError(f"model '{spec.name}' fails at input size {side}: {_reason(error)}")
