"""The tasks `predict` knows, one entry each in `TASKS`: a new task is one `Task(...)` here.

    TASKS["panoptic"].results(cls_pred, masks, class_names, num_things, options)

A `Task` holds everything that differs between tasks: how one image's last prediction becomes
its result (`results`, through `postprocess`), the list a result holds (`listed`: what the
command line counts and prints), its json form (`to_json`, masks as COCO RLE), the regions an
overlay tints (`regions`), and whether it must know which classes are stuff (`needs_num_things`).
`api.Predictor`, `api.to_json`, `overlay.draw` and `cli.py` read the table and nothing else.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from . import postprocess


@dataclass(frozen=True)
class Task:
    """One task: see the module doc. `results(cls_pred (Q, K), masks (postprocess.MaskLogits), class_names,
    num_things, options)` returns the result's own fields; `to_json(result)` and
    `regions(result)` read a finished result (`regions`: `[(mask (h, w) bool, caption)]`)."""
    listed: str
    results: Callable[..., dict]
    to_json: Callable[[dict], dict]
    regions: Callable[[dict], list]
    needs_num_things: bool = False


def first_of_each_segment(segments: list[dict]) -> list[dict]:
    """A merged stuff segment lists every query it took: keep one entry per segment id."""
    first = {}
    for s in segments:
        first.setdefault(s["id"], s)
    return list(first.values())


# ---- instance: a list of masks, best first ----------------------------------------------------------
def instance_results(cls_pred, masks, class_names, num_things, options) -> dict:
    found = postprocess.instance_postprocess(cls_pred, masks, num_things=num_things,
                                             score_threshold=options.get("score_threshold", 0.5))
    return {"instances": [
        {"label": int(label), "name": class_names[label], "score": float(score),
         "box": tuple(box.tolist()), "mask": mask}
        for label, score, box, mask in zip(found["labels"], found["scores"], found["boxes"], found["masks"])]}


def instance_json(result: dict) -> dict:
    from .rle import encode
    return {"instances": [{"label": i["label"], "name": i["name"], "score": round(i["score"], 6),
                           "box": list(i["box"]), "mask": encode(i["mask"].numpy())}
                          for i in result["instances"]]}


def instance_regions(result: dict) -> list:
    return [(i["mask"].numpy(), f"{i['name']} {i['score']:.2f}") for i in result["instances"]]


# ---- semantic: a class for every pixel --------------------------------------------------------------
def semantic_results(cls_pred, masks, class_names, num_things, options) -> dict:
    segmentation = postprocess.semantic_postprocess(cls_pred, masks, options.get("min_probability", 0.0)
                                                    )["segmentation"]          # −1: below min_probability
    return {"segmentation": segmentation,
            "classes": [{"label": int(c), "name": class_names[int(c)]} for c in segmentation.unique() if c >= 0]}


def semantic_json(result: dict) -> dict:
    from .rle import encode
    seg = result["segmentation"].numpy()
    return {"classes": [dict(c, mask=encode(seg == c["label"])) for c in result["classes"]]}


def semantic_regions(result: dict) -> list:
    seg = result["segmentation"].numpy()
    return [(seg == c["label"], c["name"]) for c in result["classes"]]


# ---- panoptic: segments of things and stuff ---------------------------------------------------------
def panoptic_results(cls_pred, masks, class_names, num_things, options) -> dict:
    found = postprocess.panoptic_postprocess(cls_pred, masks, options.get("object_mask_threshold", 0.8),
                                             options.get("overlap_threshold", 0.8), num_things)
    return {"segmentation": found["segmentation"],
            "segments": [dict(s, name=class_names[s["label"]]) for s in found["segments"]]}


def panoptic_json(result: dict) -> dict:
    from .rle import encode
    seg = result["segmentation"].numpy()
    return {"segments": [{"id": s["id"], "label": s["label"], "name": s["name"],
                          "score": round(s["score"], 6), "is_thing": s["is_thing"],
                          "mask": encode(seg == s["id"])} for s in first_of_each_segment(result["segments"])]}


def panoptic_regions(result: dict) -> list:
    seg = result["segmentation"].numpy()
    return [(seg == s["id"], f"{s['name']} {s['score']:.2f}") for s in first_of_each_segment(result["segments"])]


TASKS = {
    "instance": Task("instances", instance_results, instance_json, instance_regions),
    "semantic": Task("classes", semantic_results, semantic_json, semantic_regions),
    "panoptic": Task("segments", panoptic_results, panoptic_json, panoptic_regions, needs_num_things=True),
}


def get_task(name: str) -> Task:
    """`TASKS[name]`, or a `ValueError` that lists the tasks."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; expected one of {', '.join(TASKS)}")
    return TASKS[name]
