"""`HFBackbone`: any HF transformers backbone (Swin, ...) behind our backbone's interface.

The public `facebook/mask2former-swin-*` checkpoints use a Swin Transformer. Rather than
re-implement Swin, the converter keeps HF's own backbone module and wraps it: images in,
the list of four maps `(B, C_i, H/s_i, W/s_i)` out, each passed through a `Tap` named
`feats` exactly as `ResNet.forward` does, so `trace()` sees `backbone.feats.{0..3}`.
It runs in the forward pass, so it lives with the model; transformers is imported only to
build a body from its config (`from_config_json`), never to import this file.

Its parameters keep HF's names under `backbone.body.`: `backbone.body.embeddings...`.
"""
from __future__ import annotations

import json

import torch
from torch import nn

from ..tap import Tap


class HFBackbone(nn.Module):
    """`images (B, 3, H, W)` → list of 4 maps `(B, C_i, H/s_i, W/s_i)`, strides (4, 8, 16, 32).

    `channels`: the body's C_i per map; `strides`: s_i.
    """

    def __init__(self, body: nn.Module, strides=(4, 8, 16, 32)):
        super().__init__()
        self.body = body
        self.strides = tuple(strides)
        self.tap = Tap()

    @property
    def channels(self) -> list[int]:
        return list(self.body.channels)

    def backbone_config_json(self) -> str:
        """The HF backbone config as JSON, stored in saved checkpoints to rebuild the body."""
        return json.dumps(self.body.config.to_dict(), sort_keys=True)

    @classmethod
    def from_config_json(cls, text: str, strides=(4, 8, 16, 32)) -> "HFBackbone":
        """Rebuild an (uninitialised) body from `backbone_config_json()`; needs transformers."""
        try:
            from transformers import AutoBackbone, AutoConfig
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise ImportError("this checkpoint uses a HF transformers backbone (e.g. Swin): "
                              "pip install transformers") from err
        values = json.loads(text)
        config = AutoConfig.for_model(values.pop("model_type"), **values)
        return cls(AutoBackbone.from_config(config), strides)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        maps = self.body(images).feature_maps                     # 4 × (B, C_i, H/s_i, W/s_i)
        feats = []
        for i, x in enumerate(maps):
            stride, channels = self.strides[i], x.shape[1]
            feats.append(self.tap(x, "feats", f"B {channels} H/{stride} W/{stride}", index=i))
        return feats
