"""Multi-scale deformable attention (Deformable DETR), in pure PyTorch, in the seed's form.

Seed step 3.4. Every query looks at only L·P = 12 points per head instead of all S tokens:

    sampling_offsets   = Linear(C → nH·L·P·2)(query + query_pos)     # (B, S, nH, L, P, 2)
    attention_weights  = softmax over L·P of Linear(C → nH·L·P)(...)  # (B, S, nH, L·P)
    sampling_locations = reference_points + sampling_offsets / (W_l, H_l)
    output             = Σ_l Σ_p attention_weights · bilinear(value_l, sampling_locations)

Note the normaliser is (W_l, H_l): locations are (x, y), as `grid_sample` wants them.

The core is written here twice, readably: `multi_scale_deformable_attn_grid_sample` (the
seed's and mmcv's PyTorch path, `grid_sample` per level) and `multi_scale_deformable_attn_loop`
(every query, head, level, point and neighbour in Python loops). The model runs faster forms
of the core and of the locations' sum, with the same numbers, from `m2f_teach/kernels/`; it
picks them in one place, `MultiScaleDeformableAttention.forward`, and `kernels.readable()`
runs the forms of this file instead.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .. import kernels
from .tap import Tap


def get_level_start_index(spatial_shapes: list[tuple[int, int]]) -> list[int]:
    """Where each level starts among the S tokens: `[0, H_0·W_0, H_0·W_0 + H_1·W_1, ...]`.

    The levels' geometry has one form in the model: `spatial_shapes` as `[(H_l, W_l)] * L` ints
    and this `level_start_index`, computed once by the pixel decoder and passed down.
    """
    starts = [0]
    for h, w in spatial_shapes[:-1]:
        starts.append(starts[-1] + h * w)
    return starts


def multi_scale_deformable_attn(value: torch.Tensor, spatial_shapes: list[tuple[int, int]],
                                sampling_locations: torch.Tensor, attention_weights: torch.Tensor,
                                level_start_index: list[int] | None = None) -> torch.Tensor:
    """The core as the model runs it: the fast kernel (`kernels.deformable_core`), or inside
    `kernels.readable()` the `grid_sample` form below. Arguments as the `grid_sample` form's."""
    if level_start_index is None:
        level_start_index = get_level_start_index(spatial_shapes)
    core = kernels.deformable_core if kernels.enabled() else multi_scale_deformable_attn_grid_sample
    return core(value, spatial_shapes, sampling_locations, attention_weights, level_start_index)  # (B, S_q, nH·D)


def multi_scale_deformable_attn_grid_sample(value: torch.Tensor, spatial_shapes: list[tuple[int, int]],
                                            sampling_locations: torch.Tensor,
                                            attention_weights: torch.Tensor,
                                            level_start_index: list[int] | None = None) -> torch.Tensor:
    """The core as the seed and mmcv's PyTorch path write it: `grid_sample` per level, then the
    weighted sum over L·P. Builds every sample, `(B·nH, D, S_q, L·P)`; the model runs a faster
    form with the same numbers (`kernels.deformable_core`) unless inside `kernels.readable()`.

    * `value`: `(B, S, nH, D)`
    * `spatial_shapes`: `[(H_l, W_l)] * L`, low to high resolution
    * `sampling_locations`: `(B, S_q, nH, L, P, 2)`, (x, y) in [0, 1]
    * `attention_weights`: `(B, S_q, nH, L, P)`, summing to 1 over L·P
    * `level_start_index`: `[start_l] * L`, accepted for the kernels' signature; the split by sizes needs none
    * returns `(B, S_q, nH·D)`
    """
    B, _, nH, D = value.shape
    _, S_q, _, L, P, _ = sampling_locations.shape
    value_list = value.split([h * w for h, w in spatial_shapes], dim=1)        # L × (B, H_l·W_l, nH, D)
    sampling_grids = 2 * sampling_locations - 1            # [0, 1] → [-1, 1] for grid_sample
    sampling_value_list = []
    for level, (h, w) in enumerate(spatial_shapes):
        # (B, H_l·W_l, nH, D) -> (B, H_l·W_l, nH·D) -> (B, nH·D, H_l·W_l) -> (B·nH, D, H_l, W_l)
        value_l = value_list[level].flatten(2).transpose(1, 2).reshape(B * nH, D, h, w)  # (B·nH, D, H_l, W_l)
        # (B, S_q, nH, P, 2) -> (B, nH, S_q, P, 2) -> (B·nH, S_q, P, 2)
        sampling_grid_l = sampling_grids[:, :, :, level].transpose(1, 2).flatten(0, 1)  # (B·nH, S_q, P, 2)
        sampling_value_l = F.grid_sample(value_l, sampling_grid_l, mode="bilinear",
                                         padding_mode="zeros", align_corners=False)  # (B·nH, D, S_q, P)
        sampling_value_list.append(sampling_value_l)
    # (B, S_q, nH, L, P) -> (B, nH, S_q, L, P) -> (B·nH, 1, S_q, L·P)
    attention_weights = attention_weights.transpose(1, 2).reshape(B * nH, 1, S_q, L * P)  # (B·nH, 1, S_q, L·P)
    # (B·nH, D, S_q, L, P) -> (B·nH, D, S_q, L·P), weighted sum over L·P
    output = (torch.stack(sampling_value_list, dim=-2).flatten(-2) * attention_weights).sum(-1)  # (B·nH, D, S_q)
    output = output.view(B, nH * D, S_q)                   # (B, nH·D, S_q)
    return output.transpose(1, 2).contiguous()             # (B, S_q, nH·D)


