"""The shipped checkpoint: a small Mask2Former trained on synthetic shapes, no download needed.

    model = load_pretrained()              # eval mode, CPU
    cls_pred_list, mask_pred_list = model(images)   # images (B, 3, 128, 128), normalised

`shapes_config()` is the preset it was trained at: the seed's structure (3 levels, 8 heads,
4 points, 6 encoder + 9 decoder layers) at `M2FConfig.small()`'s width, 128×128 images,
20 queries, the 5 shape classes (K = 6), and BatchNorm trained (not frozen) since it starts
from scratch. `weights/shapes_small.json` holds the command that trained it, its time and its
held-out scores.
"""
from __future__ import annotations

import json
from importlib import resources

import torch

from .config import M2FConfig
from .data.shapes import CLASS_NAMES
from .model import Mask2Former

WEIGHTS_NAME = "shapes_small"
TRAIN_SEED, VAL_SEED, TEST_SEED = 0, 10_000, 20_000   # data seeds: training, validation, held-out test


def shapes_config(**changes) -> M2FConfig:
    """The preset of the shipped checkpoint (see the module docstring)."""
    base = dict(num_classes=len(CLASS_NAMES), frozen_backbone_norm=False)
    base.update(changes)
    return M2FConfig.small(**base)


def class_names() -> tuple[str, ...]:
    """Names of classes 0..K−2; class K−1 is no-object."""
    return CLASS_NAMES


def _weights_file(suffix: str):
    return resources.files("m2f_teach").joinpath("weights", WEIGHTS_NAME + suffix)


def checkpoint_info() -> dict:
    """The json beside the checkpoint: config, command, training time, held-out metrics."""
    path = _weights_file(".json")
    if not path.is_file():
        raise FileNotFoundError(_missing_message(".json"))
    return json.loads(path.read_text())


def _missing_message(suffix):
    return (f"the shipped checkpoint m2f_teach/weights/{WEIGHTS_NAME}{suffix} is missing from this "
            f"installation; train one with `python -m m2f_teach train --out "
            f"m2f_teach/weights/{WEIGHTS_NAME}.safetensors` (see the README) or reinstall the package")


def load_pretrained(device="cpu") -> Mask2Former:
    """`Mask2Former(shapes_config())` with the shipped weights, in eval mode on `device`."""
    from safetensors.torch import load_file

    path = _weights_file(".safetensors")
    if not path.is_file():
        raise FileNotFoundError(_missing_message(".safetensors"))
    model = Mask2Former(shapes_config())
    with resources.as_file(path) as file:
        state_dict = load_file(str(file), device=str(device))
    model.load_state_dict(state_dict)
    return model.to(device).eval()
