"""The vectorised deformable-attention core against a loop-based bilinear reference."""
import pytest
import torch

from m2f_teach.model.deformable_attention import (multi_scale_deformable_attn,
                                            multi_scale_deformable_attn_loop)


@pytest.mark.parametrize("spatial_shapes", [[(2, 3), (4, 6)], [(3, 3), (5, 7), (8, 4)]])
def test_core_matches_loop(spatial_shapes):
    g = torch.Generator().manual_seed(0)
    B, nH, D, P, S_q = 2, 2, 3, 3, 5
    S = sum(h * w for h, w in spatial_shapes)
    L = len(spatial_shapes)
    value = torch.randn(B, S, nH, D, generator=g, dtype=torch.float64)
    # locations partly outside [0, 1] to exercise zero padding
    sampling_locations = torch.rand(B, S_q, nH, L, P, 2, generator=g, dtype=torch.float64) * 1.4 - 0.2
    attention_weights = torch.rand(B, S_q, nH, L, P, generator=g, dtype=torch.float64)
    attention_weights = attention_weights / attention_weights.sum((-1, -2), keepdim=True)
    fast = multi_scale_deformable_attn(value, spatial_shapes, sampling_locations, attention_weights)
    slow = multi_scale_deformable_attn_loop(value, spatial_shapes, sampling_locations, attention_weights)
    assert fast.shape == (B, S_q, nH * D)
    torch.testing.assert_close(fast, slow, rtol=1e-10, atol=1e-10)


def test_pixel_centre_reads_the_pixel():
    """A location at ((x+0.5)/W, (y+0.5)/H) reads exactly pixel (x, y)."""
    h, w = 3, 4
    value = torch.arange(h * w, dtype=torch.float32).view(1, h * w, 1, 1)
    loc = torch.tensor([(2 + 0.5) / w, (1 + 0.5) / h]).view(1, 1, 1, 1, 1, 2)
    out = multi_scale_deformable_attn(value, [(h, w)], loc, torch.ones(1, 1, 1, 1, 1))
    assert out.item() == pytest.approx(1 * w + 2)