def multi_scale_deformable_attn_loop(value, spatial_shapes, sampling_locations, attention_weights):
    """The same computation written as loops over every query, head, level and point.

    Slow (pure Python), for checking the vectorised core on a few queries. Bilinear
    interpolation follows `grid_sample(align_corners=False, padding_mode='zeros')`: the
    location x ∈ [0, 1] lands on pixel coordinate x·W_l − 0.5, and neighbours outside the map
    contribute zero.
    """
    B, _, nH, D = value.shape
    _, S_q, _, L, P, _ = sampling_locations.shape
    starts = get_level_start_index(spatial_shapes)
    output = value.new_zeros(B, S_q, nH, D)
    for b in range(B):
        for q in range(S_q):
            for head in range(nH):
                for level, (h, w) in enumerate(spatial_shapes):
                    value_l = value[b, starts[level]:starts[level] + h * w, head].view(h, w, D)  # (H_l, W_l, D)
                    for p in range(P):
                        x, y = sampling_locations[b, q, head, level, p].tolist()
                        px, py = x * w - 0.5, y * h - 0.5
                        x0, y0 = math.floor(px), math.floor(py)
                        sample = value.new_zeros(D)
                        for yy, xx, wt in ((y0, x0, (1 - (px - x0)) * (1 - (py - y0))),
                                           (y0, x0 + 1, (px - x0) * (1 - (py - y0))),
                                           (y0 + 1, x0, (1 - (px - x0)) * (py - y0)),
                                           (y0 + 1, x0 + 1, (px - x0) * (py - y0))):
                            if 0 <= yy < h and 0 <= xx < w:
                                sample += wt * value_l[yy, xx]
                        output[b, q, head] += attention_weights[b, q, head, level, p] * sample
    return output.view(B, S_q, nH * D)                                         # (B, S_q, nH·D)


def check_core_against_loop(value: torch.Tensor, spatial_shapes, sampling_locations: torch.Tensor,
                            attention_weights: torch.Tensor, queries) -> dict:
    """Run the vectorised core and the naive loop on a few queries; the largest difference."""
    value = value.detach()
    locations = sampling_locations[:, queries].detach()
    weights = attention_weights[:, queries].detach()
    with torch.no_grad():
        fast = multi_scale_deformable_attn(value, spatial_shapes, locations, weights)
        slow = multi_scale_deformable_attn_loop(value, spatial_shapes, locations, weights)
    return dict(shape=tuple(fast.shape), max_abs_diff=float((fast - slow).abs().max()),
                allclose=bool(torch.allclose(fast, slow, atol=1e-5)))


