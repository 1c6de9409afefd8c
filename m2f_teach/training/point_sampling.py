"""Point sampling: Mask2Former's losses look at masks only at a few points, not every pixel.

mmcv's `point_sample` reads a map at points given in [0, 1] × [0, 1] (x, y) with bilinear
`grid_sample(align_corners=False)` after mapping each coordinate p to 2·p − 1. A prediction at
H/4 and a ground-truth mask at H are read at the same points, so their sizes need not match.

`get_uncertain_point_coords_with_randomness` (from PointRend) picks the points for the loss:
draw `oversample_ratio · P_s` uniform points, keep the `importance_sample_ratio · P_s` where the
prediction is least certain (uncertainty = −|logit|, largest near the 0 boundary) and add
uniform points for the rest. The most uncertain points lie on the predicted mask's edge.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def point_sample(input: torch.Tensor, points: torch.Tensor, align_corners: bool = False) -> torch.Tensor:
    """Bilinear read of `input (N, C_i, H_i, W_i)` at `points (N, P_s, 2)` in [0, 1] as (x, y).

    Returns `(N, C_i, P_s)`.
    """
    grid = 2.0 * points.unsqueeze(2) - 1.0                                     # (N, P_s, 1, 2) in [-1, 1]
    output = F.grid_sample(input, grid, align_corners=align_corners)           # (N, C_i, P_s, 1)
    return output.squeeze(3)                                                   # (N, C_i, P_s)


def get_uncertainty(mask_logits: torch.Tensor) -> torch.Tensor:
    """`(N, 1, P)` logits → `(N, 1, P)` uncertainty −|logit|: 0 at the boundary, negative away."""
    return -torch.abs(mask_logits)


def get_uncertain_point_coords_with_randomness(mask_pred: torch.Tensor, num_points: int,
                                               oversample_ratio: float,
                                               importance_sample_ratio: float) -> torch.Tensor:
    """Points for the mask losses: `mask_pred (N, 1, Hm, Wm)` logits → `(N, P_s, 2)` in [0, 1].

    `N` is the number of masks (matched queries), `P_s = num_points`.
    """
    assert oversample_ratio >= 1 and 0 <= importance_sample_ratio <= 1
    N = mask_pred.shape[0]
    num_sampled = int(num_points * oversample_ratio)                            # P_o = 3·P_s
    point_coords = torch.rand(N, num_sampled, 2, device=mask_pred.device)       # (N, P_o, 2)
    point_logits = point_sample(mask_pred, point_coords)                        # (N, 1, P_o)
    point_uncertainties = get_uncertainty(point_logits)                         # (N, 1, P_o)
    num_uncertain_points = int(importance_sample_ratio * num_points)            # 0.75·P_s
    num_random_points = num_points - num_uncertain_points
    idx = torch.topk(point_uncertainties[:, 0, :], k=num_uncertain_points, dim=1)[1]  # (N, 0.75·P_s)
    # gather per mask (mmdet flattens and shifts the indices; gather is the same)
    point_coords = torch.gather(point_coords, 1, idx[..., None].expand(-1, -1, 2))  # (N, 0.75·P_s, 2)
    if num_random_points > 0:
        random_coords = torch.rand(N, num_random_points, 2, device=mask_pred.device)  # (N, 0.25·P_s, 2)
        point_coords = torch.cat((point_coords, random_coords), dim=1)          # (N, P_s, 2)
    return point_coords
