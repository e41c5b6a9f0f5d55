"""Data-parallel training of a model-plugin CNN on synthetic images (problem ``cnn``).

The iterate is the model's parameters, laid out in one flat float32 buffer
that the parameters are views of; gradients land in a second flat buffer the
same way. Algorithms therefore see plain vectors and the Allreduce works on
the torch CPU buffers' memory directly, with no packing or copying.

Images are class prototypes plus noise, generated in fixed blocks from seeds,
so any rank can produce any image and the data set does not depend on the
number of ranks.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from harness.errors import BenchUsageError
from plugins.optimizers.linear import shard

IMAGES_PER_BLOCK = 64
EVAL_CHUNK = 64


def _model_spec(name: str) -> Any:
    from harness.plugins.manager import get_plugin_manager

    return get_plugin_manager().model(name)


def resize_classifier(model: nn.Module, classes: int) -> nn.Module:
    """Give the network's last fully connected layer ``classes`` outputs."""
    last = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            last = name
    if last is None:
        return model
    parent_name, _, attr = last.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    old = getattr(parent, attr)
    if old.out_features != classes:
        setattr(parent, attr, nn.Linear(old.in_features, classes, bias=old.bias is not None))
    return model


def build_model(opts: dict[str, Any]) -> nn.Module:
    spec = _model_spec(opts["model"])
    torch.manual_seed(opts["seed"])
    model = resize_classifier(spec.build(), opts["classes"])
    try:
        with torch.no_grad():
            model.eval()
            model(torch.zeros(2, 3, opts["input_size"], opts["input_size"]))
    except RuntimeError as exc:
        raise BenchUsageError(f"model '{spec.name}' does not run at input size "
                              f"{opts['input_size']}: {str(exc).splitlines()[0]}") from None
    return model.train()


def synthetic_images(opts: dict[str, Any], start: int, stop: int) -> tuple[torch.Tensor,
                                                                           torch.Tensor]:
    """Images ``[start, stop)`` and their labels: a class prototype plus Gaussian noise."""
    size, classes, seed = opts["input_size"], opts["classes"], opts["seed"]
    protos = np.random.default_rng([seed, 0x7FFF_FFFF]).standard_normal(
        (classes, 3, size, size)).astype(np.float32)
    images, labels = [], []
    for block in range(start // IMAGES_PER_BLOCK, (max(stop, start + 1) - 1) // IMAGES_PER_BLOCK + 1):
        lo = block * IMAGES_PER_BLOCK
        hi = min(lo + IMAGES_PER_BLOCK, opts["n"])
        rng = np.random.default_rng([seed, block])
        y = rng.integers(0, classes, size=hi - lo)
        x = 0.5 * protos[y] + rng.standard_normal((hi - lo, 3, size, size)).astype(np.float32)
        a, b = max(start, lo) - lo, min(stop, hi) - lo
        images.append(x[a:b])
        labels.append(y[a:b])
    return (torch.from_numpy(np.concatenate(images)),
            torch.from_numpy(np.concatenate(labels).astype(np.int64)))


@dataclass
class Batch:
    rows: np.ndarray
    scale: float  # loss = scale * mean over rows


class CNNProblem:
    """The rank-local part of data-parallel CNN training (follows protocol.Problem)."""

    name = "cnn"

    def __init__(self, opts: dict[str, Any], comm: Any) -> None:
        torch.set_num_threads(1)
        self.opts, self.comm = opts, comm
        self.model = build_model(opts)
        params = [p for p in self.model.parameters() if p.requires_grad]
        total = sum(p.numel() for p in params)
        self.flat = torch.zeros(total, dtype=torch.float32)
        self.flat_grad = torch.zeros(total, dtype=torch.float32)
        offset = 0
        for p in params:
            count = p.numel()
            self.flat[offset:offset + count].copy_(p.data.reshape(-1))
            p.data = self.flat[offset:offset + count].view_as(p)
            p.grad = self.flat_grad[offset:offset + count].view_as(p)
            offset += count
        self.x = self.flat.numpy()  # shares memory with the parameters
        self.grad = self.flat_grad.numpy()
        comm.bcast(self.x)  # identical start on every rank
        self.n, self.d, self.lam = opts["n"], total, opts["lam"]
        if self.n < comm.size:
            raise BenchUsageError(f"cnn has {self.n} images, fewer than the {comm.size} ranks")
        start, stop = shard(self.n, comm.rank, comm.size)
        self.images, self.labels = synthetic_images(opts, start, stop)
        self.n_local = stop - start
        eval_total = min(opts["eval_samples"], self.n)
        e_start, e_stop = shard(eval_total, comm.rank, comm.size)
        self.eval_total = eval_total
        self.eval_images, self.eval_labels = synthetic_images(opts, e_start, e_stop)
        self.f_star = None
        self.batch_hint = 32
        self.info = {"description": f"cnn: {opts['model']} at {opts['input_size']}x"
                                    f"{opts['input_size']}, {opts['classes']} classes, "
                                    f"{self.n} synthetic images",
                     "parameters": total}

    def _load(self, x: Any) -> None:
        if not np.shares_memory(x, self.x):
            self.x[:] = x

    def initial_point(self) -> np.ndarray:
        return self.x  # the parameters themselves: algorithms update them in place

    def minibatch(self, rng: np.random.Generator, size: int) -> Batch:
        K = self.comm.size
        key = int(rng.integers(2**62))  # advances rng identically on every rank
        if size <= 0:
            return Batch(np.arange(self.n_local), 1.0 / K)
        local = max(2, round(size / K))  # BatchNorm needs 2 images once maps are 1x1
        rows = np.random.default_rng([key, self.comm.rank]).integers(0, self.n_local, local)
        return Batch(rows, 1.0 / K)

    def local_minibatch(self, rng: np.random.Generator, size: int) -> Batch:
        if size <= 0:
            return Batch(np.arange(self.n_local), 1.0)
        return Batch(rng.integers(0, self.n_local, max(2, size)), 1.0)

    def gradient(self, x: Any, batch: Batch) -> np.ndarray:
        self._load(x)
        self.flat_grad.zero_()
        rows = torch.from_numpy(batch.rows)
        loss = F.cross_entropy(self.model(self.images[rows]), self.labels[rows])
        (loss * batch.scale).backward()
        return self.grad

    def step_size(self, batch: int) -> float:
        return float(self.opts["lr"])

    def objective(self, x: Any) -> float:
        """Training loss on the fixed evaluation images, BatchNorm on batch statistics.

        Batch statistics (train mode) rather than running averages, because the
        running averages lag far behind the weights early in training.
        """
        self._load(x)
        total = 0.0
        with torch.no_grad():
            for lo in range(0, len(self.eval_labels), EVAL_CHUNK):
                out = self.model(self.eval_images[lo:lo + EVAL_CHUNK])
                total += float(F.cross_entropy(out, self.eval_labels[lo:lo + EVAL_CHUNK],
                                               reduction="sum"))
        (loss_sum,) = self.comm.sum_scalars(total)
        return loss_sum / self.eval_total + 0.5 * self.lam * float(np.dot(self.x, self.x))


def prepare(opts: dict[str, Any]) -> dict[str, Any]:
    """Launcher side: the model exists and runs at this input size."""
    torch.set_num_threads(1)
    model = build_model(opts)
    d = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"n": opts["n"], "d": d, "f_star": None}


def build(opts: dict[str, Any], comm: Any) -> CNNProblem:
    return CNNProblem(opts, comm)
