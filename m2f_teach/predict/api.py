"""One call from images to results: `predict(images, task=...)`.

    from m2f_teach.predict import Predictor, predict
    results = predict(["a.jpg", photo_array], task="panoptic")      # the shipped checkpoint
    predictor = Predictor.from_weights("coco.safetensors")           # converted weights
    results = predictor(images, task="instance", score_threshold=0.5)

Each result is a dict for one image, at that image's own size `(h, w)`:

* `task="instance"`: `instances`, a list (best first) of `{"label", "name", "score", "mask"}`,
  `mask` a `(h, w)` bool tensor; pairs below `score_threshold` or with an empty mask are left out.
* `task="semantic"`: `segmentation (h, w)` class ids (every pixel gets a class) and `classes`,
  `{"label", "name"}` of the classes present.
* `task="panoptic"`: `segmentation (h, w)` segment ids (0 = no segment) and `segments`,
  `{"id", "label", "name", "score", "is_thing", "query"}` each (a merged stuff segment lists
  every query it took).

`to_json(results)` turns masks into COCO RLE (`m2f_teach.predict.rle`): load one with
`pycocotools.mask.decode(rle)` or `m2f_teach.predict.rle.decode(rle)`.
"""
from __future__ import annotations

import torch

from . import postprocess
from .preprocess import COCO_TEST_SCALE, batches, preprocess
from .tasks import TASKS, get_task


class Predictor:
    """A model, its class names and which are things, its test scale; call it on images."""

    def __init__(self, model, class_names=None, num_things: int | None = None,
                 scale: tuple[int, int] | None = COCO_TEST_SCALE, source: str = "model"):
        num_classes = model.config.num_classes
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names for a model with {num_classes} classes")
        self.model = model.eval()
        self.class_names = list(class_names) if class_names is not None else [f"class {i}" for i in range(num_classes)]
        self.num_things = num_things
        self.scale = scale
        self.source = source

    @classmethod
    def from_weights(cls, weights=None, device="cpu") -> "Predictor":
        """`weights=None`: the shipped checkpoint (the shapes' names, all five are things, images
        fitted into 128×128 as it was trained); else a file written by `convert` (its stored
        class names and thing/stuff split, mmdet's COCO test scale 1333×800)."""
        if weights is None:
            from ..pretrained import class_names, load_pretrained
            model = load_pretrained(device)
            H, W = model.config.image_size
            return cls(model, class_names(), num_things=len(class_names()), scale=(max(H, W), min(H, W)),
                       source="the shipped checkpoint")
        from ..convert.checkpoint import load_checkpoint, read_labels
        model = load_checkpoint(weights, map_location=device)
        labels = read_labels(weights)
        return cls(model, labels["class_names"], labels["num_things"], source=str(weights))

    @torch.no_grad()
    def run_model(self, images, names=None, to_rgb: bool = False):
        """Images → `[(cls_pred (Q, K), mask_pred (Q, Hm, Wm), meta)]`: the last prediction."""
        tensors, metas = preprocess(images, self.scale, names, to_rgb)
        weight = next(self.model.parameters())
        out: list = [None] * len(tensors)
        for idx in batches(tensors):
            batch = torch.stack([tensors[i] for i in idx]).to(weight.device, weight.dtype)  # (B, 3, H_pad, W_pad)
            cls_pred_list, mask_pred_list = self.model(batch)
            for j, i in enumerate(idx):
                out[i] = (cls_pred_list[-1][j].float().cpu(), mask_pred_list[-1][j].float().cpu(), metas[i])
        return out

    def __call__(self, images, task: str = "instance", score_threshold: float = 0.5,
                 object_mask_threshold: float = 0.8, overlap_threshold: float = 0.8,
                 names=None, to_rgb: bool = False) -> list[dict]:
        spec = get_task(task)              # what differs between tasks: `tasks.TASKS`
        if spec.needs_num_things and self.num_things is None:
            raise ValueError(f"task {task!r} needs to know which classes are stuff, and {self.source} "
                             f"does not say; give num_things (classes 0..N−1 are things, the rest "
                             f"stuff; --num-things N on the command line)")
        options = dict(score_threshold=score_threshold, object_mask_threshold=object_mask_threshold,
                       overlap_threshold=overlap_threshold)
        results = []
        for cls_pred, mask_pred, meta in self.run_model(images, names, to_rgb):
            mask_pred = postprocess.resize_mask_pred(mask_pred, meta.pad_shape, meta.img_shape,
                                                     meta.ori_shape)                # (Q, h, w)
            result = {"name": meta.name, "task": task, "size": meta.ori_shape}
            result.update(spec.results(cls_pred, mask_pred, self.class_names, self.num_things, options))
            results.append(result)
        return results


def predict(images, task: str = "instance", weights=None, **options) -> list[dict]:
    """`Predictor.from_weights(weights)(images, task, **options)`: see the module doc."""
    return Predictor.from_weights(weights)(images, task, **options)


def to_json(results: list[dict]) -> list[dict]:
    """Results with every mask as COCO RLE (`m2f_teach.predict.rle`, readable by pycocotools)."""
    return [{"image": r["name"], "task": r["task"], "height": r["size"][0], "width": r["size"][1],
             **TASKS[r["task"]].to_json(r)} for r in results]