class MultiScaleDeformableAttention(nn.Module):
    """mmcv's `MultiScaleDeformableAttention`, sequence-first like the seed.

    * `query`: `(S_q, B, C)`; `query_pos`: `(S_q, B, C)`; `value`: `(S, B, C)` (defaults to query)
    * `reference_points`: `(B, S_q, L, 2)`, normalised (x, y)
    * `spatial_shapes`: `[(H_l, W_l)] * L` ints; `level_start_index`: `[start_l] * L` ints
    * `key_padding_mask`: `(B, S)` bool, True = padding
    * returns `(S_q, B, C)`: `identity + output_proj(...)`
    """

    def __init__(self, embed_dims: int = 256, num_heads: int = 8, num_levels: int = 3,
                 num_points: int = 4):
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f"num_heads={num_heads} must divide embed_dims={embed_dims}")
        self.embed_dims, self.num_heads = embed_dims, num_heads
        self.num_levels, self.num_points = num_levels, num_points
        self.sampling_offsets = nn.Linear(embed_dims, num_heads * num_levels * num_points * 2)
        self.attention_weights = nn.Linear(embed_dims, num_heads * num_levels * num_points)
        self.value_proj = nn.Linear(embed_dims, embed_dims)
        self.output_proj = nn.Linear(embed_dims, embed_dims)
        self.tap = Tap()
        self.init_weights()

    @torch.no_grad()
    def init_weights(self):
        """Deformable DETR's initialisation: offsets start on a ring of head directions.

        Head h points at angle 2πh/nH, scaled so the larger of |cos|, |sin| is 1, and point p
        sits p+1 pixels out along it; offset weights start at zero so every query begins with
        this pattern. Attention weights start uniform (zero weight and bias).
        """
        nn.init.zeros_(self.sampling_offsets.weight)
        thetas = torch.arange(self.num_heads, dtype=torch.float32) * (2.0 * math.pi / self.num_heads)
        grid_init = torch.stack([thetas.cos(), thetas.sin()], -1)                      # (nH, 2)
        grid_init = (grid_init / grid_init.abs().max(-1, keepdim=True)[0])
        grid_init = grid_init.view(self.num_heads, 1, 1, 2).repeat(1, self.num_levels, self.num_points, 1)  # (nH, L, P, 2)
        grid_init = grid_init * torch.arange(1, self.num_points + 1, dtype=torch.float32).view(1, 1, -1, 1)  # (nH, L, P, 2)
        self.sampling_offsets.bias.copy_(grid_init.view(-1))                           # (nH·L·P·2,)
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        nn.init.xavier_uniform_(self.value_proj.weight)
        nn.init.zeros_(self.value_proj.bias)
        nn.init.xavier_uniform_(self.output_proj.weight)
        nn.init.zeros_(self.output_proj.bias)

    def forward(self, query, query_pos, reference_points, spatial_shapes, level_start_index,
                value=None, key_padding_mask=None):
        identity = query
        value = query if value is None else value               # key = value = query (seed 3.4)
        query = query + query_pos
        query = query.permute(1, 0, 2)                          # (S_q, B, C) -> (B, S_q, C)
        value = value.permute(1, 0, 2)                          # (S, B, C) -> (B, S, C)
        B, S_q, _ = query.shape
        S = value.shape[1]
        nH, L, P = self.num_heads, self.num_levels, self.num_points

        value = self.value_proj(value)                          # (B, S, C)
        if key_padding_mask is not None:
            value = value.masked_fill(key_padding_mask[..., None], 0.0)
        value = value.view(B, S, nH, -1)                        # (B, S, nH, D)
        value = self.tap(value, "value", "B S nH D")

        sampling_offsets = self.sampling_offsets(query).view(B, S_q, nH, L, P, 2)    # (B, S_q, nH, L, P, 2)
        sampling_offsets = self.tap(sampling_offsets, "sampling_offsets", "B S_q nH L P 2")
        attention_logits = self.attention_weights(query).view(B, S_q, nH, L * P)     # (B, S_q, nH, L·P)
        attention_logits = self.tap(attention_logits, "attention_logits", "B S_q nH L*P")
        attention_weights = attention_logits.softmax(-1)
        attention_weights = self.tap(attention_weights, "attention_weights", "B S_q nH L*P")
        attention_weights = attention_weights.view(B, S_q, nH, L, P)                # (B, S_q, nH, L, P)

        # offsets are in pixels of each level; dividing by (W_l, H_l) makes them fractions of
        # the map, the units of reference_points. (W_l, H_l), not (H_l, W_l): locations are (x, y)
        offset_normalizer = sampling_offsets.new_tensor([(w, h) for h, w in spatial_shapes])  # (L, 2)
        offset_normalizer = self.tap(offset_normalizer, "offset_normalizer", "L 2")
        if kernels.enabled():   # the model's one choice of the fast path: m2f_teach/kernels/, same numbers
            sampling_locations = kernels.sampling_locations(reference_points, sampling_offsets,
                                                            offset_normalizer)      # (B, S_q, nH, L, P, 2)
            core = kernels.deformable_core
        else:                   # inside `kernels.readable()`: the seed's line and the grid_sample core
            sampling_locations = reference_points[:, :, None, :, None, :] + sampling_offsets / offset_normalizer[None, None, None, :, None, :]  # (B, S_q, nH, L, P, 2)
            core = multi_scale_deformable_attn_grid_sample
        sampling_locations = self.tap(sampling_locations, "sampling_locations", "B S_q nH L P 2")

        output = core(value, spatial_shapes, sampling_locations, attention_weights,
                      level_start_index)                        # (B, S_q, nH·D)
        output = self.output_proj(output)                       # (B, S_q, C)
        return identity + output.permute(1, 0, 2)               # (S_q, B, C)
