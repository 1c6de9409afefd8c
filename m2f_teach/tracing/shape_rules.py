"""`ShapeOnlyMode`: meta ops answered from their inputs' shapes, so the seed traces in a blink.

A `meta` tensor has a shape and a dtype but no data, so a forward pass on `meta` computes
every shape without a single FLOP. A few ops (grid_sample, the norms, bilinear resize,
addmm, softmax, masked_fill, the elementwise arithmetic and comparisons) have meta kernels written as Python
decompositions that spend 0.3–1 ms each building shapes they could read off their inputs;
`ShapeOnlyMode` answers those ops directly: the output shape (broadcast where the op
broadcasts) and dtype (promoted as torch promotes), in the default contiguous layout.
It is only ever active around a meta-device model build or trace.

The first Python decomposition a process runs also imports `torch._dynamo` (about 1 s): torch
wraps its reference implementations, and every `TorchDispatchMode`, in a guard against
`torch.compile` that imports the compiler on first use. Nothing here is compiled, so the mode
opts out of that guard, and it also answers the ops whose meta kernels are such references (the
parameter initialisers, `arange`, `stack`, `cumsum`, the unary functions, ...): a shape-only
trace never imports the compiler. An op outside the cases a rule knows falls through to torch.

`trace()` runs a meta model under this mode; `shape_only.py` builds those models.
"""
from __future__ import annotations

import math

import torch
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten


def _empty(like, shape, dtype=None):
    """`like.new_empty(shape)` without its Python reference (a quarter of the time)."""
    return torch.empty(shape, dtype=dtype if dtype is not None else like.dtype, device=like.device)


def _grid_sampler_2d(input, grid, *args):
    N, C = input.shape[:2]
    return _empty(input, (N, C, grid.shape[1], grid.shape[2]))


def _native_batch_norm(x, weight, bias, running_mean, running_var, training, momentum, eps):
    C = x.shape[1]
    return _empty(x, x.shape), _empty(x, (C,)), _empty(x, (C,))


def _batch_norm_no_training(x, weight, bias, running_mean, running_var, momentum, eps):
    return _empty(x, x.shape), _empty(x, (0,)), _empty(x, (0,))


def _native_layer_norm(x, normalized_shape, weight, bias, eps):
    k = len(normalized_shape)
    stats = tuple(x.shape[: x.dim() - k]) + (1,) * k
    return _empty(x, x.shape), _empty(x, stats), _empty(x, stats)


def _native_group_norm(x, weight, bias, N, C, HxW, group, eps):
    return _empty(x, x.shape), _empty(x, (N, group)), _empty(x, (N, group))


def _upsample_bilinear2d(x, output_size, align_corners, *args):
    return _empty(x, tuple(x.shape[:2]) + tuple(output_size))


def _addmm(bias, mat1, mat2, beta=1, alpha=1):
    return _empty(mat1, (mat1.shape[0], mat2.shape[1]))


def broadcast_shape(*shapes) -> tuple:
    """NumPy broadcasting of integer shapes (`torch.broadcast_shapes` imports sympy: 0.7 s)."""
    out = []
    for sizes in zip(*(reversed([1] * (max(map(len, shapes)) - len(s)) + list(s)) for s in shapes)):
        distinct = {n for n in sizes if n != 1}
        if len(distinct) > 1:
            raise RuntimeError(f"shapes {[tuple(s) for s in shapes]} do not broadcast")
        out.append(distinct.pop() if distinct else 1)
    return tuple(reversed(out))


def _broadcast(a, b, dtype):
    shape = broadcast_shape(*(x.shape for x in (a, b) if isinstance(x, torch.Tensor)))
    tensor = a if isinstance(a, torch.Tensor) else b
    return _empty(tensor, shape, dtype=dtype)


def _arithmetic(a, b, alpha=1):
    return _broadcast(a, b, torch.result_type(a, b))


def _true_divide(a, b):
    dtype = torch.result_type(a, b)
    return _broadcast(a, b, dtype if dtype.is_floating_point else torch.get_default_dtype())


def _compare(a, b):
    return _broadcast(a, b, torch.bool)


def _in_place(x, *args, **kwargs):
    """`normal_`, `uniform_`, `zero_`, `fill_`, `clamp_`: a meta tensor has no values to change."""
    return x


def _unary(x, *args, **kwargs):
    """Elementwise ops that keep the input's shape and dtype."""
    return _empty(x, x.shape)


def _unary_float(x, *args, **kwargs):
    """`sin`, `cos`: the input's shape and dtype, for a floating-point input."""
    return _empty(x, x.shape) if x.dtype.is_floating_point else NotImplemented


