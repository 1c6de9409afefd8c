"""Multi-scale deformable attention (Deformable DETR), in pure PyTorch.

Seed step 3.4. Every query looks at only L·P = 12 points per head instead of all S tokens:

    sampling_offsets   = Linear(C → nH·L·P·2)(query + query_pos)     # (B, S, nH, L, P, 2)
    attention_weights  = softmax over L·P of Linear(C → nH·L·P)(...)  # (B, S, nH, L·P)
    sampling_locations = reference_points + sampling_offsets / (W_l, H_l)
    output             = Σ_l Σ_p attention_weights · bilinear(value_l, sampling_locations)

Note the normaliser is (W_l, H_l): locations are (x, y), as `grid_sample` wants them.

Two forms of the core compute the same numbers: `multi_scale_deformable_attn_grid_sample`
(the seed's and mmcv's PyTorch path, `grid_sample` per level) and `multi_scale_deformable_attn`
(the model's: the bilinear weights written out, one weighted gather of 4 neighbours per point,
about four times as fast on CPU); `multi_scale_deformable_attn_loop` spells it out in Python loops.
The gather's backward (`WeightedGather`) is written by hand so that training is as direct as the
forward: it sends each read's gradient back to the row it read (`index_add_`) and takes each
weight's gradient from the same rows. Training on CPU (`DeformableCoreCPU`) runs the
`grid_sample` form instead, with `grid_sample`'s own backward kernel: at the small maps and head
widths a laptop trains on, it is the faster of the two for forward and backward together.
"""
from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from torch import nn

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
    """The core as one weighted gather: a bilinear sample is a weighted sum of 4 neighbours.

    A sampling point reads the 4 pixels around it with the weights `grid_sample` uses
    (`align_corners=False`, zeros outside). Multiplying those by the point's attention weight
    makes the whole core, for each (query, head), one weighted sum of L·P·4 = 48 rows of
    `value`, which `F.embedding_bag(mode="sum")` computes without building the samples. Same
    numbers as `multi_scale_deformable_attn_grid_sample` (to float rounding), faster on CPU.
    When a gradient is needed on CPU, `DeformableCoreCPU` computes the core (the `grid_sample`
    form, forward and backward); on other devices and under `torch.compile`, `WeightedGather`.

    * `value`: `(B, S, nH, D)`
    * `spatial_shapes`: `[(H_l, W_l)] * L`, low to high resolution
    * `sampling_locations`: `(B, S_q, nH, L, P, 2)`, (x, y) in [0, 1]
    * `attention_weights`: `(B, S_q, nH, L, P)`, summing to 1 over L·P
    * `level_start_index`: `[start_l] * L` (default: from `spatial_shapes`)
    * returns `(B, S_q, nH·D)`
    """
    if level_start_index is None:
        level_start_index = get_level_start_index(spatial_shapes)
    if (value.device.type == "cpu" and torch.is_grad_enabled() and not torch.compiler.is_compiling()
            and (value.requires_grad or sampling_locations.requires_grad or attention_weights.requires_grad)):
        return DeformableCoreCPU.apply(value, sampling_locations, attention_weights, spatial_shapes,
                                       level_start_index)                     # (B, S_q, nH·D)
    return weighted_gather_core(value, spatial_shapes, sampling_locations, attention_weights,
                                level_start_index)                             # (B, S_q, nH·D)


