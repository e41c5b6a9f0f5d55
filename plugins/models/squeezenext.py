"""SqueezeNext (Gholami et al., "SqueezeNext: Hardware-Aware Neural Network Design",
CVPR-W 2018, arXiv:1803.10615): the whole design-study grid.

Published definitions, reproduced exactly (the official Caffe ``train_val.prototxt``
files in github.com/amirgholami/SqueezeNext; the tests compare every conv and fc
with them layer by layer): 1.0-SqNxt-23, 2.0-SqNxt-23, 1.0-SqNxt-23v5,
2.0-SqNxt-23v5 and 1.0-G-SqNxt-23. 1.5-SqNxt-23 and 1.5-SqNxt-23v5 apply the
paper's width multiplier to those definitions and nothing else.

The structure, as the Caffe files define it:

- Stem: 7x7 conv, 64 filters, stride 2, no padding; 3x3 max-pool, stride 2, ceil
  rounding (227 -> 111 -> 55). The stem's 64 and the head's 128 filters are not
  scaled by the width multiplier.
- Every conv, projection included, is conv (no bias) -> BatchNorm (affine) -> ReLU;
  one more ReLU follows each residual add.
- A block with C output channels: 1x1 to C/2 (carries the stride) -> 1x1 to C/4
  -> 3x1 to C/2 -> 1x3 to C/2 -> 1x1 to C. The 3x1/1x3 order alternates block by
  block over the whole network (odd blocks 3x1 first, even blocks 1x3 first).
- The first block of each stage has a 1x1 projection shortcut (stride 1 in stage 1,
  2 after), even where the channel counts match; the others use the identity.
- Stages of 32/64/128/256 x width channels with [6, 6, 8, 1] blocks (23 layers;
  the paper's 44-layer variants use [12, 12, 16, 2], with no official prototxt),
  then a 1x1 conv to 128, global average pooling and a 1000-way fc without bias.
- v5: blocks [2, 4, 14, 1], a 5x5 stem (227 -> 112 -> 56), and in each stage's
  first block the body reads the projection's output (all its strides 1).
- G (1.0-G-SqNxt-23): groups=2 on the block's first 1x1 and on the 3x1 and 1x3.

Reconstructions (no official definition is public; each follows the paper's text
and keeps everything else identical to the published v1):

- 34 layers: blocks [9, 9, 12, 2], halfway between the 23-layer [6, 6, 8, 1] and the
  44-layer [12, 12, 16, 2] stage by stage (the last stage rounded up), 32 blocks.
- v2: v1 with v5's 5x5 stem, blocks [6, 6, 8, 1].
- v3 and v4: the 5x5 stem and blocks moved out of the first stage, [4, 8, 8, 1] and
  [2, 10, 8, 1], on the way to v5's [2, 4, 14, 1] (which then moves the second
  stage's extra blocks to the third). Every variant keeps 21 blocks. Their first
  blocks read the block input as v1 does (v5's projection feeding is only
  documented for v5).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from harness import ModelSpec, ReportedMetric, hookimpl

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch.nn as nn

FAMILY = "SqueezeNext"
INPUT_SIZE = (3, 227, 227)  # the official definitions' crop
STAGE_CHANNELS = (32, 64, 128, 256)
STEM_CHANNELS = 64
HEAD_CHANNELS = 128
OFFICIAL = "official Caffe definition, github.com/amirgholami/SqueezeNext"

# ImageNet top-1 / top-5 (%) the paper reports for the published variants. The paper's own
# text could not be opened where this was written; the figures agree in two independent
# copies of its results (the "pytorch_model_integration" README's model table, and
# Intelligent-Microsystems-Lab/HeterogeneousQuantization's SqueezeNext README, "original
# paper 67.18%" for 2.0-SqNxt-23). Variants without a figure here report none: the
# reconstructions (34 layers, v2-v4) and 1.5x, 44-layer and G variants until checked.
SOURCE = ("Gholami et al., SqueezeNext, CVPR-W 2018 (arXiv:1803.10615), ImageNet results "
          "tables; checked against two copies of the paper's table, not its text")
REPORTED = {
    "1.0-SqNxt-23": (59.05, 82.60),
    "1.0-SqNxt-23v5": (59.24, 82.41),
    "2.0-SqNxt-23": (67.18, 88.17),
    "2.0-SqNxt-23v5": (67.44, 88.20),
}


def _reported(name: str) -> tuple[ReportedMetric, ...]:
    if name not in REPORTED:
        return ()
    top1, top5 = REPORTED[name]
    return (ReportedMetric("top1", top1, SOURCE), ReportedMetric("top5", top5, SOURCE))


@dataclass(frozen=True)
class SqNxtVariant:
    """One point of the design grid."""

    name: str
    width: float
    blocks: tuple[int, int, int, int]
    stem_kernel: int = 7
    body_from_projection: bool = False  # v5: the first block's body reads the projection
    groups: int = 1  # G variant: groups on the first 1x1 and the separable convs
    notes: str = ""

    @property
    def stage_channels(self) -> tuple[int, ...]:
        return tuple(int(c * self.width) for c in STAGE_CHANNELS)

    @property
    def description(self) -> str:
        extras = [f"{self.stem_kernel}x{self.stem_kernel} stem"]
        if self.body_from_projection:
            extras.append("first blocks fed by the projection")
        if self.groups > 1:
            extras.append(f"groups={self.groups}")
        return (f"SqueezeNext, width {self.width}, blocks "
                f"{'/'.join(map(str, self.blocks))}, " + ", ".join(extras))


def _variants() -> list[SqNxtVariant]:
    widths = (1.0, 1.5, 2.0)
    depths = {23: (6, 6, 8, 1), 34: (9, 9, 12, 2), 44: (12, 12, 16, 2)}
    # version -> (blocks, stem kernel, body reads the projection)
    versions = {2: ((6, 6, 8, 1), 5, False), 3: ((4, 8, 8, 1), 5, False),
                4: ((2, 10, 8, 1), 5, False), 5: ((2, 4, 14, 1), 5, True)}
    published = {"1.0-SqNxt-23", "2.0-SqNxt-23", "1.0-SqNxt-23v5", "2.0-SqNxt-23v5"}
    out: list[SqNxtVariant] = []
    for width in widths:
        for depth, blocks in depths.items():
            name = f"{width:.1f}-SqNxt-{depth}"
            if name in published:
                notes = OFFICIAL
            elif depth == 23:
                notes = "width multiplier applied to the official 1.0-SqNxt-23 definition"
            elif depth == 44:
                notes = "the paper's 44-layer blocks [12, 12, 16, 2]; no official prototxt"
            else:
                notes = "reconstruction: 34-layer blocks [9, 9, 12, 2] (no official definition)"
            out.append(SqNxtVariant(name, width, blocks, notes=notes))
        for version, (blocks, stem, from_proj) in versions.items():
            name = f"{width:.1f}-SqNxt-23v{version}"
            if name in published:
                notes = OFFICIAL
            elif version == 5:
                notes = "width multiplier applied to the official 1.0-SqNxt-23v5 definition"
            else:
                notes = (f"reconstruction: v{version} = 5x5 stem, blocks {list(blocks)} "
                         "(no official definition)")
            out.append(SqNxtVariant(name, width, blocks, stem, from_proj, notes=notes))
    out.append(SqNxtVariant("1.0-G-SqNxt-23", 1.0, (6, 6, 8, 1), groups=2, notes=OFFICIAL))
    return out


VARIANTS: tuple[SqNxtVariant, ...] = tuple(_variants())


def build_squeezenext(variant: SqNxtVariant, num_classes: int = 1000) -> "nn.Module":
    """The network for one variant, with module names that read as a layer table."""
    from collections import OrderedDict

    import torch.nn as nn

    from plugins.models.blocks import Classifier, ConvBNReLU, Residual, initialised

    g = variant.groups

    def block(index: int, cin: int, cout: int, stride: int, first: bool) -> nn.Module:
        """Block ``index`` (1-based over the whole network) with ``cout`` outputs."""
        vertical, horizontal = ((3, 1), (1, 0)), ((1, 3), (0, 1))
        (k1, p1), (k2, p2) = (vertical, horizontal) if index % 2 == 1 else (horizontal, vertical)
        shortcut = ConvBNReLU(cin, cout, 1, stride) if first else None
        from_proj = first and variant.body_from_projection
        body_in, body_stride = (cout, 1) if from_proj else (cin, stride)
        body = nn.Sequential(OrderedDict(
            squeeze1=ConvBNReLU(body_in, cout // 2, 1, body_stride, groups=g),
            squeeze2=ConvBNReLU(cout // 2, cout // 4, 1),
            sep1=ConvBNReLU(cout // 4, cout // 2, k1, 1, p1, groups=g),
            sep2=ConvBNReLU(cout // 2, cout // 2, k2, 1, p2, groups=g),
            expand=ConvBNReLU(cout // 2, cout, 1),
        ))
        return Residual(body, shortcut, body_from_shortcut=from_proj)

    def make() -> nn.Module:
        layers: dict[str, nn.Module] = {
            "stem": ConvBNReLU(3, STEM_CHANNELS, variant.stem_kernel, 2),
            "pool": nn.MaxPool2d(3, 2, ceil_mode=True),
        }
        cin, index = STEM_CHANNELS, 0
        for stage, (channels, count) in enumerate(zip(variant.stage_channels, variant.blocks), 1):
            blocks = OrderedDict()
            for i in range(count):
                index += 1
                stride = 2 if (i == 0 and stage > 1) else 1
                blocks[f"block{i + 1}"] = block(index, cin, channels, stride, first=i == 0)
                cin = channels
            layers[f"stage{stage}"] = nn.Sequential(blocks)
        layers["head"] = ConvBNReLU(cin, HEAD_CHANNELS, 1)
        layers["classifier"] = Classifier(HEAD_CHANNELS, num_classes, bias=False)
        return nn.Sequential(OrderedDict(layers))

    return initialised(make)


@hookimpl
def bench_models() -> list[ModelSpec]:
    return [
        ModelSpec(
            name=v.name,
            family=FAMILY,
            builder=partial(build_squeezenext, v),
            input_size=INPUT_SIZE,
            description=v.description,
            reported=_reported(v.name),
            notes=v.notes,
        )
        for v in VARIANTS
    ]
