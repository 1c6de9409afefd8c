"""A `torch.export` program of the model, with a dynamic batch: `.pt2`.

    program = export_program(model, image_size=(128, 128))       # torch.export.ExportedProgram
    save_program(program, "m2f.pt2", metadata)                  # metadata inside: m2f_teach.json
    cls_pred, mask_pred = torch.export.load("m2f.pt2").module()(images)

The batch is dynamic; the image size is fixed at export. The pixel decoder reads each level's
`(H_l, W_l)` as Python ints (`spatial_shapes_list`, for the split of `memory` and the
deformable core), so a graph is specialised to one size: export once per image size (a
`torch.export` with a symbolic H and W traces, but the sizes it bakes in break at another).
"""
from __future__ import annotations

import torch
from torch import nn

from ..model.config import image_size_error
from ..predict.preprocess import MAX_INPUT_PIXELS

MAX_BATCH = 64


class LastPrediction(nn.Module):
    """The model, returning only its last prediction: `cls_pred (B, Q, K)`, `mask_pred (B, Q, Hm, Wm)`."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, images):
        cls_pred_list, mask_pred_list = self.model(images)
        return cls_pred_list[-1], mask_pred_list[-1]


def check_image_size(image_size, max_input_pixels: int = MAX_INPUT_PIXELS) -> tuple[int, int]:
    """`(H, W)` if both are positive multiples of 32 and `H·W ≤ max_input_pixels` (0: no
    limit, as `predict` refuses larger inputs), else one clear error naming `--image-size`."""
    H, W = image_size
    if image_size_error(H, W) is not None:
        raise ValueError(f"--image-size {H} {W}: {image_size_error(H, W)}")
    if max_input_pixels and H * W > max_input_pixels:
        raise ValueError(f"--image-size {H} {W}: {H * W / 1e6:.1f} Mpixels, above the limit of "
                         f"{max_input_pixels / 1e6:.1f} Mpixels (memory grows with it); raise it with "
                         f"--max-input-pixels N (0: no limit)")
    return H, W


def example_images(model, image_size=None, batch_size: int = 2,
                   max_input_pixels: int = MAX_INPUT_PIXELS) -> torch.Tensor:
    """Random `(B, 3, H, W)` images to trace with (`image_size` default: the model config's)."""
    H, W = check_image_size(image_size if image_size is not None else model.config.image_size, max_input_pixels)
    weight = next(model.parameters())
    return torch.randn(batch_size, 3, H, W, generator=torch.Generator().manual_seed(0)).to(weight.dtype)


def export_program(model, image_size=None) -> torch.export.ExportedProgram:
    """`torch.export.export` of `LastPrediction(model)` with a dynamic batch (1..64)."""
    images = example_images(model, image_size)
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    with torch.no_grad():
        return torch.export.export(LastPrediction(model.eval()), (images,),
                                   dynamic_shapes={"images": {0: batch}})


def save_program(program, path, metadata: dict) -> None:
    """`torch.export.save` with `metadata` (`m2f_teach.export.metadata`) as the extra file
    `m2f_teach.json`, written under a temporary name and renamed when whole."""
    import json
    from pathlib import Path

    from .metadata import METADATA_FILE
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        torch.export.save(program, str(tmp), extra_files={METADATA_FILE: json.dumps(metadata)})
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def differences(got, want) -> tuple[float, float]:
    """The largest absolute difference over the outputs, and the largest relative one: each
    output's largest absolute difference over its largest magnitude (mask logits reach ±95)."""
    absolute = [float((a - b).abs().max()) for a, b in zip(got, want)]
    relative = [d / max(float(b.abs().max()), 1e-12) for d, b in zip(absolute, want)]
    return max(absolute), max(relative)


def check_program(path, model, images: torch.Tensor, relative: bool = False) -> float:
    """Load a saved `.pt2`, run it and the model on `images`: the largest absolute difference
    (`relative=True`: the largest relative one, see `differences`)."""
    program = torch.export.load(str(path)).module()
    with torch.no_grad():
        got = program(images)
        want = LastPrediction(model.eval())(images)
    return differences(got, want)[1 if relative else 0]