def _with_scalar(x, other, alpha=1):
    """`x * 2`, `1 - x`: the tensor's shape, the promoted dtype."""
    return _empty(x, x.shape, dtype=torch.result_type(x, other))


def _masked_fill(x, mask, value):
    if broadcast_shape(x.shape, mask.shape) != tuple(x.shape):
        return NotImplemented
    return _empty(x, x.shape)


def _masked_fill_(x, mask, value):
    return x if broadcast_shape(x.shape, mask.shape) == tuple(x.shape) else NotImplemented


def _pow_scalar(base, exponent):
    return _empty(exponent, exponent.shape, dtype=torch.result_type(base, exponent))


def _cumsum(x, dim, dtype=None):
    if dtype is None:
        dtype = x.dtype if x.dtype.is_floating_point or x.dtype.is_complex else torch.int64
    return _empty(x, x.shape, dtype=dtype)


def _reduced_shape(x, dim, keepdim) -> list:
    dim = dim % max(x.dim(), 1)
    shape = list(x.shape)
    if keepdim:
        shape[dim] = 1
    else:
        del shape[dim]
    return shape


def _all_dim(x, dim, keepdim=False):
    if x.dtype == torch.uint8:                   # all() of uint8 stays uint8: leave it to torch
        return NotImplemented
    return _empty(x, _reduced_shape(x, dim, keepdim), dtype=torch.bool)


def _softmax(x, dim, half_to_float):
    return NotImplemented if half_to_float else _empty(x, x.shape)


def _safe_softmax(x, dim, dtype=None):
    return _empty(x, x.shape, dtype=dtype if dtype is not None else x.dtype)


def _stack(tensors, dim=0):
    first = tensors[0]
    if any(t.shape != first.shape or t.dtype != first.dtype for t in tensors):
        return NotImplemented
    dim = dim % (first.dim() + 1)
    shape = list(first.shape)
    shape.insert(dim, len(tensors))
    return _empty(first, shape)


def _cat(tensors, dim=0):
    first = tensors[0]
    if any(t.dim() != first.dim() or t.dtype != first.dtype for t in tensors) or first.dim() == 0:
        return NotImplemented
    dim = dim % first.dim()
    shape = list(first.shape)
    if any(list(t.shape[:dim]) + list(t.shape[dim + 1:]) != shape[:dim] + shape[dim + 1:] for t in tensors):
        return NotImplemented
    shape[dim] = sum(t.shape[dim] for t in tensors)
    return _empty(first, shape)


def _mm(a, b):
    return _empty(a, (a.shape[0], b.shape[1])) if a.dtype == b.dtype else NotImplemented


def _bmm(a, b):
    return _empty(a, (a.shape[0], a.shape[1], b.shape[2])) if a.dtype == b.dtype else NotImplemented


def _convolution(x, weight, bias, stride, padding, dilation, transposed, output_padding, groups):
    if transposed or x.dim() != 4:
        return NotImplemented
    # H_out = ⌊(H + 2·padding − dilation·(k − 1) − 1) / stride⌋ + 1, the same for W
    spatial = [(size + 2 * p - d * (k - 1) - 1) // s + 1 for size, k, s, p, d in
               zip(x.shape[2:], weight.shape[2:], stride, padding, dilation)]
    return _empty(x, (x.shape[0], weight.shape[0], *spatial))


def _max_pool2d_with_indices(x, kernel_size, stride=(), padding=0, dilation=1, ceil_mode=False):
    def pair(v):
        return tuple(v) * (2 if len(v) == 1 else 1) if isinstance(v, (list, tuple)) else (v, v)
    kernel, padding, dilation = pair(kernel_size), pair(padding), pair(dilation)
    stride = pair(stride) if stride else kernel
    if ceil_mode or x.dim() != 4:
        return NotImplemented
    spatial = [(size + 2 * p - d * (k - 1) - 1) // s + 1 for size, k, s, p, d in
               zip(x.shape[2:], kernel, stride, padding, dilation)]
    shape = (*x.shape[:2], *spatial)
    return _empty(x, shape), _empty(x, shape, dtype=torch.int64)


def _repeat(x, repeats):
    shape = [1] * (len(repeats) - x.dim()) + list(x.shape)
    return _empty(x, [n * r for n, r in zip(shape, repeats)])


def _zeros_like(x, dtype=None, **kwargs):
    return _empty(x, x.shape, dtype=dtype if dtype is not None else x.dtype)


def _prod_dim(x, dim, keepdim=False, dtype=None):
    if dtype is None:
        dtype = x.dtype if x.dtype.is_floating_point or x.dtype.is_complex else torch.int64
    return _empty(x, _reduced_shape(x, dim, keepdim), dtype=dtype)


