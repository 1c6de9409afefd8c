"""An ONNX file of the model, checked in onnxruntime.

    export_onnx(model, "m2f.onnx", image_size=(128, 128), metadata=describe(predictor, (128, 128)))
    max_diff = check_onnx("m2f.onnx", model, images)      # onnxruntime vs PyTorch

Input `images (B, 3, H, W)` float32, outputs `cls_pred (B, Q, K)` and `mask_pred (B, Q, Hm, Wm)`,
declared with these shapes (`batch` dynamic); the image size is fixed at export (see
`program.py` for why). The file carries `m2f_teach.export.metadata` (class names, mean/std,
scale, input size, padding rule) for `predict --onnx FILE`; it is written under a temporary
name and renamed when whole.

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
from .program import MAX_BATCH, LastPrediction, differences, example_images

OPSET = 17


def export_onnx(model, path, image_size=None, dynamo: bool = False, metadata: dict | None = None) -> None:
    """Write `LastPrediction(model)` to `path` (ONNX, dynamic batch) with `metadata` (default:
    placeholder class names, images fitted into the export size)."""
    from pathlib import Path

    from .metadata import describe, write_onnx_metadata
    images = example_images(model, image_size)
    if metadata is None:
        from ..predict.api import Predictor
        H, W = images.shape[-2:]
        metadata = describe(Predictor(model, scale=(max(H, W), min(H, W))), (H, W))
    wrapper = LastPrediction(model.eval())
    names = dict(input_names=["images"], output_names=["cls_pred", "mask_pred"])
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with kernels.readable(), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")        # tracer and deprecation warnings: the check below counts
            if dynamo:
                batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
                torch.onnx.export(wrapper, (images,), str(tmp), dynamo=True, verbose=False,
                                  dynamic_shapes={"images": {0: batch}}, **names)
            else:
                torch.onnx.export(wrapper, (images,), str(tmp), dynamo=False, opset_version=OPSET,
                                  dynamic_axes={"images": {0: "batch"}, "cls_pred": {0: "batch"},
                                                "mask_pred": {0: "batch"}}, **names)
        write_onnx_metadata(tmp, metadata)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def check_onnx(path, model, images: torch.Tensor, relative: bool = False) -> float:
    """Run `path` in onnxruntime (CPU) and the model in PyTorch: the largest absolute difference
    (`relative=True`: the largest relative one, see `differences`)."""
    try:
        import onnxruntime
    except ImportError as err:
        raise ImportError("checking an ONNX file needs onnxruntime: pip install 'm2f-teach[export]'") from err
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = [torch.from_numpy(a) for a in session.run(None, {"images": images.float().numpy()})]
    with torch.no_grad():
        want = LastPrediction(model.eval())(images)
    return differences(got, want)[1 if relative else 0]
