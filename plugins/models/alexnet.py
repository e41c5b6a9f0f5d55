"""AlexNet as torchvision defines it: the single-tower variant of Krizhevsky's
"One weird trick for parallelizing convolutional neural networks" (arXiv:1404.5997),
64-192-384-256-256 filters and no local response normalisation, rather than the
grouped two-GPU network of the 2012 paper. Parameters equal torchvision's 61,100,840.

The adaptive 6x6 average pool keeps the classifier's 9216 inputs at any input size
from 63 up (at 224 it passes the 6x6 features through unchanged).
The reported accuracy is the 2012 paper's single network (different channel
counts from this variant); it is marked as such.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from harness import ModelSpec, ReportedMetric, hookimpl

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch.nn as nn

SOURCE = ("Krizhevsky et al., ImageNet Classification with Deep CNNs, NIPS 2012, Table 2: "
          "1 CNN, ILSVRC-2012 val, 40.7% / 18.2% error (the original two-tower network)")


def build_alexnet(num_classes: int = 1000) -> "nn.Module":
    from collections import OrderedDict

    import torch.nn as nn

    from plugins.models.blocks import ConvReLU, initialised, mlp_head

    def make() -> nn.Module:
        features = nn.Sequential(OrderedDict(
            conv1=ConvReLU(3, 64, 11, 4, 2),
            pool1=nn.MaxPool2d(3, 2),
            conv2=ConvReLU(64, 192, 5, padding=2),
            pool2=nn.MaxPool2d(3, 2),
            conv3=ConvReLU(192, 384, 3, padding=1),
            conv4=ConvReLU(384, 256, 3, padding=1),
            conv5=ConvReLU(256, 256, 3, padding=1),
            pool5=nn.MaxPool2d(3, 2),
        ))
        return nn.Sequential(OrderedDict(
            features=features,
            avgpool=nn.AdaptiveAvgPool2d((6, 6)),
            flatten=nn.Flatten(1),
            classifier=mlp_head([256 * 6 * 6, 4096, 4096, num_classes], 0.5,
                                dropout_first=True),
        ))

    return initialised(make, large=True)


@hookimpl
def bench_models() -> list[ModelSpec]:
    return [ModelSpec(
        name="alexnet", family="AlexNet", builder=build_alexnet, input_size=(3, 224, 224),
        description="AlexNet (torchvision's single-tower variant): 5 convs, 3 fc",
        reported=(ReportedMetric("top1", 59.3, SOURCE), ReportedMetric("top5", 81.8, SOURCE)),
        notes="torchvision architecture; reported accuracy is the original 2012 network's",
    )]
