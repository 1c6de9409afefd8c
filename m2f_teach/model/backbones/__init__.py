"""The backbone, seed step 1: `images (B, C_in, H, W)` → four maps `(B, C_i, H/s_i, W/s_i)`.

Every backbone is a module that returns the list of maps, passes each through a `Tap` named
`feats` (so a trace sees `backbone.feats.{0..3}`), and exposes `channels` (C_i) and `strides`
(s_i, 4, 8, 16, 32), which the pixel decoder reads to build its projections.

| file | backbone | built by |
|---|---|---|
| `resnet.py` | `ResNet` (ResNet-50 at the seed), torchvision's parameter names | `build_backbone(config)` |
| `hf.py` | `HFBackbone`: any HF transformers backbone (Swin, ...) kept as HF's own module | `build_backbone(config, hf_backbone_config=...)`, or `from_hf` with the HF model's own module |

A new backbone is a file here with such a module and a line in `build_backbone`; `Mask2Former`
takes it as it comes (`Mask2Former(config, backbone=...)`). transformers is imported only when
a HF backbone is built from its config: the model room imports without it.
"""
from __future__ import annotations

from torch import nn

from ..config import M2FConfig
from .hf import HFBackbone
from .resnet import ResNet

__all__ = ["build_backbone", "ResNet", "HFBackbone"]


def build_backbone(config: M2FConfig, hf_backbone_config: str | None = None) -> nn.Module:
    """The backbone `config` describes: its ResNet, or with `hf_backbone_config` (a HF backbone
    config as JSON, as checkpoints store it; needs transformers) that HF backbone, uninitialised."""
    if hf_backbone_config is not None:
        return HFBackbone.from_config_json(hf_backbone_config, config.strides)
    return ResNet(config)
