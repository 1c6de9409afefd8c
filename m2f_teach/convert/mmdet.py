"""From mmdetection's Mask2Former weights to our `Mask2Former`.

mmdetection 3.x: our parameter names *are* mmdet 3.x's (`backbone.layer1.0.conv1`,
`panoptic_head.pixel_decoder.input_convs.0.conv`, `...encoder.layers.0.self_attn.value_proj`,
`...transformer_decoder.layers.0.cross_attn.attn.in_proj_weight`, ...), so a 3.x state dict
loads as it is, checked key by key.

mmdetection 2.x (mmcv 1.x `BaseTransformerLayer`) numbers the attentions and FFNs of a layer
in the order of its `operation_order`:

| 2.x                                                        | 3.x / ours                       |
|------------------------------------------------------------|----------------------------------|
| `pixel_decoder.encoder.layers.{n}.attentions.0.*`          | `...layers.{n}.self_attn.*`      |
| `pixel_decoder.encoder.layers.{n}.ffns.0.*`                | `...layers.{n}.ffn.*`            |
| `transformer_decoder.layers.{n}.attentions.0.attn.*` (cross_attn first) | `...cross_attn.attn.*` |
| `transformer_decoder.layers.{n}.attentions.1.attn.*`       | `...self_attn.attn.*`            |
| `transformer_decoder.layers.{n}.ffns.0.*`                  | `...ffn.*`                       |

The number of heads, levels and points cannot be read off the weights (a `Linear(C → nH·L·P·2)`
looks the same for 8×3×4 and 4×3×8): they come from the mmdet config when given, else the
seed's 8, 3, 4. Everything else is read off the shapes.
"""
from __future__ import annotations

import re

import torch

from ..model.config import M2FConfig
from ..model import Mask2Former
from .strict import ConversionError, load_strict

MMDET2_RULES = [
    (r"(panoptic_head\.pixel_decoder\.encoder\.layers\.\d+)\.attentions\.0\.", r"\1.self_attn."),
    (r"(panoptic_head\.pixel_decoder\.encoder\.layers\.\d+)\.ffns\.0\.", r"\1.ffn."),
    (r"(panoptic_head\.transformer_decoder\.layers\.\d+)\.attentions\.0\.", r"\1.cross_attn."),
    (r"(panoptic_head\.transformer_decoder\.layers\.\d+)\.attentions\.1\.", r"\1.self_attn."),
    (r"(panoptic_head\.transformer_decoder\.layers\.\d+)\.ffns\.0\.", r"\1.ffn."),
]


def is_mmdet2(state_dict) -> bool:
    return any(".attentions.0." in k or ".ffns.0." in k for k in state_dict)


def state_dict_from_mmdet(state_dict) -> dict[str, torch.Tensor]:
    """An mmdet 3.x state dict as it is; a 2.x one renamed to the 3.x layout."""
    state_dict = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state_dict.items()}
    if not is_mmdet2(state_dict):
        return dict(state_dict)
    rules = [(re.compile(p), r) for p, r in MMDET2_RULES]
    out = {}
    for k, v in state_dict.items():
        for pattern, template in rules:
            k = pattern.sub(template, k)
        out[k] = v
    return out


def _count(state_dict, pattern) -> int:
    found = {int(m.group(1)) for k in state_dict for m in [re.match(pattern, k)] if m}
    return max(found) + 1 if found else 0


def _mmdet_model_cfg(config):
    """The `model` section of an mmdet config (path, mmengine `Config` or dict), or None."""
    if config is None:
        return None
    if isinstance(config, (str, bytes)) or hasattr(config, "__fspath__"):
        from mmengine.config import Config  # only needed for a config *file*
        config = Config.fromfile(str(config))
    model = config.get("model", config) if hasattr(config, "get") else None
    if model is None or "panoptic_head" not in model:
        raise ConversionError("expected an mmdet Mask2Former config (with model.panoptic_head), "
                              f"got {type(config).__name__}")
    return model


