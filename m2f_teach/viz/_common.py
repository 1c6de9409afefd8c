"""Small helpers the views share: kept values with a clear error, level geometry."""
from __future__ import annotations

import numpy as np
import torch


def kept(trace, name: str) -> torch.Tensor:
    """`trace.value(name)`, with a hint on the `keep=` pattern when the values were not kept."""
    try:
        return trace.value(name)
    except KeyError as error:
        raise KeyError(f"this view needs the values of {name!r}: trace the model with "
                       f"keep=['*'] (or a pattern matching it). {error}") from None


def level_shapes(trace) -> list[tuple[int, int]]:
    """(H_l, W_l) per encoder level, low to high resolution, from the trace's config."""
    return [tuple(hw) for hw in trace.config.spatial_shapes]


def level_starts(trace) -> list[int]:
    starts, total = [], 0
    for h, w in level_shapes(trace):
        starts.append(total)
        total += h * w
    return starts


def num_predictions(trace) -> int:
    return len(trace.names(pattern="panoptic_head.cls_pred.*"))


def show_image(ax, image, extent=None, alpha=1.0):
    """Draw `(H, W, 3)` uint8 in image pixel coordinates (pixel centres at integer + 0.5)."""
    if image is None:
        return
    H, W = image.shape[:2]
    ax.imshow(image, extent=extent if extent is not None else (0, W, H, 0), alpha=alpha,
              interpolation="nearest")


def as_numpy(x: torch.Tensor) -> np.ndarray:
    return x.detach().float().cpu().numpy()


def clean_axes(ax):
    ax.set_xticks([])
    ax.set_yticks([])
