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
import struct
from pathlib import Path

import torch
from safetensors.torch import load_file, safe_open, save_file

from ..files import atomic_write
from ..model.config import M2FConfig
from ..model import Mask2Former
from ..model.backbones import HFBackbone, build_backbone
from .strict import ConversionError, load_strict

FORMAT = "m2f-teach/1"


def save_checkpoint(model: Mask2Former, path: str | os.PathLike, class_names=None,
                    num_things: int | None = None) -> Path:
    """Write `model`'s weights and config to `path` (.safetensors).

    `class_names` (K − 1 names) and `num_things` (classes `0..num_things−1` are things, the rest
    stuff, mmdetection's convention) travel in the metadata too, for `python -m m2f_teach predict`.
    """
    path = Path(path)
    metadata = checkpoint_metadata(model.config, class_names, num_things)
    if isinstance(model.backbone, HFBackbone):
        metadata["m2f_teach.hf_backbone"] = model.backbone.backbone_config_json()
    # safetensors refuses tensors that share memory: clone and make each contiguous
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def checkpoint_metadata(config, class_names=None, num_things: int | None = None) -> dict[str, str]:
    """The safetensors metadata `load_checkpoint` reads: format, config and the class names."""
    metadata = {"format": FORMAT, "m2f_teach.config": json.dumps(dataclasses.asdict(config))}
    return metadata | _label_metadata(config.num_classes, class_names, num_things)


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


def stored_config(values, source: str) -> M2FConfig:
    """The `M2FConfig` a file stores, every field checked by `M2FConfig`'s own rules; errors name `source`."""
    if not isinstance(values, dict):
        raise ConversionError(f"{source}: the stored config is {type(values).__name__}, expected a JSON object")
    try:
        return config_from_dict(values)
    except ConversionError as err:
        raise ConversionError(f"{source}: {err}") from None
    except (ValueError, TypeError) as err:
        raise ConversionError(f"{source}: the stored config is not valid: {err}") from None


def describe_file(path: Path) -> str:
    """What a file that is not a readable .safetensors looks like, in a few words."""
    size = path.stat().st_size
    if size == 0:
        return "it is empty (0 bytes)"
    with open(path, "rb") as fh:
        head = fh.read(16)
    if head.startswith(b"PK\x03\x04"):
        return "it is a zip archive, as torch.save writes (a .pth/.pt file), not a .safetensors file"
    if size >= 9 and head[8:9] == b"{" and struct.unpack("<Q", head[:8])[0] <= size - 8:
        return f"its contents do not match its header ({size} bytes; truncated or damaged)"
    if head[:1] == b"\x80" and size > 2:
        return "it is a Python pickle (an old torch.save .pth file), not a .safetensors file"
    if size < 8:
        return f"it is truncated ({size} bytes, shorter than a safetensors header)"
    (header_len,) = struct.unpack("<Q", head[:8])
    if header_len > size - 8:
        if head[8:9] != b"{":
            return f"it does not start like a .safetensors file (first bytes {head[:8]!r})"
        return f"it is truncated (its header alone claims {header_len} bytes, the file has {size})"
    return f"its contents do not match its header ({size} bytes; truncated or damaged)"


def check_device(device, what: str = "device"):
    """A `ValueError` naming `device` when this torch cannot put tensors there (before any file is read)."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"{what}={device!r}: not a device (expected 'cpu', 'cuda', 'cuda:N', ...)") from None
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{what}={device!r}: this torch sees no CUDA device; load on 'cpu'")
    if parsed.type == "cuda" and parsed.index is not None and parsed.index >= torch.cuda.device_count():
        raise ValueError(f"{what}={device!r}: this torch sees {torch.cuda.device_count()} CUDA device(s)")


def read_safetensors(path: str | os.PathLike, what: str = "weights", device: str = "cpu") -> dict[str, torch.Tensor]:
    """`safetensors.torch.load_file`, with errors that name the file and say what it looks like."""
    path = Path(path)
    check_device(device, what="map_location" if what == "checkpoint" else "device")
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path}: no such file")
    try:
        return load_file(str(path), device=device)
    except Exception as err:  # noqa: BLE001 - SafetensorError and friends: say what the file is
        raise ConversionError(f"{what} {path}: cannot read it as .safetensors: {describe_file(path)} "
                              f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})") from None


def read_metadata(path: Path, what: str = "checkpoint") -> tuple[dict, dict[str, tuple[int, ...]]]:
    """The metadata and the tensor shapes of a .safetensors file, without loading a tensor."""
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as err:  # noqa: BLE001
        raise ConversionError(f"{what} {path}: cannot read it as .safetensors: {describe_file(path)} "
                              f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})") from None
    return metadata, shapes


def expected_shapes(config: M2FConfig) -> dict[str, tuple[int, ...]]:
    """Every state-dict entry's shape at `config`, from a weightless model on `meta`."""
    with torch.device("meta"):
        model = Mask2Former(config)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def load_checkpoint(path: str | os.PathLike, map_location: str = "cpu") -> Mask2Former:
    """A `Mask2Former` (eval mode) from a file written by `save_checkpoint`.

    Before anything is built: the stored config is checked field by field (`M2FConfig`'s
    rules) and every tensor's shape against it, so a file that claims a huge model fails at once.
    """
    path = Path(path)
    check_device(map_location, "map_location")
    if not path.is_file():
        hint = ("; it is a directory" if path.is_dir() else
                f"; make one with `python -m m2f_teach convert --from hf|mmdet SRC --output {path.name}`")
        raise FileNotFoundError(f"no checkpoint at {path}{hint}")
    metadata, shapes = read_metadata(path)
    if metadata.get("format") != FORMAT:
        raise ConversionError(f"{path} is not an m2f-teach checkpoint (metadata format "
                              f"{metadata.get('format')!r}, expected {FORMAT!r}); convert it first with "
                              f"`python -m m2f_teach convert`")
    try:
        values = json.loads(metadata.get("m2f_teach.config", ""))
    except json.JSONDecodeError as err:
        raise ConversionError(f"{path}: its m2f_teach.config metadata is not valid JSON ({err})") from None
    config = stored_config(values, str(path))
    if "m2f_teach.hf_backbone" not in metadata:
        want = expected_shapes(config)
        missing = [k for k in want if k not in shapes]
        unexpected = [k for k in shapes if k not in want]
        mismatched = [(k, shapes[k], want[k]) for k in want if k in shapes and shapes[k] != want[k]]
        if missing or unexpected or mismatched:
            from .strict import key_report
            raise ConversionError(key_report(missing, unexpected, mismatched, f"{path} (against its stored config)"))
    hf_backbone = metadata.get("m2f_teach.hf_backbone")
    backbone = hf_backbone_from_metadata(hf_backbone, path, config) if hf_backbone is not None else None
    model = Mask2Former(config, backbone=backbone)
    load_strict(model, read_safetensors(path, "checkpoint", device=map_location), str(path))
    return model.eval()