def weighted_gather_core(value: torch.Tensor, spatial_shapes: list[tuple[int, int]],
                         sampling_locations: torch.Tensor, attention_weights: torch.Tensor,
                         level_start_index: list[int]) -> torch.Tensor:
    """`multi_scale_deformable_attn` without gradients, or off the CPU: the 4 bilinear weights of
    every point, then one weighted gather (`WeightedGather`)."""
    B, S, nH, D = value.shape
    _, S_q, _, L, P, _ = sampling_locations.shape
    device, dtype = value.device, value.dtype
    size = torch.tensor([(w, h) for h, w in spatial_shapes], dtype=dtype, device=device)  # (L, 2): (W_l, H_l)
    W, H = size[:, 0].view(L, 1), size[:, 1].view(L, 1)                        # (L, 1), against (.., L, P)
    # x ∈ [0, 1] lands on pixel coordinate x·W_l − 0.5: pixel centres sit on integers
    pixel = sampling_locations * size.view(L, 1, 2) - 0.5                      # (B, S_q, nH, L, P, 2)
    top_left = pixel.floor()
    x0, y0 = top_left.unbind(-1)                                               # (B, S_q, nH, L, P) each
    fx, fy = (pixel - top_left).unbind(-1)                                     # (B, S_q, nH, L, P) each, in [0, 1)
    # per axis, neighbour x0 weighs 1 − fx and x0 + 1 weighs fx; a neighbour outside the map
    # weighs zero (grid_sample's padding_mode="zeros"). The attention weight joins the y factor.
    wx0 = (1 - fx) * ((x0 >= 0) & (x0 <= W - 1))
    wx1 = fx * ((x0 >= -1) & (x0 <= W - 2))
    wy0 = (1 - fy) * ((y0 >= 0) & (y0 <= H - 1)) * attention_weights
    wy1 = fy * ((y0 >= -1) & (y0 <= H - 2)) * attention_weights
    # the 4 corners: top-left, top-right, bottom-left, bottom-right
    weights = torch.stack((wy0 * wx0, wy0 * wx1, wy1 * wx0, wy1 * wx1), dim=-1)  # (B, S_q, nH, L, P, 4)

    # `value` viewed as (B·S·nH, D): pixel (x, y) of level l, head h of image b is row
    # (b·S + level_start_l + y·W_l + x)·nH + h   (int32 indices: half the memory traffic)
    index = dict(device=device, dtype=torch.int32)
    widths = torch.tensor([w for _, w in spatial_shapes], **index).view(L, 1)  # (L, 1)
    level_start = torch.as_tensor(level_start_index, **index).view(L, 1)       # (L, 1)
    pixel_index = level_start + y0.int() * widths + x0.int()                   # (B, S_q, nH, L, P)
    batch_start = (torch.arange(B, **index) * S).view(B, 1, 1, 1, 1)          # (B, 1, 1, 1, 1)
    head = torch.arange(nH, **index).view(nH, 1, 1)                            # (nH, 1, 1)
    rows = (batch_start + pixel_index) * nH + head                             # (B, S_q, nH, L, P)
    corner_step = torch.cat((widths * 0, widths * 0 + 1, widths, widths + 1), dim=-1) * nH  # (L, 4)
    rows = rows.unsqueeze(-1) + corner_step.view(L, 1, 4)                      # (B, S_q, nH, L, P, 4)
    rows = rows.clamp_(0, B * S * nH - 1)   # an outside corner weighs zero; any valid row will do

    # for each (b, q, h): Σ over L·P·4 = 48 weighted rows
    output = WeightedGather.apply(value.reshape(B * S * nH, D), rows.view(B * S_q * nH, L * P * 4),
                                  weights.view(B * S_q * nH, L * P * 4).to(value.dtype))  # (B·S_q·nH, D)
    return output.view(B, S_q, nH * D)                                         # (B, S_q, nH·D)


