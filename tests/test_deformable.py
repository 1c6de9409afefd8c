"""The deformable-attention kernels (`m2f_teach/kernels/`) against the readable forms of the model
room: a loop-based bilinear reference, the `grid_sample` form, the seed's line for the locations."""
import pytest
import torch

from m2f_teach import M2FConfig, Mask2Former, kernels
from m2f_teach.kernels import DeformableCoreCPU, read_dot_products, weighted_gather_core
from m2f_teach.model.deformable_attention import (get_level_start_index, multi_scale_deformable_attn,
                                                  multi_scale_deformable_attn_grid_sample,
                                                  multi_scale_deformable_attn_loop)


@pytest.mark.parametrize("spatial_shapes", [[(2, 3), (4, 6)], [(3, 3), (5, 7), (8, 4)]])
def test_gather_core_equals_the_loop_reference(spatial_shapes):
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


@pytest.mark.parametrize("spatial_shapes", [[(2, 3), (4, 6)], [(3, 3), (5, 7), (8, 4)]])
def test_training_and_gather_forms_agree_and_pass_gradcheck(spatial_shapes):
    """On CPU with gradients the core runs `DeformableCoreCPU` (grid_sample's kernels); elsewhere
    (GPU, `torch.compile`) `weighted_gather_core` with `WeightedGather`'s backward. Both pass
    gradcheck, and they agree in value and in all three gradients."""
    starts = get_level_start_index(spatial_shapes)
    inputs = random_core_inputs(spatial_shapes, seed=4)
    leaves = [x.detach().clone().requires_grad_() for x in inputs]
    training = multi_scale_deformable_attn(*[leaves[0], spatial_shapes, *leaves[1:]])
    assert training.grad_fn.name() == "DeformableCoreCPUBackward"
    gather = lambda v, loc, w: weighted_gather_core(v, spatial_shapes, loc, w, starts)  # noqa: E731
    assert gather(*leaves).grad_fn.name() == "ViewBackward0"
    assert torch.autograd.gradcheck(gather, leaves)
    core = lambda v, loc, w: DeformableCoreCPU.apply(v, loc, w, spatial_shapes, starts)  # noqa: E731
    assert torch.autograd.gradcheck(core, leaves)
    grad_output = torch.randn(2, 5, 2 * 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    ours = gradients(lambda v, s, loc, w: core(v, loc, w), spatial_shapes, inputs, grad_output)
    other = gradients(lambda v, s, loc, w: gather(v, loc, w), spatial_shapes, inputs, grad_output)
    torch.testing.assert_close(core(*inputs), gather(*inputs), rtol=1e-10, atol=1e-10)
    for name, a, b in zip(("value", "sampling_locations", "attention_weights"), ours, other):
        assert a.abs().max() > 0.01, name
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10, msg=name)


def test_training_core_only_computes_the_gradients_asked_for():
    """A frozen input (`requires_grad=False`) gets no gradient; the others are unchanged."""
    spatial_shapes = [(3, 3), (5, 7)]
    value, locations, weights = random_core_inputs(spatial_shapes)
    grad_output = torch.randn(2, 5, 6, dtype=torch.float64)
    full = gradients(multi_scale_deformable_attn, spatial_shapes, (value, locations, weights), grad_output)
    for frozen in range(3):
        leaves = [x.detach().clone().requires_grad_(i != frozen) for i, x in enumerate((value, locations, weights))]
        multi_scale_deformable_attn(leaves[0], spatial_shapes, leaves[1], leaves[2]).backward(grad_output)
        for i, x in enumerate(leaves):
            if i == frozen:
                assert x.grad is None
            else:
                torch.testing.assert_close(x.grad, full[i], rtol=0, atol=0)