def hf_backbone_from_metadata(text: str, path: Path, config: M2FConfig) -> HFBackbone:
    """The HF backbone a checkpoint's `m2f_teach.hf_backbone` metadata describes; errors name `path`
    and the model type (not the hundreds of types transformers knows)."""
    try:
        values = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConversionError(f"{path}: its m2f_teach.hf_backbone metadata is not valid JSON ({err})") from None
    model_type = values.get("model_type") if isinstance(values, dict) else None
    try:
        import transformers
        from transformers import CONFIG_MAPPING
    except ImportError:
        raise ImportError(f"{path} uses a HF transformers backbone ({model_type}): pip install transformers") from None
    if model_type not in CONFIG_MAPPING:
        raise ConversionError(f"{path}: its HF backbone has model_type {model_type!r}, which transformers "
                              f"{transformers.__version__} does not know (a newer transformers may)")
    try:
        return build_backbone(config, text)
    except (ValueError, TypeError, KeyError) as err:
        raise ConversionError(f"{path}: cannot rebuild its {model_type} backbone from the stored HF config "
                              f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})") from None


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors from a `.safetensors` file or a torch file (`torch.load(weights_only=True)`).

    A training checkpoint `{"state_dict": ..., "meta": ...}` (mmdetection) gives its
    `state_dict`; a `{"model": ...}` one (detectron2-style) gives its `model`.
    """
    return read_checkpoint(path)[0]


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], str | None]:
    """`(state_dict, meta_cfg)`: as `read_state_dict`, plus the config text mmengine stores in an
    mmdetection checkpoint's `meta['cfg']` (mmdet 2.x: `meta['config']`; None when there is none)."""
    path = Path(path)
    if not path.is_file():
        if path.is_dir():
            raise IsADirectoryError(f"{path}: is a directory, expected a weights file (.pth or .safetensors)")
        raise FileNotFoundError(f"{path}: no such file (expected a weights file, .pth or .safetensors)")
    if path.suffix == ".safetensors":
        return read_safetensors(path, "weights"), None
    obj = torch_load_tensors(path)
    meta_cfg = None
    meta = obj.get("meta") if isinstance(obj, dict) else None
    for key in ("cfg", "config"):       # mmengine (mmdet 3.x) writes meta['cfg'], mmdet 2.x meta['config']
        if isinstance(meta, dict) and isinstance(meta.get(key), str) and meta_cfg is None:
            meta_cfg = meta[key]
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ConversionError(f"{path}: does not hold a state dict (a dict of tensors)")
    return dict(obj), meta_cfg


def torch_load_tensors(path: Path):
    """`torch.load(weights_only=True)`: tensors and plain containers only, nothing executed."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(16)
    if size == 0:
        raise ConversionError(f"{path}: the file is empty (0 bytes)")
    if not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):
        looks = (" (it looks like a .safetensors file: give it a .safetensors name)"
                 if size >= 8 and head[8:9] == b"{" else "")
        raise ConversionError(f"{path}: not a torch.save file (neither a zip archive nor a pickle){looks}")
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle_errors() as err:
        raise ConversionError(
            f"{path}: torch.load(weights_only=True) refuses it: it holds Python objects beyond tensors "
            f"({str(err).splitlines()[0]}). m2f-teach never unpickles arbitrary objects; re-save only "
            f"the tensors where it was written: torch.save(torch.load(path)['state_dict'], 'weights.pth')") from None
    except Exception as err:  # noqa: BLE001 - a damaged archive: name the file
        raise ConversionError(f"{path}: cannot read it with torch.load: truncated or damaged "
                              f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})") from None


def pickle_errors():
    import pickle
    return (pickle.UnpicklingError,)
