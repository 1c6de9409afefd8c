"""Converted checkpoints: one `.safetensors` file holding the weights and the `M2FConfig`.

    save_checkpoint(model, "m2f.safetensors")
    model = load_checkpoint("m2f.safetensors")       # a ready Mask2Former, eval mode

The config travels in the file's metadata (`m2f_teach.config`, JSON), so a checkpoint is
self-describing; a model with a HF backbone (Swin) also stores that backbone's HF config
(`m2f_teach.hf_backbone`) and needs transformers to load. Source checkpoints are read with
`safetensors` or `torch.load(weights_only=True)` only: nothing in them is executed.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, safe_open, save_file

from ..model.config import M2FConfig
from ..model import Mask2Former
from .hf_backbone import HFBackbone
from .strict import ConversionError, load_strict

FORMAT = "m2f-teach/1"


def save_checkpoint(model: Mask2Former, path: str | os.PathLike, class_names=None,
                    num_things: int | None = None) -> Path:
    """Write `model`'s weights and config to `path` (.safetensors).

    `class_names` (K − 1 names) and `num_things` (classes `0..num_things−1` are things, the rest
    stuff, mmdetection's convention) travel in the metadata too, for `python -m m2f_teach predict`.
    """
    path = Path(path)
    metadata = {"format": FORMAT, "m2f_teach.config": json.dumps(dataclasses.asdict(model.config))}
    metadata.update(_label_metadata(model.config.num_classes, class_names, num_things))
    if isinstance(model.backbone, HFBackbone):
        metadata["m2f_teach.hf_backbone"] = model.backbone.backbone_config_json()
    # safetensors refuses tensors that share memory: clone and make each contiguous
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=metadata)
    return path


def _label_metadata(num_classes: int, class_names, num_things) -> dict[str, str]:
    metadata = {}
    if class_names is not None:
        class_names = [str(name) for name in class_names]
        if len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names for a model with {num_classes} classes")
        metadata["m2f_teach.class_names"] = json.dumps(class_names)
    if num_things is not None:
        if not 0 <= int(num_things) <= num_classes:
            raise ValueError(f"num_things={num_things} must be between 0 and num_classes={num_classes}")
        metadata["m2f_teach.num_things"] = str(int(num_things))
    return metadata


def read_labels(path: str | os.PathLike) -> dict:
    """`{"class_names": [...] or None, "num_things": int or None}` stored in a checkpoint."""
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata() or {}
    names = metadata.get("m2f_teach.class_names")
    num_things = metadata.get("m2f_teach.num_things")
    return {"class_names": json.loads(names) if names else None,
            "num_things": int(num_things) if num_things is not None else None}


def config_from_dict(values: dict) -> M2FConfig:
    names = {f.name for f in dataclasses.fields(M2FConfig)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConversionError(f"checkpoint config has fields this m2f-teach does not know: {unknown}")
    return M2FConfig(**values)


def load_checkpoint(path: str | os.PathLike, map_location: str = "cpu") -> Mask2Former:
    """A `Mask2Former` (eval mode) from a file written by `save_checkpoint`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; make one with "
                                f"`python -m m2f_teach convert --from hf|mmdet SRC --output {path.name}`")
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata() or {}
    if metadata.get("format") != FORMAT:
        raise ConversionError(f"{path} is not an m2f-teach checkpoint (metadata format "
                              f"{metadata.get('format')!r}, expected {FORMAT!r}); convert it first with "
                              f"`python -m m2f_teach convert`")
    config = config_from_dict(json.loads(metadata["m2f_teach.config"]))
    model = Mask2Former(config)
    if "m2f_teach.hf_backbone" in metadata:
        model.backbone = HFBackbone.from_config_json(metadata["m2f_teach.hf_backbone"])
    load_strict(model, load_file(str(path), device=map_location), str(path))
    return model.eval()


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors from a `.safetensors` file or a torch file (`torch.load(weights_only=True)`).

    A training checkpoint `{"state_dict": ..., "meta": ...}` (mmdetection) gives its
    `state_dict`; a `{"model": ...}` one (detectron2-style) gives its `model`.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        return load_file(str(path))
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:
        raise ConversionError(
            f"cannot read {path} with torch.load(weights_only=True): {err}\n"
            "m2f-teach never unpickles arbitrary objects. Re-save only the tensors, e.g. in the "
            "environment that wrote it: torch.save(torch.load(path)['state_dict'], 'weights.pth')") from err
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ConversionError(f"{path} does not hold a state dict (a dict of tensors)")
    return dict(obj)