def test_fast_sampling_locations_equal_the_seeds_line_bitwise():
    """`kernels.sampling_locations` against the seed's one line, with and without gradients."""
    g = torch.Generator().manual_seed(6)
    B, S_q, nH, L, P = 2, 7, 3, 3, 4
    reference_points = torch.rand(B, S_q, L, 2, generator=g)
    offsets = (torch.randn(B, S_q, nH, L, P, 2, generator=g) * 3).requires_grad_()
    offset_normalizer = torch.tensor([(5.0, 3.0), (10.0, 6.0), (20.0, 12.0)])    # (W_l, H_l)
    seed = reference_points[:, :, None, :, None, :] + offsets / offset_normalizer[None, None, None, :, None, :]
    fast = kernels.sampling_locations(reference_points, offsets, offset_normalizer)
    assert fast.shape == seed.shape == (B, S_q, nH, L, P, 2)
    assert torch.equal(fast, seed)
    grad = torch.randn(seed.shape, generator=g)
    (seed_grad,) = torch.autograd.grad(seed, offsets, grad)
    (fast_grad,) = torch.autograd.grad(fast, offsets, grad)
    assert torch.equal(fast_grad, seed_grad)


def test_read_dot_products_equal_a_gather_and_bmm():
    """The CPU's sparse-CSR `sampled_addmm` against the plain gather of `(N, K, D)` rows and `bmm`."""
    g = torch.Generator().manual_seed(7)
    table = torch.randn(40, 5, generator=g, dtype=torch.float64)
    rows = torch.randint(0, 40, (30, 12), generator=g)
    vectors = torch.randn(30, 5, generator=g, dtype=torch.float64)
    expected = torch.bmm(table[rows], vectors.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(read_dot_products(table, rows, vectors), expected, rtol=1e-12, atol=1e-12)


def graph_names(tensor) -> set[str]:
    """Names of every autograd node behind `tensor`."""
    names, stack, seen = set(), [tensor.grad_fn], set()
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        names.add(node.name())
        stack.extend(next_node for next_node, _ in node.next_functions)
    return names


def test_readable_switch_runs_the_grid_sample_core_on_each_path():
    """Which core runs: training on CPU `DeformableCoreCPU`, inference the gather; inside
    `kernels.readable()` autograd through `grid_sample` in both cases, with the same numbers."""
    spatial_shapes = [(3, 3), (5, 7), (8, 4)]
    leaves = [x.requires_grad_() for x in random_core_inputs(spatial_shapes, seed=8)]
    training = multi_scale_deformable_attn(leaves[0], spatial_shapes, *leaves[1:])
    assert "DeformableCoreCPUBackward" in graph_names(training)
    with kernels.readable():
        assert not kernels.enabled()
        readable = multi_scale_deformable_attn(leaves[0], spatial_shapes, *leaves[1:])
        with torch.no_grad():
            readable_inference = multi_scale_deformable_attn(leaves[0], spatial_shapes, *leaves[1:])
    assert kernels.enabled()
    names = graph_names(readable)
    assert "GridSampler2DBackward0" in names and "DeformableCoreCPUBackward" not in names
    with torch.no_grad():
        inference = multi_scale_deformable_attn(leaves[0], spatial_shapes, *leaves[1:])
    for other in (readable, readable_inference, inference):
        torch.testing.assert_close(other, training, rtol=1e-12, atol=1e-12)


def test_readable_model_equals_the_fast_model_on_the_small_config(monkeypatch):
    """The small model end to end, inference and a training step's gradients: the readable forms
    (`kernels.readable()`) against the kernels, to float rounding; the kernels run only outside."""
    calls = []
    fast_core = kernels.deformable_core
    monkeypatch.setattr(kernels, "deformable_core", lambda *args: calls.append(1) or fast_core(*args))
    torch.manual_seed(0)
    model = Mask2Former(M2FConfig.small())
    images = torch.randn(2, 3, 128, 128, generator=torch.Generator().manual_seed(1))

    def run(grad: bool):
        model.zero_grad()
        with torch.set_grad_enabled(grad):
            cls_pred_list, mask_pred_list = model(images)
        if grad:
            (cls_pred_list[-1].square().sum() + mask_pred_list[-1].square().mean()).backward()
        outputs = [x.detach() for x in cls_pred_list + mask_pred_list]
        return outputs, [p.grad.clone() for p in model.parameters() if p.grad is not None]

    for grad in (False, True):
        fast, fast_grads = run(grad)
        assert len(calls) == 6                    # one per encoder layer
        calls.clear()
        with kernels.readable():
            readable, readable_grads = run(grad)
        assert calls == []
        assert len(fast_grads) == len(readable_grads) and (len(fast_grads) > 100) == grad
        for a, b in zip(fast + fast_grads, readable + readable_grads):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