class DeformableCoreCPU(torch.autograd.Function):
    """The core for training on CPU: `grid_sample` per level forward (the seed's and mmcv's form,
    `multi_scale_deformable_attn_grid_sample`, same operations and numbers) and `grid_sample`'s
    own backward kernel per level, instead of autograd through ~20 small elementwise ops of the
    bilinear weights and a serial scatter of 48 rows per (query, head). With `samples_l` the
    bilinear reads of level l, `(B·nH, D, S_q, P)`, saved by the forward:

        ∂loss/∂value_l, ∂loss/∂grid_l = grid_sampler_2d_backward(attention_weights_l · grad, ...)
        ∂loss/∂sampling_locations     = 2 · ∂loss/∂grid                 (grid = 2·x − 1)
        ∂loss/∂attention_weights      = Σ over D of samples · grad

    `grid_sampler_2d_backward` sums each of the B·nH maps in a fixed order, whatever the threads:
    training stays bit-reproducible. Inputs and output as `multi_scale_deformable_attn`'s.
    """

    @staticmethod
    def forward(ctx, value, sampling_locations, attention_weights, spatial_shapes, level_start_index):
        B, S, nH, D = value.shape
        _, S_q, _, L, P, _ = sampling_locations.shape
        grids = 2 * sampling_locations - 1                 # [0, 1] → [-1, 1] for grid_sample
        samples, grid_list = [], []
        for level, (h, w) in enumerate(spatial_shapes):
            start = level_start_index[level]
            # (B, H_l·W_l, nH, D) -> (B, H_l·W_l, nH·D) -> (B, nH·D, H_l·W_l) -> (B·nH, D, H_l, W_l)
            value_l = value[:, start:start + h * w].flatten(2).transpose(1, 2).reshape(B * nH, D, h, w)  # (B·nH, D, H_l, W_l)
            # (B, S_q, nH, P, 2) -> (B, nH, S_q, P, 2) -> (B·nH, S_q, P, 2), kept for the backward
            grid_list.append(grids[:, :, :, level].transpose(1, 2).reshape(B * nH, S_q, P, 2))  # (B·nH, S_q, P, 2)
            samples.append(F.grid_sample(value_l, grid_list[-1], mode="bilinear", padding_mode="zeros",
                                         align_corners=False))                   # (B·nH, D, S_q, P)
        samples = torch.stack(samples, dim=-2).flatten(-2)                       # (B·nH, D, S_q, L·P)
        # (B, S_q, nH, L, P) -> (B, nH, S_q, L, P) -> (B·nH, 1, S_q, L·P)
        weights = attention_weights.transpose(1, 2).reshape(B * nH, 1, S_q, L * P)  # (B·nH, 1, S_q, L·P)
        output = (samples * weights).sum(-1).view(B, nH * D, S_q)               # (B, nH·D, S_q)
        ctx.save_for_backward(value, weights, samples, *grid_list)
        ctx.spatial_shapes, ctx.level_start_index = spatial_shapes, level_start_index
        return output.transpose(1, 2).contiguous()                               # (B, S_q, nH·D)

    @staticmethod
    def backward(ctx, grad_output):
        value, weights, samples, *grid_list = ctx.saved_tensors
        need_value, need_locations, need_weights = ctx.needs_input_grad[:3]
        B, S, nH, D = value.shape
        L, (_, S_q, P, _) = len(grid_list), grid_list[0].shape
        # (B, S_q, nH·D) -> (B, nH·D, S_q) -> (B·nH, D, S_q, 1)
        grad = grad_output.transpose(1, 2).reshape(B * nH, D, S_q, 1)           # (B·nH, D, S_q, 1)
        grad_value = grad_locations = grad_attention = None
        if need_weights:
            # (B·nH, S_q, L·P) -> (B, nH, S_q, L, P) -> (B, S_q, nH, L, P)
            grad_attention = (samples * grad).sum(1).view(B, nH, S_q, L, P).transpose(1, 2)  # (B, S_q, nH, L, P)
        if need_value or need_locations:
            grad_values, grad_grids = [], []
            weights = weights.view(B * nH, 1, S_q, L, P)                         # (B·nH, 1, S_q, L, P)
            for level, (h, w) in enumerate(ctx.spatial_shapes):
                start = ctx.level_start_index[level]
                # (B, H_l·W_l, nH, D) -> (B, nH, D, H_l·W_l) -> (B·nH, D, H_l, W_l)
                value_l = value[:, start:start + h * w].permute(0, 2, 3, 1).reshape(B * nH, D, h, w)  # (B·nH, D, H_l, W_l)
                grad_value_l, grad_grid_l = torch.ops.aten.grid_sampler_2d_backward(
                    grad * weights[:, :, :, level], value_l, grid_list[level], 0, 0, False,
                    [need_value, need_locations])                                # (B·nH, D, H_l, W_l), (B·nH, S_q, P, 2)
                if need_value:
                    grad_values.append(grad_value_l.view(B, nH, D, h * w))       # (B, nH, D, H_l·W_l)
                if need_locations:
                    grad_grids.append(grad_grid_l.view(B, nH, S_q, P, 2))        # (B, nH, S_q, P, 2)
            if need_value:
                # L × (B, nH, D, H_l·W_l) -> (B, nH, D, S) -> (B, S, nH, D)
                grad_value = torch.cat(grad_values, dim=-1).permute(0, 3, 1, 2)  # (B, S, nH, D)
            if need_locations:
                # L × (B, nH, S_q, P, 2) -> (B, nH, S_q, L, P, 2) -> (B, S_q, nH, L, P, 2)
                grad_locations = 2 * torch.stack(grad_grids, dim=3).transpose(1, 2)  # (B, S_q, nH, L, P, 2)
        return grad_value, grad_locations, grad_attention, None, None


