"""Shape-only tracing on the `meta` device: the seed's every shape without a FLOP.

`meta_model(config)` builds (and caches) a weightless model on `meta`; `trace_shapes(config)`
traces it; both run under `ShapeOnlyMode` (`shape_rules.py`), which answers the slow meta ops
from their inputs' shapes.
"""
from __future__ import annotations

import torch
from torch import nn

from ..model import M2FConfig, Mask2Former
from .shape_rules import ShapeOnlyMode
from .trace import Trace, trace


_META_MODELS: dict[str, nn.Module] = {}


def meta_model(config: M2FConfig):
    """A `Mask2Former` on the `meta` device (no weights in memory), cached per configuration."""
    key = repr(config)
    if key not in _META_MODELS:
        if len(_META_MODELS) >= 8:
            _META_MODELS.pop(next(iter(_META_MODELS)))
        with torch.device("meta"), ShapeOnlyMode():
            _META_MODELS[key] = Mask2Former(config).eval()
    return _META_MODELS[key]


def trace_shapes(config: M2FConfig | None = None, keep=(), record_modules: bool = True) -> Trace:
    """Trace `config` on the `meta` device: every shape, no weights, no arithmetic.

    The seed configuration traces in about 0.1 s once its meta model is built (cached per
    configuration); a fresh process pays no compiler import (see the module docstring).
    """
    config = config if config is not None else M2FConfig.seed()
    model = meta_model(config)
    images = torch.empty((config.batch_size, config.in_channels, *config.image_size), device="meta")
    return trace(model, images, keep=keep, record_modules=record_modules)
