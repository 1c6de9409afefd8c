"""The deformable core for training on CPU: `grid_sample` forward and `grid_sample`'s own backward kernel.

Computes `multi_scale_deformable_attn_grid_sample` (model room) with the same operations and
numbers, and its gradients for `value`, `sampling_locations` and `attention_weights`.

Why faster: autograd through the gather's bilinear weights runs ~20 small elementwise ops
and a serial scatter of 48 rows per (query, head); `grid_sampler_2d_backward` does the value and
location gradients in one kernel per level. At the small maps and head widths a CPU trains
on (D = 8, maps up to 16×16) the core's forward + backward went from 200 to 122 ms (one thread,
128×128) and a CPU training step at batch 16, 2 cores, from 1.04 s to 0.68 s (ours / HF
1.66 → 0.69, README "Benchmarks"); `grid_sampler_2d_backward` is now the top row of the
step's profile at 11 %.

Pinned by `tests/test_deformable.py`: `test_core_gradients_equal_grid_sample_and_loop_gradients`
(against autograd through `grid_sample` and the loop), `test_training_and_gather_forms_agree_and_pass_gradcheck`,
`test_training_core_only_computes_the_gradients_asked_for`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


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
    training stays bit-reproducible. Inputs and output as `multi_scale_deformable_attn_grid_sample`'s.
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
