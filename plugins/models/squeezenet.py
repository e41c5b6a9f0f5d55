"""SqueezeNet 1.0 and 1.1 (Iandola et al., arXiv:1602.07360, 2016), as torchvision defines them.

1.0 is the paper's network (7x7 stem, 96 filters, max-pools after conv1, fire4
and fire8); 1.1 is the revision from the authors' repository (3x3 stem, 64
filters, max-pools after conv1, fire3 and fire5: 2.4x less computation at the
same accuracy). Convolutions have biases and no BatchNorm; the classifier is
dropout, a 1x1 conv to 1000 channels, ReLU and global average pooling. Parameter
counts equal torchvision's (1,248,424 and 1,235,496).

The reference input is the original Caffe crop, 227x227 (the size SqueezeNext
compares against); 224 works as well (``--input-size 224``), as in torchvision.
"""
from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from harness import ModelSpec, ReportedMetric, hookimpl

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch.nn as nn

FAMILY = "SqueezeNet"
INPUT_SIZE = (3, 227, 227)
SOURCE = "Iandola et al., SqueezeNet, arXiv:1602.07360 (2016), Table 2"

# Fire modules as (name, squeeze, expand1x1, expand3x3); "pool" marks a max-pool.
LAYOUTS = {
    "squeezenet1_0": (96, 7, ["pool", ("fire2", 16, 64, 64), ("fire3", 16, 64, 64),
                              ("fire4", 32, 128, 128), "pool", ("fire5", 32, 128, 128),
                              ("fire6", 48, 192, 192), ("fire7", 48, 192, 192),
                              ("fire8", 64, 256, 256), "pool", ("fire9", 64, 256, 256)]),
    "squeezenet1_1": (64, 3, ["pool", ("fire2", 16, 64, 64), ("fire3", 16, 64, 64), "pool",
                              ("fire4", 32, 128, 128), ("fire5", 32, 128, 128), "pool",
                              ("fire6", 48, 192, 192), ("fire7", 48, 192, 192),
                              ("fire8", 64, 256, 256), ("fire9", 64, 256, 256)]),
}


def build_squeezenet(version: str, num_classes: int = 1000) -> "nn.Module":
    from collections import OrderedDict

    import torch.nn as nn

    from plugins.models.blocks import ConvReLU, Fire, initialised

    stem_channels, stem_kernel, layout = LAYOUTS[version]

    def make() -> nn.Module:
        layers: dict[str, nn.Module] = {"conv1": ConvReLU(3, stem_channels, stem_kernel, 2)}
        cin, previous = stem_channels, "1"
        for item in layout:
            if item == "pool":  # named after the layer it follows, as in the paper
                layers[f"maxpool{previous}"] = nn.MaxPool2d(3, 2, ceil_mode=True)
                continue
            name, squeeze, e1, e3 = item
            layers[name] = fire = Fire(cin, squeeze, e1, e3)
            cin, previous = fire.out_channels, name.removeprefix("fire")
        layers["dropout"] = nn.Dropout(0.5)
        layers["conv10"] = ConvReLU(cin, num_classes, 1)
        layers["pool10"] = nn.AdaptiveAvgPool2d(1)
        layers["flatten"] = nn.Flatten(1)
        return nn.Sequential(OrderedDict(layers))

    return initialised(make)


@hookimpl
def bench_models() -> list[ModelSpec]:
    return [
        ModelSpec(
            name="squeezenet1_0", family=FAMILY, builder=partial(build_squeezenet, "squeezenet1_0"),
            input_size=INPUT_SIZE,
            description="SqueezeNet 1.0: 7x7 stem, 8 Fire modules, conv10 classifier",
            reported=(ReportedMetric("top1", 57.5, SOURCE), ReportedMetric("top5", 80.3, SOURCE)),
            notes="torchvision architecture; parameter count equals torchvision's",
        ),
        ModelSpec(
            name="squeezenet1_1", family=FAMILY, builder=partial(build_squeezenet, "squeezenet1_1"),
            input_size=INPUT_SIZE,
            description="SqueezeNet 1.1: 3x3 stem, earlier pooling, 2.4x fewer MACs than 1.0",
            notes="torchvision architecture; no paper reports its accuracy (the authors' "
                  "repository says 'without sacrificing accuracy' versus 1.0)",
        ),
    ]
