"""The feed-forward block of every transformer layer (mmcv's `FFN`).

`x (N, B, C)` → `x + Linear(F → C)(ReLU(Linear(C → F)(x)))`, F = 1024 in the pixel-decoder
encoder and 2048 in the transformer decoder. The residual is inside, as in mmcv.
"""
from __future__ import annotations

from torch import nn


class FFN(nn.Module):
    def __init__(self, embed_dims: int, feedforward_channels: int):
        super().__init__()
        # names as mmcv: layers.0.0 is the first Linear, layers.1 the second
        self.layers = nn.Sequential(
            nn.Sequential(nn.Linear(embed_dims, feedforward_channels), nn.ReLU(inplace=True)),
            nn.Linear(feedforward_channels, embed_dims))

    def forward(self, x):
        return x + self.layers(x)