class WeightedGather(torch.autograd.Function):
    """`output[n] = Σ_k weights[n, k] · table[rows[n, k]]`, with a backward as direct as the forward.

    The forward is `F.embedding_bag(mode="sum")`. Its own backward sorts the indices to sum
    each table row's gradient; here the backward reads the same rows again instead:

        ∂loss/∂table[r]      = Σ over the (n, k) with rows[n, k] = r of weights[n, k] · grad[n]
                               (`index_add_`: each read sends its share back, no sort)
        ∂loss/∂weights[n, k] = table[rows[n, k]] · grad[n]     (a dot product over D)

    The weights' gradient flows on through the bilinear formula to `sampling_locations` and
    `attention_weights` by ordinary autograd.

    * `table`: `(R, D)` (`value` as `(B·S·nH, D)`); `rows`: `(N, K)` int, every entry in `[0, R)`
    * `weights`: `(N, K)`; returns `(N, D)`
    """

    @staticmethod
    def forward(ctx, table, rows, weights):
        ctx.save_for_backward(table, rows, weights)
        return F.embedding_bag(rows, table, per_sample_weights=weights, mode="sum")  # (N, D)

    @staticmethod
    def backward(ctx, grad_output):
        table, rows, weights = ctx.saved_tensors
        N, K = rows.shape
        D = table.shape[1]
        flat_rows = rows.reshape(N * K).long()                                 # (N·K,)
        grad_table = grad_weights = None
        if ctx.needs_input_grad[0]:
            shares = weights.unsqueeze(-1) * grad_output.unsqueeze(1)          # (N, K, D)
            grad_table = torch.zeros_like(table).index_add_(0, flat_rows, shares.view(N * K, D))  # (R, D)
        if ctx.needs_input_grad[2]:
            grad_weights = read_dot_products(table, flat_rows.view(N, K), grad_output)  # (N, K)
        return grad_table, None, grad_weights


