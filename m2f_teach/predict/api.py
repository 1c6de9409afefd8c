"""One call from images to results: `predict(images, task=...)`.

    from m2f_teach.predict import Predictor, predict
    results = predict(["a.jpg", photo_array], task="panoptic")      # the shipped checkpoint
    predictor = Predictor.from_weights("coco.safetensors")           # converted weights, loaded once
    results = predictor(images, task="instance", score_threshold=0.5)

`predict()` loads the weights on every call; a `Predictor` keeps its model, for many calls.
Each result is a dict for one image, at that image's own size `(h, w)`:

* `task="instance"`: `instances`, a list (best first) of `{"label", "name", "score", "box",
  "mask"}`, `box` `(x0, y0, x1, y1)` ints with x1, y1 one past the mask's last pixel (mmdet's
  `mask2bbox`), `mask` a `(h, w)` bool tensor; pairs below `score_threshold` or with an empty
  mask are left out.
* `task="semantic"`: `segmentation (h, w)` class ids and `classes`, `{"label", "name"}` of the
  classes present; a pixel whose best class sum is below `min_probability` gets −1 (none).
* `task="panoptic"`: `segmentation (h, w)` segment ids (0 = no segment) and `segments`,
  `{"id", "label", "name", "score", "is_thing", "query"}` each (a merged stuff segment lists
  every query it took).

`to_json(results)` turns masks into COCO RLE (`m2f_teach.predict.rle`): load one with
`pycocotools.mask.decode(rle)` or `m2f_teach.predict.rle.decode(rle)`.
"""
from __future__ import annotations

import math
import numbers
import warnings

import torch

from . import postprocess
from .preprocess import COCO_TEST_SCALE, MAX_INPUT_PIXELS, InputNote, batches, preprocess
from .tasks import TASKS, get_task

SHAPES_MIN_PROBABILITY = 0.5   # semantic on the shipped checkpoint: it has no background class


