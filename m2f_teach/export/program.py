"""A `torch.export` program of the model, with a dynamic batch: `.pt2`.

    program = export_program(model, image_size=(128, 128))       # torch.export.ExportedProgram
    torch.export.save(program, "m2f.pt2")
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

MAX_BATCH = 64


class LastPrediction(nn.Module):
    """The model, returning only its last prediction: `cls_pred (B, Q, K)`, `mask_pred (B, Q, Hm, Wm)`."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, images):
        cls_pred_list, mask_pred_list = self.model(images)
        return cls_pred_list[-1], mask_pred_list[-1]


def example_images(model, image_size=None, batch_size: int = 2) -> torch.Tensor:
    """Random `(B, 3, H, W)` images to trace with (`image_size` default: the model config's)."""
    H, W = image_size if image_size is not None else model.config.image_size
    if image_size_error(H, W) is not None:
        raise ValueError(f"--image-size {H} {W}: {image_size_error(H, W)}")
    weight = next(model.parameters())
    return torch.randn(batch_size, 3, H, W, generator=torch.Generator().manual_seed(0)).to(weight.dtype)


def export_program(model, image_size=None) -> torch.export.ExportedProgram:
    """`torch.export.export` of `LastPrediction(model)` with a dynamic batch (1..64)."""
    images = example_images(model, image_size)
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    with torch.no_grad():
        return torch.export.export(LastPrediction(model.eval()), (images,),
                                   dynamic_shapes={"images": {0: batch}})


def check_program(path, model, images: torch.Tensor) -> float:
    """Load a saved `.pt2`, run it and the model on `images`: the largest absolute difference."""
    program = torch.export.load(str(path)).module()
    with torch.no_grad():
        got = program(images)
        want = LastPrediction(model.eval())(images)
    return max(float((a - b).abs().max()) for a, b in zip(got, want))
