"""Shape-only execution on the `meta` device, fast enough to trace the seed in a blink.

A `meta` tensor has a shape and a dtype but no data, so a forward pass on `meta` computes
every shape without a single FLOP. A few ops (grid_sample, the norms, bilinear resize,
addmm, softmax, masked_fill, the elementwise arithmetic and comparisons) have meta kernels written as Python
decompositions that spend 0.3–1 ms each building shapes they could read off their inputs;
`ShapeOnlyMode` answers those ops directly: the output shape (broadcast where the op
broadcasts) and dtype (promoted as torch promotes), in the default contiguous layout.
It is only ever active around a meta-device trace.

`meta_model(config)` builds (and caches) a weightless model on `meta`; `trace_shapes(config)`
traces it under this mode: the seed's every shape without a FLOP.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from ..model import M2FConfig, Mask2Former
from .trace import Trace, trace

aten = torch.ops.aten


def _grid_sampler_2d(input, grid, *args):
    N, C = input.shape[:2]
    return input.new_empty((N, C, grid.shape[1], grid.shape[2]))


def _native_batch_norm(x, weight, bias, running_mean, running_var, training, momentum, eps):
    C = x.shape[1]
    return x.new_empty(x.shape), x.new_empty((C,)), x.new_empty((C,))


def _batch_norm_no_training(x, weight, bias, running_mean, running_var, momentum, eps):
    return x.new_empty(x.shape), x.new_empty((0,)), x.new_empty((0,))


def _native_layer_norm(x, normalized_shape, weight, bias, eps):
    k = len(normalized_shape)
    stats = tuple(x.shape[: x.dim() - k]) + (1,) * k
    return x.new_empty(x.shape), x.new_empty(stats), x.new_empty(stats)


def _native_group_norm(x, weight, bias, N, C, HxW, group, eps):
    return x.new_empty(x.shape), x.new_empty((N, group)), x.new_empty((N, group))


def _upsample_bilinear2d(x, output_size, align_corners, *args):
    return x.new_empty(tuple(x.shape[:2]) + tuple(output_size))


def _addmm(bias, mat1, mat2, beta=1, alpha=1):
    return mat1.new_empty((mat1.shape[0], mat2.shape[1]))


def _same_shape(x, *args, **kwargs):
    return x.new_empty(x.shape)


def _safe_softmax(x, dim, dtype=None):
    return x.new_empty(x.shape, dtype=dtype or x.dtype)


def _broadcast(a, b, dtype):
    shape = torch.broadcast_shapes(*(x.shape for x in (a, b) if isinstance(x, torch.Tensor)))
    tensor = a if isinstance(a, torch.Tensor) else b
    return tensor.new_empty(shape, dtype=dtype)


def _arithmetic(a, b, alpha=1):
    return _broadcast(a, b, torch.result_type(a, b))


def _true_divide(a, b):
    dtype = torch.result_type(a, b)
    return _broadcast(a, b, dtype if dtype.is_floating_point else torch.get_default_dtype())


def _compare(a, b):
    return _broadcast(a, b, torch.bool)


SHAPE_RULES = {
    aten.grid_sampler_2d.default: _grid_sampler_2d,
    aten.native_batch_norm.default: _native_batch_norm,
    aten._native_batch_norm_legit_no_training.default: _batch_norm_no_training,
    aten.native_layer_norm.default: _native_layer_norm,
    aten.native_group_norm.default: _native_group_norm,
    aten.upsample_bilinear2d.default: _upsample_bilinear2d,
    aten.addmm.default: _addmm,
    # the decoder's attention: softmax over the keys (SDPA's safe form too), −inf where masked
    aten._softmax.default: _same_shape,
    aten._safe_softmax.default: _safe_softmax,
    aten.masked_fill.Scalar: _same_shape,
    # elementwise ops: the broadcast shape and the promoted dtype (bool for comparisons)
    **{op: _arithmetic for op in (aten.add.Tensor, aten.sub.Tensor, aten.mul.Tensor,
                                  aten.floor_divide.default, aten.bitwise_and.Tensor,
                                  aten.bitwise_or.Tensor)},
    aten.div.Tensor: _true_divide,
    **{op: _compare for op in (aten.le.Tensor, aten.le.Scalar, aten.ge.Tensor, aten.ge.Scalar,
                               aten.lt.Tensor, aten.lt.Scalar, aten.gt.Tensor, aten.gt.Scalar)},
}


class ShapeOnlyMode(TorchDispatchMode):
    """Answer the slow meta ops from their input shapes; run every other op as usual."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        rule = SHAPE_RULES.get(func)
        if rule is not None and all(a.is_meta for a in args if isinstance(a, torch.Tensor)):
            return rule(*args, **kwargs)
        return func(*args, **kwargs)


# ---- shape-only tracing on the meta device --------------------------------------------------------
_META_MODELS: dict[str, nn.Module] = {}


def meta_model(config: M2FConfig):
    """A `Mask2Former` on the `meta` device (no weights in memory), cached per configuration."""
    key = repr(config)
    if key not in _META_MODELS:
        if len(_META_MODELS) >= 8:
            _META_MODELS.pop(next(iter(_META_MODELS)))
        with torch.device("meta"):
            _META_MODELS[key] = Mask2Former(config).eval()
    return _META_MODELS[key]


def trace_shapes(config: M2FConfig | None = None, keep=(), record_modules: bool = True) -> Trace:
    """Trace `config` on the `meta` device: every shape, no weights, no arithmetic.

    The seed configuration traces in a fraction of a second once torch's one-time meta set-up
    (~2 s on the first meta op of a process) is done.
    """
    config = config if config is not None else M2FConfig.seed()
    model = meta_model(config)
    images = torch.empty((config.batch_size, config.in_channels, *config.image_size), device="meta")
    return trace(model, images, keep=keep, record_modules=record_modules)
