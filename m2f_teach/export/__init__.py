"""Export the model: an ONNX file for onnxruntime and a `torch.export` program (`.pt2`).

    python -m m2f_teach export --format onnx -o m2f.onnx      # the shipped checkpoint, checked in onnxruntime
    python -m m2f_teach export --format pt2 -o m2f.pt2

Both take `images (B, 3, H, W)` (normalised, as `m2f_teach.predict.preprocess` makes them)
and return the last prediction: `cls_pred (B, Q, K)` and `mask_pred (B, Q, H/4, W/4)`; each
carries the metadata that `predict --onnx FILE` reads (`metadata.py`: class names, mean/std,
scale, input size, padding rule). `onnx.py`, `program.py`: the two formats; `cli.py`: the
`export` subcommand.
"""
from .metadata import read_onnx_metadata, read_pt2_metadata
from .onnx import check_onnx, export_onnx
from .program import LastPrediction, check_program, export_program, save_program

__all__ = ["LastPrediction", "export_onnx", "check_onnx", "export_program", "check_program", "save_program",
           "read_onnx_metadata", "read_pt2_metadata"]
