"""An ONNX file of the model, checked in onnxruntime.

    export_onnx(model, "m2f.onnx", image_size=(128, 128))
    max_diff = check_onnx("m2f.onnx", model, images)      # onnxruntime vs PyTorch

Input `images (B, 3, H, W)` float32, outputs `cls_pred (B, Q, K)` and `mask_pred (B, Q, Hm, Wm)`;
the batch is dynamic, the image size fixed at export (see `program.py` for why).

Two choices make the file run in onnxruntime:

* the model is exported in its readable forms (`kernels.readable()`): the deformable core as
  `multi_scale_deformable_attn_grid_sample` (the seed's and mmcv's PyTorch path), which ONNX
  has as one operator, `GridSample` (opset 16+); the fast core of `m2f_teach/kernels/`, a
  weighted `embedding_bag` over int32 indices, computes the same numbers but exports to ops
  that onnxruntime's type checks refuse (int32 and int64 mixed in one `Concat`).
* by default the TorchScript-based exporter (`torch.onnx.export(..., dynamo=False)`, opset
  17): seconds on a laptop, where the `torch.export`-based one (`dynamo=True`) takes minutes
  for the same file and the same numbers.
"""
from __future__ import annotations

import warnings

import torch

from .. import kernels
from .program import MAX_BATCH, LastPrediction, example_images

OPSET = 17


def export_onnx(model, path, image_size=None, dynamo: bool = False) -> None:
    """Write `LastPrediction(model)` to `path` (ONNX, dynamic batch)."""
    images = example_images(model, image_size)
    wrapper = LastPrediction(model.eval())
    names = dict(input_names=["images"], output_names=["cls_pred", "mask_pred"])
    with kernels.readable(), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")        # tracer and deprecation warnings: the check below counts
        if dynamo:
            batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
            torch.onnx.export(wrapper, (images,), str(path), dynamo=True, verbose=False,
                              dynamic_shapes={"images": {0: batch}}, **names)
        else:
            torch.onnx.export(wrapper, (images,), str(path), dynamo=False, opset_version=OPSET,
                              dynamic_axes={"images": {0: "batch"}, "cls_pred": {0: "batch"},
                                            "mask_pred": {0: "batch"}}, **names)


def check_onnx(path, model, images: torch.Tensor) -> float:
    """Run `path` in onnxruntime (CPU) and the model in PyTorch: the largest absolute difference."""
    try:
        import onnxruntime
    except ImportError as err:
        raise ImportError("checking an ONNX file needs onnxruntime: pip install 'm2f-teach[export]'") from err
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"images": images.float().numpy()})
    with torch.no_grad():
        want = LastPrediction(model.eval())(images)
    return max(float((torch.from_numpy(a) - b).abs().max()) for a, b in zip(got, want))
