"""MobileNet v1 (Howard et al., arXiv:1704.04861, 2017) at width 1.0, 0.75, 0.5 and 0.25.

The paper's Table 1 body: a 3x3 stride-2 conv with 32 filters, then 13
depthwise-separable blocks (3x3 depthwise conv and 1x1 pointwise conv, each
followed by BatchNorm and ReLU), global average pooling and a 1000-way fully
connected layer. The width multiplier scales every layer's channels (rounded
down). Input 224x224.
"""
from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from harness import ModelSpec, ReportedMetric, hookimpl

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch.nn as nn

FAMILY = "MobileNet"
STEM = 32
# (pointwise output channels, depthwise stride) for the 13 separable blocks.
BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1),
          (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))
SOURCE = "Howard et al., MobileNets, arXiv:1704.04861 (2017), Table 6 (224x224)"
# width -> top-1 accuracy (%) the paper reports; it reports no top-5.
REPORTED_TOP1 = {"1.0": 70.6, "0.75": 68.4, "0.5": 63.7, "0.25": 50.6}


def build_mobilenet_v1(width: float, num_classes: int = 1000) -> "nn.Module":
    from collections import OrderedDict

    import torch.nn as nn

    from plugins.models.blocks import Classifier, ConvBNReLU, initialised

    def scaled(channels: int) -> int:
        return int(channels * width)

    def make() -> nn.Module:
        cin = scaled(STEM)
        layers: dict[str, nn.Module] = {"conv1": ConvBNReLU(3, cin, 3, 2, 1)}
        for index, (channels, stride) in enumerate(BLOCKS, 1):
            cout = scaled(channels)
            layers[f"block{index}"] = nn.Sequential(OrderedDict(
                dw=ConvBNReLU(cin, cin, 3, stride, 1, groups=cin),
                pw=ConvBNReLU(cin, cout, 1),
            ))
            cin = cout
        layers["classifier"] = Classifier(cin, num_classes)
        return nn.Sequential(OrderedDict(layers))

    return initialised(make)


@hookimpl
def bench_models() -> list[ModelSpec]:
    return [
        ModelSpec(
            name=f"mobilenet_v1_{label}", family=FAMILY,
            builder=partial(build_mobilenet_v1, float(label)), input_size=(3, 224, 224),
            description=f"MobileNet v1, width multiplier {label}: 13 depthwise-separable blocks",
            reported=(ReportedMetric("top1", top1, SOURCE),),
            notes="the paper's Table 1 body with BatchNorm and ReLU; fc with bias",
        )
        for label, top1 in REPORTED_TOP1.items()
    ]