def check_fraction(value, name: str) -> float:
    """`value` as a float in [0, 1], else one clear error naming `name` (a flag or an argument)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} {value!r}: expected a number from 0 to 1, got {type(value).__name__}")
    if not (math.isfinite(value) and 0 <= value <= 1):
        raise ValueError(f"{name} {value}: expected a number from 0 to 1")
    return float(value)


def resolve_device(device) -> torch.device:
    """`device` as a `torch.device` that this machine has, else one clear error."""
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device {device!r}: expected cpu, cuda or cuda:N") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r}: CUDA is not available on this machine (PyTorch "
                             f"{torch.__version__}); use cpu")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA devices")
    return resolved


class Predictor:
    """A model, its class names and which are things, its test scale; call it on images.

    `model` is a `Mask2Former` (or anything with `num_classes` that maps a batch
    `(B, 3, H, W)` to the last `cls_pred (B, Q, K)`, `mask_pred (B, Q, Hm, Wm)`, as
    `m2f_teach.predict.onnx_file.OnnxModel` does); `pad_to` fixes the padded size (an exported
    file's); `min_probability` is the semantic default (0: every pixel gets a class)."""

    def __init__(self, model, class_names=None, num_things: int | None = None,
                 scale: tuple[int, int] | None = COCO_TEST_SCALE, source: str = "model",
                 min_probability: float = 0.0, pad_to: tuple[int, int] | None = None,
                 max_input_pixels: int = MAX_INPUT_PIXELS):
        num_classes = model.config.num_classes if hasattr(model, "config") else model.num_classes
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names for a model with {num_classes} classes")
        self.model = model.eval() if isinstance(model, torch.nn.Module) else model
        self.class_names = list(class_names) if class_names is not None else [f"class {i}" for i in range(num_classes)]
        self.num_things = num_things
        self.scale = scale
        self.source = source
        self.min_probability = check_fraction(min_probability, "min_probability")
        self.pad_to = pad_to
        self.max_input_pixels = max_input_pixels

    @classmethod
    def from_weights(cls, weights=None, device="cpu") -> "Predictor":
        """`weights=None`: the shipped checkpoint (the shapes' names, all five are things, images
        fitted into 128×128 as it was trained, semantic `min_probability` 0.5 since it has no
        background class); else a file written by `convert` (its stored class names and
        thing/stuff split, mmdet's COCO test scale 1333×800, `min_probability` 0)."""
        device = str(resolve_device(device))
        if weights is None:
            from ..pretrained import class_names, load_pretrained
            model = load_pretrained(device)
            H, W = model.config.image_size
            return cls(model, class_names(), num_things=len(class_names()), scale=(max(H, W), min(H, W)),
                       source="the shipped checkpoint", min_probability=SHAPES_MIN_PROBABILITY)
        from ..convert.checkpoint import load_checkpoint, read_labels
        model = load_checkpoint(weights, map_location=device)
        labels = read_labels(weights)
        return cls(model, labels["class_names"], labels["num_things"], source=str(weights))

    def forward(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`(B, 3, H, W)` → the last `cls_pred (B, Q, K)`, `mask_pred (B, Q, Hm, Wm)`, float32 on the CPU."""
        if not isinstance(self.model, torch.nn.Module):
            return self.model(batch)
        weight = next(self.model.parameters())
        cls_pred_list, mask_pred_list = self.model(batch.to(weight.device, weight.dtype))
        return cls_pred_list[-1].float().cpu(), mask_pred_list[-1].float().cpu()

    @torch.no_grad()
    def run_model(self, images, names=None, background: str = "black"):
        """Images → `[(cls_pred (Q, K), mask_pred (Q, Hm, Wm), meta)]`: the last prediction."""
        tensors, metas = preprocess(images, self.scale, names, background, self.pad_to, self.max_input_pixels)
        tell_notes(metas)
        out: list = [None] * len(tensors)
        for idx in batches(tensors):
            batch = torch.stack([tensors[i] for i in idx])                    # (B, 3, H_pad, W_pad)
            cls_pred, mask_pred = self.forward(batch)
            if not (torch.isfinite(cls_pred).all() and torch.isfinite(mask_pred).all()):
                raise ValueError(f"{', '.join(metas[i].name for i in idx)}: the model's outputs contain "
                                 f"NaN or infinite values (broken weights?); no results")
            for j, i in enumerate(idx):
                out[i] = (cls_pred[j], mask_pred[j], metas[i])
        return out

    def __call__(self, images, task: str = "instance", score_threshold: float = 0.5,
                 object_mask_threshold: float = 0.8, overlap_threshold: float = 0.8,
                 min_probability: float | None = None, names=None, background: str = "black",
                 to_rgb: bool = True) -> list[dict]:
        """Results for `images` (see the module doc). `to_rgb` is kept for old calls: images
        are always converted to RGB now."""
        spec = get_task(task)              # what differs between tasks: `tasks.TASKS`
        score_threshold = check_fraction(score_threshold, "score_threshold")
        object_mask_threshold = check_fraction(object_mask_threshold, "object_mask_threshold")
        overlap_threshold = check_fraction(overlap_threshold, "overlap_threshold")
        min_probability = self.min_probability if min_probability is None else \
            check_fraction(min_probability, "min_probability")
        if spec.needs_num_things and self.num_things is None:
            raise ValueError(f"task {task!r} needs to know which classes are stuff, and {self.source} "
                             f"does not say; give num_things (classes 0..N−1 are things, the rest "
                             f"stuff; --num-things N on the command line)")
        options = dict(score_threshold=score_threshold, object_mask_threshold=object_mask_threshold,
                       overlap_threshold=overlap_threshold, min_probability=min_probability)
        results = []
        for cls_pred, mask_pred, meta in self.run_model(images, names, background):
            masks = postprocess.MaskLogits(mask_pred, meta.pad_shape, meta.img_shape, meta.ori_shape)
            result = {"name": meta.name, "task": task, "size": meta.ori_shape}
            result.update(spec.results(cls_pred, masks, self.class_names, self.num_things, options))
            results.append(result)
        return results


def tell_notes(metas) -> None:
    """Each kind of conversion once per call, naming the images it was made on (`InputNote`)."""
    said: dict[str, tuple[str, list[str]]] = {}
    for meta in metas:
        for kind, text in meta.notes:
            said.setdefault(kind, (text, []))[1].append(meta.name)
    for text, names in said.values():
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        warnings.warn(f"{shown}: {text}", InputNote, stacklevel=4)


def predict(images, task: str = "instance", *, weights=None, device="cpu", score_threshold: float = 0.5,
            object_mask_threshold: float = 0.8, overlap_threshold: float = 0.8,
            min_probability: float | None = None, background: str = "black", names=None) -> list[dict]:
    """Results for `images` (paths, PIL images, numpy `(H, W, 3)` or torch `(3, H, W)`; see
    `preprocess` for the types converted) for one `task`: instance, semantic or panoptic.

    `weights`: a `.safetensors` file from `convert` (default: the shipped checkpoint), loaded
    on `device` (cpu, cuda, cuda:N) **on every call**: for many calls keep a
    `Predictor.from_weights(weights, device)` and call it. `score_threshold` (instance, 0..1,
    default 0.5): keep pairs scoring at least this. `object_mask_threshold` (panoptic, default
    0.8, mmdet's): keep queries whose class probability exceeds it; `overlap_threshold`
    (default 0.8): drop a query keeping at most this share of its own mask. `min_probability`
    (semantic): pixels whose best class sum is below it get −1; default 0.5 for the shipped
    checkpoint (no background class), 0 for converted weights. `background`: black or white,
    what transparent pixels are composited on. `names`: one per image, for results and errors.
    Returns one dict per image (see the module doc)."""
    return Predictor.from_weights(weights, device)(
        images, task, score_threshold=score_threshold, object_mask_threshold=object_mask_threshold,
        overlap_threshold=overlap_threshold, min_probability=min_probability, names=names,
        background=background)


def to_json(results: list[dict]) -> list[dict]:
    """Results with every mask as COCO RLE (`m2f_teach.predict.rle`, readable by pycocotools)."""
    return [{"image": r["name"], "task": r["task"], "height": r["size"][0], "width": r["size"][1],
             **TASKS[r["task"]].to_json(r)} for r in results]
