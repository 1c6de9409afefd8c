"""The model with what the notebooks teach as extra outputs, for ONNX and the explorer page.

    wrapper = TeachingOutputs(model)                  # model: the shipped checkpoint, eval mode
    outputs = wrapper(images)                         # a tuple, in the order of `wrapper.output_names`
    export_teaching_onnx(model, "m2f_teach.onnx")     # one image, 128×128 at the checkpoint's config
    max_diff = check_teaching_onnx("m2f_teach.onnx", model, images)

The extra outputs are the tensors the model passes through its `Tap`s, kept by
`m2f_teach.tracing.trace` (the same taps the notebooks and the shape table read), so the page
shows what the notebooks show, from the same model code:

| output | shape | what |
|---|---|---|
| `sampling_locations.{i}` | (B, S, nH, L, P, 2) | encoder layer i's sampling points, fractions of each level (x, y) |
| `attention_weights.{i}` | (B, S, nH, L·P) | encoder layer i's weights of those points (softmax over L·P) |
| `reference_points` | (B, S, L, 2) | each token's reference point on every level |
| `attn_mask.{i}` | (B·nH, Q, H_l·W_l) | the mask decoder layer i attended with (True = blocked), after the all-blocked reset |
| `all_blocked.{i}` | (B·nH, Q) | the rows that were all blocked before layer i and so were reset to attend everywhere |
| `cls_pred.{j}` | (B, Q, K) | prediction j's class logits (j = 0 before the first decoder layer) |
| `mask_pred.{j}` | (B, Q, Hm, Wm) | prediction j's mask logits |

The batch is fixed at export (one image in the page), as is the image size (see
`m2f_teach/export/program.py`); the deformable core is exported in its `grid_sample` form, as
`m2f_teach.export.onnx` does.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from .. import kernels
from ..export.onnx import OPSET
from ..tracing import trace

PD = "panoptic_head.pixel_decoder."
HD = "panoptic_head."
# short output name → the traced name (a glob with one `{i}` for a layer or prediction index)
TAPPED = {
    "sampling_locations": PD + "encoder.layers.{i}.self_attn.sampling_locations",
    "attention_weights": PD + "encoder.layers.{i}.self_attn.attention_weights",
    "attn_mask": HD + "transformer_decoder.layers.{i}.attn_mask",
    "all_blocked": HD + "all_blocked.{i}",
    "cls_pred": HD + "cls_pred.{i}",
    "mask_pred": HD + "mask_pred.{i}",
}
REFERENCE_POINTS = PD + "reference_points"


def output_names(config) -> list[str]:
    """The outputs' names, in order: per encoder layer, then per decoder layer and prediction."""
    names = []
    for i in range(config.num_encoder_layers):
        names += [f"sampling_locations.{i}", f"attention_weights.{i}"]
    names.append("reference_points")
    for i in range(config.num_decoder_layers):
        names += [f"attn_mask.{i}", f"all_blocked.{i}"]
    for j in range(config.num_decoder_layers + 1):
        names += [f"cls_pred.{j}", f"mask_pred.{j}"]
    return names


def traced_name(name: str) -> str:
    """`"attn_mask.3"` → the full traced name of that tensor."""
    if name == "reference_points":
        return REFERENCE_POINTS
    short, index = name.rsplit(".", 1)
    return TAPPED[short].format(i=index)


class TeachingOutputs(nn.Module):
    """`images (B, 3, H, W)` → the tapped tensors named by `output_names(model.config)`, in order."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.output_names = output_names(model.config)
        self.keep = [traced_name(n) for n in self.output_names]

    def forward(self, images):
        # no symbolic-shape check: under the ONNX exporter's tracer shapes are tensors, not ints
        recorded = trace(self.model, images, keep=self.keep, record_modules=False, check=False)
        return tuple(recorded.value(name) for name in self.keep)


def example_image(model, image_size=None) -> torch.Tensor:
    H, W = image_size if image_size is not None else model.config.image_size
    return torch.randn(1, 3, H, W, generator=torch.Generator().manual_seed(0))


def export_teaching_onnx(model, path, image_size=None, simplify: bool = True) -> list[str]:
    """Write `TeachingOutputs(model)` for one image to `path` (ONNX); returns the output names.

    `simplify`: pass the file through onnxruntime's basic graph optimisations once, here
    (constant folding: the tracer's 4,700 nodes, many of them shape arithmetic, become 1,300 plain
    ONNX operators), so a browser creates its session in a fraction of the time.
    """
    wrapper = TeachingOutputs(model.eval())
    images = example_image(model, image_size)
    path = Path(path)
    raw = path.with_name(path.stem + ".traced.onnx") if simplify else path
    try:
        with kernels.readable(), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")    # tracer warnings: the check against PyTorch counts
            torch.onnx.export(wrapper, (images,), str(raw), dynamo=False, opset_version=OPSET,
                              input_names=["images"], output_names=wrapper.output_names)
        if simplify:
            import onnxruntime
            options = onnxruntime.SessionOptions()
            options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
            options.optimized_model_filepath = str(path)
            onnxruntime.InferenceSession(str(raw), options, providers=["CPUExecutionProvider"])
    finally:
        if simplify:
            raw.unlink(missing_ok=True)
    return wrapper.output_names


def check_teaching_onnx(path, model, images: torch.Tensor) -> dict[str, float]:
    """Each output's largest absolute difference, onnxruntime (CPU) against PyTorch."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    got = session.run(None, {"images": images.float().numpy()})
    with torch.no_grad():
        want = TeachingOutputs(model.eval())(images)
    return {name: float((torch.from_numpy(a).float() - b.float()).abs().max())
            for name, a, b in zip(names, got, want)}