def config_from_mmdet(state_dict, config=None, image_size=(1024, 1024), batch_size: int = 2) -> M2FConfig:
    """`M2FConfig` read off the weights' shapes; heads, levels and points from `config`
    (an mmdet config: path, `Config` or dict) or else the seed's 8, 3, 4."""
    sd = state_dict_from_mmdet(state_dict)
    num_heads, num_levels, num_points = 8, 3, 4
    model_cfg = _mmdet_model_cfg(config)
    if model_cfg is not None:
        head = model_cfg["panoptic_head"]
        attn = head["pixel_decoder"]["encoder"]["layer_cfg"]["self_attn_cfg"]
        num_heads, num_levels, num_points = attn["num_heads"], attn["num_levels"], attn["num_points"]
        decoder_heads = head["transformer_decoder"]["layer_cfg"]["cross_attn_cfg"]["num_heads"]
        if decoder_heads != num_heads:
            raise ConversionError(f"decoder heads ({decoder_heads}) != encoder heads ({num_heads}): "
                                  "M2FConfig has one num_heads")
        backbone_type = model_cfg.get("backbone", {}).get("type", "ResNet")
        if backbone_type != "ResNet":
            raise ConversionError(f"mmdet backbone {backbone_type!r}: only ResNet maps onto m2f-teach's "
                                  "backbone (use a HF Swin checkpoint with `--from hf` instead)")
    need = "panoptic_head.query_feat.weight"
    if need not in sd or "backbone.conv1.weight" not in sd:
        raise ConversionError("not an mmdet Mask2Former (ResNet) state dict: no "
                              f"{need!r} or 'backbone.conv1.weight' among {len(sd)} keys, e.g. {list(sd)[:5]}")
    stages = []
    for i in range(1, 10):
        blocks = _count(sd, rf"backbone\.layer{i}\.(\d+)\.conv1\.weight")
        if not blocks:
            break
        stages.append((blocks, sd[f"backbone.layer{i}.0.conv1.weight"].shape[0]))
    pd, td = "panoptic_head.pixel_decoder", "panoptic_head.transformer_decoder"
    Q, C = sd[need].shape
    return M2FConfig(
        batch_size=batch_size, image_size=tuple(image_size),
        in_channels=sd["backbone.conv1.weight"].shape[1], stem_channels=sd["backbone.conv1.weight"].shape[0],
        backbone_stages=tuple(stages), feat_channels=C, num_heads=num_heads, num_levels=num_levels,
        num_points=num_points,
        num_encoder_layers=_count(sd, rf"{pd}\.encoder\.layers\.(\d+)\."),
        encoder_ffn_channels=sd[f"{pd}.encoder.layers.0.ffn.layers.0.0.weight"].shape[0],
        num_groups=32 if model_cfg is None else model_cfg["panoptic_head"]["pixel_decoder"]["norm_cfg"]["num_groups"],
        num_queries=Q, num_decoder_layers=_count(sd, rf"{td}\.layers\.(\d+)\."),
        decoder_ffn_channels=sd[f"{td}.layers.0.ffn.layers.0.0.weight"].shape[0],
        num_classes=sd["panoptic_head.cls_embed.weight"].shape[0] - 1,
        out_channels=sd[f"{pd}.mask_feature.weight"].shape[0])


def from_mmdet(state_dict, config=None, image_size=(1024, 1024)) -> Mask2Former:
    """A ready `Mask2Former` (eval mode) from mmdet 3.x or 2.x Mask2Former weights.

    `config`: an `M2FConfig` (used as it is), an mmdet config (path, `Config` or dict; heads,
    levels and points are read from it) or None (sizes from the weights, 8 heads, 3 levels, 4
    points). Keys that do not fit raise `ConversionError` listing them by name.
    """
    if isinstance(config, M2FConfig):
        m2f_config = config
    else:
        m2f_config = config_from_mmdet(state_dict, config, image_size=image_size)
    model = Mask2Former(m2f_config)
    load_strict(model, state_dict_from_mmdet(state_dict), "mmdet Mask2Former state dict")
    return model.eval()
