"""The normalised reference-point grid: where each token of each level sits in the image.

Seed step 2.1 ("棋盘格映射并归一化"). mmdet's `MlvlPointGenerator(offset=0.5)` places a point
at the centre of every pixel of a level, in image pixels: ((x + 0.5)·stride, (y + 0.5)·stride);
dividing by (W_l·stride, H_l·stride) gives

    reference_point(x, y) = ((x + 0.5) / W_l, (y + 0.5) / H_l)        ∈ (0, 1)

The +0.5 puts a point at a pixel's centre, which is where `grid_sample(align_corners=False)`
reads that pixel's value exactly. Points are listed row by row (y outer, x inner), the same
order as `flatten(2)` lists the pixels of a map.
"""
from __future__ import annotations

import torch


def single_level_grid_priors(featmap_size: tuple[int, int], stride: int, device=None,
                             dtype=torch.float32) -> torch.Tensor:
    """Pixel centres of one level in image pixels: `(H_l·W_l, 2)` as (x, y)."""
    h, w = featmap_size
    shift_x = (torch.arange(w, device=device, dtype=dtype) + 0.5) * stride     # (W_l,)
    shift_y = (torch.arange(h, device=device, dtype=dtype) + 0.5) * stride     # (H_l,)
    shift_yy, shift_xx = torch.meshgrid(shift_y, shift_x, indexing="ij")       # (H_l, W_l) each
    return torch.stack([shift_xx.reshape(-1), shift_yy.reshape(-1)], dim=-1)   # (H_l·W_l, 2)


def normalised_reference_points(featmap_size: tuple[int, int], stride: int, device=None,
                                dtype=torch.float32) -> torch.Tensor:
    """`((x + 0.5)/W_l, (y + 0.5)/H_l)` for every pixel of one level: `(H_l·W_l, 2)`."""
    h, w = featmap_size
    points = single_level_grid_priors(featmap_size, stride, device, dtype)    # (H_l·W_l, 2)
    factor = torch.tensor([[w, h]], device=device, dtype=dtype) * stride       # (1, 2): image (W, H)
    return points / factor
