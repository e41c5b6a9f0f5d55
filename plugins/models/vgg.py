"""VGG-19 (Simonyan and Zisserman, ICLR 2015, configuration E) as torchvision defines it.

Sixteen 3x3 convolutions with biases and ReLU in five stages of 64/128/256/512/512
filters, each stage closed by a 2x2 max-pool, then an adaptive 7x7 average pool
and three fully connected layers with dropout. Parameters equal torchvision's
143,667,240.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from harness import ModelSpec, ReportedMetric, hookimpl

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch.nn as nn

STAGES_19 = ((64, 2), (128, 2), (256, 4), (512, 4), (512, 4))  # (filters, convs) per stage
SOURCE = ("Simonyan & Zisserman, Very Deep Convolutional Networks, ICLR 2015, Table 3: "
          "config E, train scale 256-512, test scale 384, 25.5% / 8.0% val error")


def build_vgg(stages: tuple[tuple[int, int], ...] = STAGES_19,
              num_classes: int = 1000) -> "nn.Module":
    from collections import OrderedDict

    import torch.nn as nn

    from plugins.models.blocks import ConvReLU, initialised, mlp_head

    def make() -> nn.Module:
        features: dict[str, nn.Module] = {}
        cin = 3
        for stage, (filters, convs) in enumerate(stages, 1):
            for i in range(1, convs + 1):
                features[f"conv{stage}_{i}"] = ConvReLU(cin, filters, 3, padding=1)
                cin = filters
            features[f"pool{stage}"] = nn.MaxPool2d(2, 2)
        return nn.Sequential(OrderedDict(
            features=nn.Sequential(OrderedDict(features)),
            avgpool=nn.AdaptiveAvgPool2d((7, 7)),
            flatten=nn.Flatten(1),
            classifier=mlp_head([cin * 7 * 7, 4096, 4096, num_classes], 0.5,
                                dropout_first=False),
        ))

    return initialised(make, large=True)


@hookimpl
def bench_models() -> list[ModelSpec]:
    return [ModelSpec(
        name="vgg19", family="VGG", builder=build_vgg, input_size=(3, 224, 224),
        description="VGG-19 (configuration E): 16 3x3 convs, 3 fc",
        reported=(ReportedMetric("top1", 74.5, SOURCE), ReportedMetric("top5", 92.0, SOURCE)),
        notes="torchvision architecture; parameter count equals torchvision's",
    )]
