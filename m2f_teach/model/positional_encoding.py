"""Normalised sine positional encoding (DETR's `SinePositionalEncoding`, `normalize=True`).

Seed step 2.1: `pos_embed = self.postional_encoding(padding_mask_resized)`: a `(B, H_l, W_l)`
mask in, a `(B, C, H_l, W_l)` encoding out; the first C/2 channels encode y, the last C/2 x.
Computed in float32 (as mmdetection does) and returned in `dtype`, the features' dtype, so a
bfloat16 or float16 model adds it to features of its own dtype.

    y_embed = cumsum of the unpadded pixels along y, scaled to (0, 2π]
    PE(pos, 2i)   = sin(pos / T^(2i / F))
    PE(pos, 2i+1) = cos(pos / T^(2i / F))        F = C/2 features per axis, T = 10000
"""
from __future__ import annotations

import math

import torch
from torch import nn


class SinePositionalEncoding(nn.Module):
    """`mask (B, H_l, W_l)` bool, True = padding → `pos (B, 2·num_feats, H_l, W_l)` in `dtype`."""

    def __init__(self, num_feats: int = 128, temperature: float = 10000.0,
                 scale: float = 2 * math.pi, eps: float = 1e-6):
        super().__init__()
        self.num_feats, self.temperature, self.scale, self.eps = num_feats, temperature, scale, eps

    def forward(self, mask: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        not_mask = ~mask
        y_embed = not_mask.cumsum(1, dtype=torch.float32)                   # (B, H_l, W_l): 1..H_l
        x_embed = not_mask.cumsum(2, dtype=torch.float32)                   # (B, H_l, W_l): 1..W_l
        y_embed = y_embed / (y_embed[:, -1:, :] + self.eps) * self.scale    # (0, 2π]
        x_embed = x_embed / (x_embed[:, :, -1:] + self.eps) * self.scale
        dim_t = torch.arange(self.num_feats, dtype=torch.float32, device=mask.device)
        dim_t = self.temperature ** (2 * (dim_t // 2) / self.num_feats)     # (F,)
        pos_x = x_embed[:, :, :, None] / dim_t                              # (B, H_l, W_l, F)
        pos_y = y_embed[:, :, :, None] / dim_t
        B, H, W = mask.shape
        # interleave: even features sin, odd features cos
        pos_x = torch.stack((pos_x[..., 0::2].sin(), pos_x[..., 1::2].cos()), dim=4).view(B, H, W, -1)  # (B, H_l, W_l, F)
        pos_y = torch.stack((pos_y[..., 0::2].sin(), pos_y[..., 1::2].cos()), dim=4).view(B, H, W, -1)  # (B, H_l, W_l, F)
        pos = torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2)          # (B, 2F, H_l, W_l)
        return pos.to(dtype)