def read_dot_products(table: torch.Tensor, rows: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
    """`(N, K)`: `table[rows[n, k]] · vectors[n]` for `table (R, D)`, `rows (N, K)` int64, `vectors (N, D)`.

    On CPU a sampled matrix product (`vectors @ tableᵀ` computed only at the K entries
    `rows[n]` of each row n, as a sparse CSR pattern) reads each row in place; elsewhere the
    rows are gathered as `(N, K, D)` and multiplied in one `bmm` (also under `torch.compile`).
    """
    N, K = rows.shape
    D = table.shape[1]
    if table.device.type == "cpu" and not torch.compiler.is_compiling():
        with warnings.catch_warnings():   # torch calls sparse CSR "beta": nothing for a student to act on
            warnings.simplefilter("ignore", UserWarning)
            pattern = torch.sparse_csr_tensor(
                torch.arange(0, N * K + 1, K, device=table.device), rows.reshape(N * K),
                table.new_zeros(N * K), size=(N, table.shape[0]), check_invariants=False)  # (N, R), K per row
        products = torch.sparse.sampled_addmm(pattern, vectors, table.t(), beta=0.0)  # (N, R), K per row
        return products.values().view(N, K)                                   # (N, K)
    gathered = table.index_select(0, rows.reshape(N * K)).view(N, K, D)        # (N, K, D)
    return torch.bmm(gathered, vectors.unsqueeze(-1)).view(N, K)               # (N, K)


def multi_scale_deformable_attn_grid_sample(value: torch.Tensor, spatial_shapes: list[tuple[int, int]],
                                            sampling_locations: torch.Tensor,
                                            attention_weights: torch.Tensor,
                                            level_start_index: list[int] | None = None) -> torch.Tensor:
    """The core as the seed and mmcv's PyTorch path write it: `grid_sample` per level, then the
    weighted sum over L·P. Builds every sample, `(B·nH, D, S_q, L·P)`; slower on CPU than
    `multi_scale_deformable_attn`, which computes the same numbers.

    * `value`: `(B, S, nH, D)`
    * `spatial_shapes`: `[(H_l, W_l)] * L`, low to high resolution
    * `sampling_locations`: `(B, S_q, nH, L, P, 2)`, (x, y) in [0, 1]
    * `attention_weights`: `(B, S_q, nH, L, P)`, summing to 1 over L·P
    * `level_start_index`: accepted for the gather core's signature; the split by sizes needs none
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
        attention_weights = self.attention_weights(query).view(B, S_q, nH, L * P)    # (B, S_q, nH, L·P)
        attention_weights = self.tap(attention_weights, "attention_logits", "B S_q nH L*P")
        attention_weights = attention_weights.softmax(-1)
        attention_weights = self.tap(attention_weights, "attention_weights", "B S_q nH L*P")
        attention_weights = attention_weights.view(B, S_q, nH, L, P)                # (B, S_q, nH, L, P)

        # offsets are in pixels of each level; dividing by (W_l, H_l) makes them fractions of
        # the map, the units of reference_points. (W_l, H_l), not (H_l, W_l): locations are (x, y)
        offset_normalizer = sampling_offsets.new_tensor([(w, h) for h, w in spatial_shapes])  # (L, 2)
        offset_normalizer = self.tap(offset_normalizer, "offset_normalizer", "L 2")
        # the same sum, broadcast along the last axis only (far faster on CPU than a broadcast
        # over the inner L and P axes): every (L, P, 2) row of offsets over the same (L·P·2,)
        offset_normalizer = offset_normalizer[:, None, :].expand(L, P, 2).reshape(L * P * 2)  # (L·P·2,)
        reference_points = reference_points[:, :, None, :, None, :].expand(B, S_q, 1, L, P, 2)  # (B, S_q, 1, L, P, 2)
        sampling_locations = reference_points.reshape(B * S_q, 1, L * P * 2) \
            + sampling_offsets.reshape(B * S_q, nH, L * P * 2) / offset_normalizer   # (B·S_q, nH, L·P·2)
        sampling_locations = sampling_locations.view(B, S_q, nH, L, P, 2)            # (B, S_q, nH, L, P, 2)
        sampling_locations = self.tap(sampling_locations, "sampling_locations", "B S_q nH L P 2")

        output = multi_scale_deformable_attn(value, spatial_shapes, sampling_locations,
                                             attention_weights, level_start_index)  # (B, S_q, nH·D)
        output = self.output_proj(output)                       # (B, S_q, C)
        return identity + output.permute(1, 0, 2)               # (S_q, B, C)
