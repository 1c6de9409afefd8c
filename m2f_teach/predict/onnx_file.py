"""`predict --onnx FILE`: an exported ONNX file run in onnxruntime, with the metadata it carries.

    predictor = onnx_predictor("m2f.onnx")          # a `Predictor` whose model is onnxruntime
    results = predictor(["photo.jpg"], task="instance")

No Mask2Former module is built and no weights are loaded in PyTorch: the file's metadata
(`m2f_teach.export.metadata`) gives the class names, the thing/stuff split, the test scale and
the input size; preprocessing and post-processing are `predict`'s own, so the file reproduces
`predict` on an image whose padded size is the file's (`export --image-size H W` with `predict`'s
padded size; another image is padded to the file's size, said in a note, and can differ, since
the pixel decoder sees padding as image).
"""
from __future__ import annotations

import torch

from .api import Predictor


class OnnxModel:
    """onnxruntime on one file: `(B, 3, H, W)` → `cls_pred (B, Q, K)`, `mask_pred (B, Q, Hm, Wm)`."""

    def __init__(self, path):
        try:
            import onnxruntime
        except ImportError as err:
            raise ImportError("running an ONNX file needs onnxruntime: pip install 'm2f-teach[export]'") from err
        from ..export.metadata import metadata_of
        try:
            self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as err:           # onnxruntime raises its own exception types
            raise ValueError(f"{path}: onnxruntime cannot load it ({type(err).__name__})") from None
        self.metadata = metadata_of(self.session, path)
        self.num_classes = len(self.metadata["class_names"])
        self.input_size = tuple(self.metadata["input_size"])

    def eval(self):
        return self

    def __call__(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cls_pred, mask_pred = self.session.run(None, {"images": batch.float().numpy()})
        return torch.from_numpy(cls_pred), torch.from_numpy(mask_pred)


def onnx_predictor(path) -> Predictor:
    """A `Predictor` running `path` in onnxruntime, set up from the file's metadata."""
    model = OnnxModel(path)
    meta = model.metadata
    scale = tuple(meta["scale"]) if meta["scale"] is not None else None
    return Predictor(model, meta["class_names"], meta["num_things"], scale=scale, source=str(path),
                     min_probability=meta["min_probability"], pad_to=model.input_size)