def _embedding_bag(weight, indices, offsets, scale_grad_by_freq=False, mode=0, sparse=False,
                   per_sample_weights=None, include_last_offset=False, padding_idx=-1):
    """`F.embedding_bag(mode="sum")` on meta: one row of `weight` per bag, as torch's meta does."""
    if mode != 0 or include_last_offset or indices.dim() != 1:
        return NotImplemented
    return (_empty(weight, (offsets.shape[0], weight.shape[1])), _empty(indices, indices.shape),
            _empty(indices, offsets.shape), _empty(indices, (0,)))


def _arange(*bounds, dtype=None, device=None, **kwargs):
    """`arange(end)`, `arange(start, end)`, `arange(start, end, step)` on meta: length and dtype."""
    if torch.device(device if device is not None else "cpu").type != "meta":
        return NotImplemented
    start, end, step = (0, bounds[0], 1) if len(bounds) == 1 else (*bounds, 1)[:3]
    if dtype is None:
        integral = all(isinstance(b, int) and not isinstance(b, bool) for b in (start, end, step))
        dtype = torch.int64 if integral else torch.get_default_dtype()
    length = max(0, math.ceil((end - start) / step))
    return torch.empty((length,), dtype=dtype, device="meta")


SHAPE_RULES = {
    aten.grid_sampler_2d.default: _grid_sampler_2d,
    aten.native_batch_norm.default: _native_batch_norm,
    aten._native_batch_norm_legit_no_training.default: _batch_norm_no_training,
    aten.native_layer_norm.default: _native_layer_norm,
    aten.native_group_norm.default: _native_group_norm,
    aten.upsample_bilinear2d.default: _upsample_bilinear2d,
    aten.addmm.default: _addmm,
    # elementwise ops: the broadcast shape and the promoted dtype (bool for comparisons)
    **{op: _arithmetic for op in (aten.add.Tensor, aten.sub.Tensor, aten.mul.Tensor,
                                  aten.floor_divide.default, aten.bitwise_and.Tensor,
                                  aten.bitwise_or.Tensor)},
    aten.div.Tensor: _true_divide,
    **{op: _compare for op in (aten.le.Tensor, aten.le.Scalar, aten.ge.Tensor, aten.ge.Scalar,
                               aten.lt.Tensor, aten.lt.Scalar, aten.gt.Tensor, aten.gt.Scalar)},
    # the ops whose meta kernels are Python references (see the module docstring)
    **{op: _in_place for op in (aten.normal_.default, aten.uniform_.default, aten.zero_.default,
                                aten.fill_.Scalar, aten.clamp_.default)},
    **{op: _unary for op in (aten.abs.default, aten.floor.default, aten.bitwise_not.default)},
    **{op: _unary_float for op in (aten.sin.default, aten.cos.default, aten.sigmoid.default)},
    aten.masked_fill_.Scalar: _masked_fill_,
    aten.mm.default: _mm,
    aten.bmm.default: _bmm,
    aten.convolution.default: _convolution,
    aten.max_pool2d_with_indices.default: _max_pool2d_with_indices,
    aten.repeat.default: _repeat,
    aten.zeros_like.default: _zeros_like,
    aten.prod.dim_int: _prod_dim,
    aten._embedding_bag_forward_only.default: _embedding_bag,
    **{op: _with_scalar for op in (aten.rsub.Scalar, aten.mul.Scalar)},
    # the decoder's attention: −inf where masked, softmax over the keys (SDPA's safe form too)
    aten.masked_fill.Scalar: _masked_fill,
    aten.cat.default: _cat,
    aten.pow.Scalar: _pow_scalar,
    aten.cumsum.default: _cumsum,
    aten.all.dim: _all_dim,
    aten._softmax.default: _softmax,
    aten._safe_softmax.default: _safe_softmax,
    aten.stack.default: _stack,
    **{op: _arange for op in (aten.arange.default, aten.arange.start, aten.arange.start_step)},
}


class ShapeOnlyMode(TorchDispatchMode):
    """Answer the slow meta ops from their input shapes; run every other op as usual."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        return False        # nothing is compiled here: no guard, no `torch._dynamo` import

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        rule = SHAPE_RULES.get(func)
        if rule is not None and all(a.is_meta for a in _tensors(args)):
            out = rule(*args, **kwargs)
            if out is not NotImplemented:
                return out
        return func(*args, **kwargs)


def _tensors(args):
    for a in args:
        if isinstance(a, torch.Tensor):
            yield a
        elif isinstance(a, (list, tuple)):
            yield from (t for t in a if isinstance(t, torch.Tensor))
