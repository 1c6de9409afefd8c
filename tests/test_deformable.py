"""The vectorised deformable-attention core against a loop-based bilinear reference."""
import pytest
import torch

from m2f_teach.model.deformable_attention import (multi_scale_deformable_attn,
                                                  multi_scale_deformable_attn_grid_sample,
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


def random_core_inputs(spatial_shapes, seed=0, B=2, nH=2, D=3, P=3, S_q=5, dtype=torch.float64):
    """Inputs of the core; locations partly outside [0, 1] so that zero padding is exercised."""
    g = torch.Generator().manual_seed(seed)
    S, L = sum(h * w for h, w in spatial_shapes), len(spatial_shapes)
    value = torch.randn(B, S, nH, D, generator=g, dtype=dtype)
    sampling_locations = torch.rand(B, S_q, nH, L, P, 2, generator=g, dtype=dtype) * 1.4 - 0.2
    attention_weights = torch.rand(B, S_q, nH, L, P, generator=g, dtype=dtype)
    attention_weights = attention_weights / attention_weights.sum((-1, -2), keepdim=True)
    return value, sampling_locations, attention_weights


def gradients(core, spatial_shapes, inputs, grad_output):
    leaves = [x.detach().clone().requires_grad_() for x in inputs]
    value, locations, weights = leaves
    core(value, spatial_shapes, locations, weights).backward(grad_output)
    return [x.grad for x in leaves]


@pytest.mark.parametrize("spatial_shapes", [[(2, 3), (4, 6)], [(3, 3), (5, 7), (8, 4)]])
def test_core_backward_passes_gradcheck_in_float64(spatial_shapes):
    """The hand-written backward (value, locations and attention weights) against finite differences."""
    inputs = [x.requires_grad_() for x in random_core_inputs(spatial_shapes, seed=1)]
    assert torch.autograd.gradcheck(
        lambda v, loc, w: multi_scale_deformable_attn(v, spatial_shapes, loc, w), inputs)


@pytest.mark.parametrize("spatial_shapes", [[(2, 3), (4, 6)], [(3, 3), (5, 7), (8, 4)]])
def test_core_gradients_equal_grid_sample_and_loop_gradients(spatial_shapes):
    """Same gradients as autograd through `grid_sample` (all three inputs) and through the loop
    (value and attention weights: the loop reads locations as Python floats)."""
    inputs = random_core_inputs(spatial_shapes, seed=2)
    grad_output = torch.randn(2, 5, 2 * 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    ours = gradients(multi_scale_deformable_attn, spatial_shapes, inputs, grad_output)
    grid = gradients(multi_scale_deformable_attn_grid_sample, spatial_shapes, inputs, grad_output)
    loop = gradients(multi_scale_deformable_attn_loop, spatial_shapes, inputs, grad_output)
    for name, a, b in zip(("value", "sampling_locations", "attention_weights"), ours, grid):
        assert a.abs().max() > 0.01, name                    # not vacuous: every gradient is used
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10, msg=f"{name} vs grid_sample")
    assert loop[1] is None                                   # no path from Python floats
    torch.testing.assert_close(ours[0], loop[0], rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(ours[2], loop[2], rtol=1e-10, atol=1e-10)


def test_core_runs_on_meta_and_without_grad():
    """The shape-only trace runs the core on `meta`; inference runs it under `no_grad`."""
    spatial_shapes = [(3, 3), (5, 7)]
    value, locations, weights = random_core_inputs(spatial_shapes, dtype=torch.float32)
    meta = multi_scale_deformable_attn(value.to("meta").requires_grad_(), spatial_shapes,
                                       locations.to("meta"), weights.to("meta"))
    assert meta.device.type == "meta" and meta.shape == (2, 5, 6) and meta.requires_grad
    with torch.no_grad():
        out = multi_scale_deformable_attn(value.requires_grad_(), spatial_shapes, locations, weights)
    assert out.grad_fn is None and out.shape == (2, 5, 6)
