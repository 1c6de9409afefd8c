"""Fast forms of the model's formulas, one file per kernel. The model room holds the readable forms.

Each kernel computes what a readable form in `m2f_teach/model/` computes (same numbers, or the
same to float rounding) and was written because a profile showed that form's row on top:

| file | computes | readable form (model room) | pinned by |
|---|---|---|---|
| `sampling_locations.py` | `reference_points + sampling_offsets / (W_l, H_l)`, broadcast along the last axis | the seed's one line in `MultiScaleDeformableAttention.forward` | `test_fast_sampling_locations_equal_the_seeds_line_bitwise` |
| `weighted_gather.py` | the deformable core as one weighted gather of 4 neighbours (`WeightedGather`, hand-written backward) | `multi_scale_deformable_attn_grid_sample` | `test_core_matches_loop`, `test_training_and_gather_forms_agree_and_pass_gradcheck` |
| `read_dot_products.py` | `table[rows[n, k]] · vectors[n]`, on CPU as a sparse-CSR `sampled_addmm` | a gather of `(N, K, D)` rows and a `bmm` | `test_read_dot_products_equal_a_gather_and_bmm` |
| `deformable_core_cpu.py` | the core for training on CPU: `grid_sample` forward and its own backward kernel (`DeformableCoreCPU`) | autograd through `multi_scale_deformable_attn_grid_sample` | `test_core_gradients_equal_grid_sample_and_loop_gradients` |

The model asks `enabled()` in one place (`MultiScaleDeformableAttention.forward`) and calls
`deformable_core` below, which picks the kernel for the device and whether gradients flow.
`readable()` switches every kernel off, so the model runs the readable forms end to end, for
teaching and for checking (`tests/test_deformable.py` compares the two on the small model):

    from m2f_teach.kernels import readable
    with readable():
        cls_pred_list, mask_pred_list = model(images)     # the seed's formulas, grid_sample core

The switch is a context manager, not a config field: checkpoints, JSON and shape tables do not
depend on which form computed them.
"""
from __future__ import annotations

import contextlib

import torch

from .deformable_core_cpu import DeformableCoreCPU
from .read_dot_products import read_dot_products
from .sampling_locations import sampling_locations
from .weighted_gather import WeightedGather, weighted_gather_core

__all__ = ["enabled", "readable", "deformable_core", "sampling_locations", "weighted_gather_core",
           "WeightedGather", "DeformableCoreCPU", "read_dot_products"]

_fast = True


def enabled() -> bool:
    """True unless inside `readable()`: the model runs the kernels of this room."""
    return _fast


@contextlib.contextmanager
def readable():
    """Run the model's readable forms (the seed's formulas, the `grid_sample` core) inside the block."""
    global _fast
    previous, _fast = _fast, False
    try:
        yield
    finally:
        _fast = previous


def deformable_core(value: torch.Tensor, spatial_shapes: list[tuple[int, int]],
                    sampling_locations: torch.Tensor, attention_weights: torch.Tensor,
                    level_start_index: list[int]) -> torch.Tensor:
    """The fast deformable core: `DeformableCoreCPU` when training on CPU, else `weighted_gather_core`.

    At the small maps and head widths a CPU trains on, `grid_sample`'s own kernels forward and
    backward beat the gather; for inference, on other devices and under `torch.compile`, the
    gather. Inputs and output as `multi_scale_deformable_attn_grid_sample`'s, `(B, S_q, nH·D)`.
    """
    if (value.device.type == "cpu" and torch.is_grad_enabled() and not torch.compiler.is_compiling()
            and (value.requires_grad or sampling_locations.requires_grad or attention_weights.requires_grad)):
        return DeformableCoreCPU.apply(value, sampling_locations, attention_weights, spatial_shapes,
                                       level_start_index)                     # (B, S_q, nH·D)
    return weighted_gather_core(value, spatial_shapes, sampling_locations, attention_weights,
                                level_start_index)                             # (B, S_q, nH·D)
