"""A torchinfo summary of the model at any configuration, computed on the `meta` device."""
from __future__ import annotations

import torch

from ..model.config import M2FConfig


def model_summary(config: M2FConfig | None = None, depth: int = 3) -> str:
    """torchinfo's layer table (output shapes, parameter counts) without allocating a weight.

    `Tap` rows (identity modules that only name tensors) are left out.
    """
    from torchinfo import summary

    from .shape_only import meta_model
    from .shape_rules import ShapeOnlyMode

    config = config if config is not None else M2FConfig.seed()
    model = meta_model(config)
    images = torch.empty((config.batch_size, config.in_channels, *config.image_size), device="meta")
    with ShapeOnlyMode():
        stats = summary(model, input_data=[images], depth=depth, verbose=0, device="meta",
                        col_names=("output_size", "num_params"))
    lines = [line for line in str(stats).splitlines() if "─Tap:" not in line]
    return "\n".join(lines) + "\n"
