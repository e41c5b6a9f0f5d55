"""Small torch building blocks shared by the built-in model families.

Only model builders import this module (inside their bodies), so importing
torch here does not slow down ``bench list``. Submodules carry readable names
(``conv``, ``bn``, ``relu``, ``squeeze``...) because the layer table names
every operation after the module that runs it.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Sequence

import torch
import torch.nn as nn

Pair = int | tuple[int, int]


class ConvBNReLU(nn.Module):
    """Convolution without bias, BatchNorm (with affine scale and shift), ReLU."""

    def __init__(self, cin: int, cout: int, kernel: Pair, stride: Pair = 1,
                 padding: Pair = 0, groups: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


class ConvReLU(nn.Module):
    """Convolution with bias followed by ReLU (the pre-BatchNorm networks)."""

    def __init__(self, cin: int, cout: int, kernel: Pair, stride: Pair = 1,
                 padding: Pair = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv(x))


class Residual(nn.Module):
    """``relu(body(x') + shortcut(x))`` with ``x'`` either ``x`` or the shortcut's output.

    The shortcut is a module (a projection) or ``None`` for the identity. It runs
    first, so the layer table lists the projection before the body, as the
    SqueezeNext Caffe definitions do. ``body_from_shortcut`` feeds the body with
    the projection's output (SqueezeNext v5's first block of a stage).
    """

    def __init__(self, body: nn.Module, shortcut: nn.Module | None = None,
                 body_from_shortcut: bool = False) -> None:
        super().__init__()
        if body_from_shortcut and shortcut is None:
            raise ValueError("body_from_shortcut needs a projection shortcut")
        self.shortcut = shortcut
        self.body = body
        self.body_from_shortcut = body_from_shortcut
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x if self.shortcut is None else self.shortcut(x)
        out = self.body(skip if self.body_from_shortcut else x)
        return self.relu(out + skip)


class Fire(nn.Module):
    """SqueezeNet's Fire module: a 1x1 squeeze, then 1x1 and 3x3 expands concatenated."""

    def __init__(self, cin: int, squeeze: int, expand1x1: int, expand3x3: int) -> None:
        super().__init__()
        self.squeeze = ConvReLU(cin, squeeze, 1)
        self.expand1x1 = ConvReLU(squeeze, expand1x1, 1)
        self.expand3x3 = ConvReLU(squeeze, expand3x3, 3, padding=1)

    @property
    def out_channels(self) -> int:
        return self.expand1x1.conv.out_channels + self.expand3x3.conv.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.squeeze(x)
        return torch.cat([self.expand1x1(x), self.expand3x3(x)], 1)


class Classifier(nn.Module):
    """Global average pool, flatten, fully connected layer (the modern head)."""

    def __init__(self, features: int, num_classes: int, bias: bool = True) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(features, num_classes, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(x), 1))


def mlp_head(sizes: Sequence[int], dropout: float, dropout_first: bool,
             first_index: int = 6) -> nn.Sequential:
    """The AlexNet/VGG classifier: Linear+ReLU pairs with dropout, the last Linear bare.

    ``dropout_first`` puts each dropout before its Linear (AlexNet in torchvision's
    order); otherwise it follows each ReLU (VGG). Layers are named as in the papers
    (``fc6``, ``relu6``, ``drop6``, ...), counting from ``first_index``.
    """
    layers: dict[str, nn.Module] = {}
    pairs = list(zip(sizes[:-1], sizes[1:]))
    for offset, (fin, fout) in enumerate(pairs):
        index, last = first_index + offset, offset == len(pairs) - 1
        if dropout_first and not last:
            layers[f"drop{index}"] = nn.Dropout(dropout)
        layers[f"fc{index}"] = nn.Linear(fin, fout)
        if not last:
            layers[f"relu{index}"] = nn.ReLU(inplace=True)
            if not dropout_first:
                layers[f"drop{index}"] = nn.Dropout(dropout)
    return nn.Sequential(OrderedDict(layers))


def init_weights(model: nn.Module) -> nn.Module:
    """Kaiming-normal convolutions, N(0, 0.01) linear layers, BatchNorm at identity.

    PyTorch's default initialisation shrinks activations layer by layer: at the
    end of MobileNet v1 two different images give the same logits, and values
    near the denormal range make CPU timing runs slow. With this one they keep
    their scale through the depth. Nothing here claims to reproduce a paper's
    initialisation.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
            m.reset_running_stats()
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif any(True for _ in m.parameters(recurse=False)) or \
                any(True for _ in m.buffers(recurse=False)):
            raise TypeError(f"init_weights does not know how to initialise {type(m).__name__}")
    return model


def initialised(make: Callable[[], nn.Module], large: bool = False) -> nn.Module:
    """``make()`` on the default device, weights set by :func:`init_weights`.

    Modules initialise their weights as they are constructed, so ``init_weights``
    initialises them a second time. For ``large`` networks (AlexNet, VGG: 10^8
    weights, most of the build time) the network is constructed on the meta
    device and allocated before the one initialisation; for small ones that
    detour costs more than it saves. On the meta device itself (``bench
    inspect``'s shape-only tables) there are no values to initialise.
    """
    device = torch.get_default_device()
    if device.type == "meta":
        return make()
    if not large:
        return init_weights(make())
    with torch.device("meta"):
        model = make()
    return init_weights(model.to_empty(device=device))
