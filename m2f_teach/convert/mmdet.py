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

Heads, points and GroupNorm groups cannot be read off the weights (a `Linear(C → nH·L·P·2)`
looks the same for 8×3×4 and 4×3×8): they come from the mmdet config, read as data and never
executed (`m2f_teach.convert.mmdet_config`): `--config FILE.py`, or the `meta['cfg']` text
that mmengine stores in the checkpoint. Without either, `num_heads`, `num_points` and
`num_groups` must be given (the error lists the candidates). Everything else is read off the
shapes. What the model does not compute the way the config asks (a caffe-style backbone,
dilations, other strides, another positional-encoding temperature, scale or offset, decoder
self-attention heads unlike its cross-attention heads, ...) is refused, by name.
"""
from __future__ import annotations

import re

import torch

import math

from ..model.config import M2FConfig
from ..model import Mask2Former
from .mmdet_config import load_mmdet_config, load_meta_cfg
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


def _mmdet_model_cfg(config, trust_config: bool = False):
    """The `model` section of an mmdet config (a `.py` path read as literals, a `Config` or a
    dict) as an mmengine `ConfigDict` when mmengine is installed (to build mmdetection's own
    model from it), else a dict; None for None."""
    if config is None:
        return None
    model = load_mmdet_config(config, trust=trust_config)
    try:
        from mmengine.config import ConfigDict
    except ImportError:
        return model
    return ConfigDict(model)


def _at_path(cfg, path, default=None):
    """`cfg['a']['b']` for path 'a.b', or `default` where a key is absent."""
    for key in path.split("."):
        if not isinstance(cfg, dict) or key not in cfg:
            return default
        cfg = cfg[key]
    return cfg


def mmdet2_head_cfg(head: dict) -> dict:
    """A 2.x head config (mmcv 1.x `transformerlayers=dict(attn_cfgs=..., ffn_cfgs=...)`) in the
    3.x layout (`layer_cfg=dict(self_attn_cfg=..., cross_attn_cfg=..., ffn_cfg=...)`)."""
    def layer_cfg(section, attention_names):
        layers = section.get("transformerlayers") if isinstance(section, dict) else None
        if not isinstance(layers, dict):
            return section
        attn = layers.get("attn_cfgs", {})
        attn = attn if isinstance(attn, list) else [attn] * len(attention_names)
        ffn = layers.get("ffn_cfgs", {})
        ffn = ffn[0] if isinstance(ffn, list) else ffn
        ffn = dict(ffn, act_cfg=ffn.get("act_cfg", layers.get("act_cfg", {"type": "ReLU"})))
        return dict(section, layer_cfg=dict(zip(attention_names, attn), ffn_cfg=ffn))

    head = dict(head)
    if isinstance(head.get("pixel_decoder"), dict) and isinstance(head["pixel_decoder"].get("encoder"), dict):
        head["pixel_decoder"] = dict(head["pixel_decoder"],
                                     encoder=layer_cfg(head["pixel_decoder"]["encoder"], ["self_attn_cfg"]))
    if isinstance(head.get("transformer_decoder"), dict):
        # 2.x operation_order ('cross_attn', 'norm', 'self_attn', ...): attn_cfgs[0] is the cross-attention
        head["transformer_decoder"] = layer_cfg(head["transformer_decoder"], ["cross_attn_cfg", "self_attn_cfg"])
    return head


def choices_from_mmdet_cfg(model_cfg: dict, source: str) -> dict:
    """Heads, levels, points, groups and temperature from an mmdet `model` config section
    (mmdet's defaults where a key is absent); `ConversionError` listing every option that
    m2f-teach does not compute."""
    head = mmdet2_head_cfg(model_cfg["panoptic_head"])
    problems = []

    def need(ok, what):
        if not ok:
            problems.append(what)

    backbone = model_cfg.get("backbone", {}) or {}
    backbone_type = backbone.get("type", "ResNet")
    if backbone_type != "ResNet":
        raise ConversionError(f"{source}: mmdet backbone {backbone_type!r}: only ResNet maps onto m2f-teach's "
                              "backbone (use a HF Swin checkpoint with `--from hf` instead)")
    need(backbone.get("style", "pytorch") == "pytorch",
         f"backbone style={backbone.get('style')!r} (only 'pytorch': the stride in the 3×3 conv)")
    num_stages = backbone.get("num_stages", 4)
    need(tuple(backbone.get("strides", (1, 2, 2, 2)[:num_stages])) == (1, 2, 2, 2)[:num_stages],
         f"backbone strides={backbone.get('strides')!r} (only (1, 2, 2, 2))")
    need(tuple(backbone.get("dilations", (1,) * num_stages)) == (1,) * num_stages,
         f"backbone dilations={backbone.get('dilations')!r} (only 1s)")
    need(tuple(backbone.get("out_indices", tuple(range(num_stages)))) == tuple(range(num_stages)),
         f"backbone out_indices={backbone.get('out_indices')!r} (every stage)")
    for key in ("deep_stem", "avg_down"):
        need(not backbone.get(key, False), f"backbone {key}=True")
    for key in ("dcn", "plugins"):
        need(backbone.get(key) is None, f"backbone {key}={backbone.get(key)!r}")
    need(_at_path(backbone, "norm_cfg.type", "BN") in ("BN", "SyncBN"),
         f"backbone norm_cfg type={_at_path(backbone, 'norm_cfg.type')!r} (BatchNorm only)")

    pixel_decoder = head.get("pixel_decoder", {})
    need(pixel_decoder.get("type", "MSDeformAttnPixelDecoder") == "MSDeformAttnPixelDecoder",
         f"pixel_decoder type={pixel_decoder.get('type')!r}")
    need(list(pixel_decoder.get("strides", [4, 8, 16, 32])) == [4, 8, 16, 32],
         f"pixel_decoder strides={pixel_decoder.get('strides')!r} (only [4, 8, 16, 32])")
    need(list(head.get("strides", [4, 8, 16, 32])) == [4, 8, 16, 32],
         f"panoptic_head strides={head.get('strides')!r} (only [4, 8, 16, 32])")
    need(_at_path(pixel_decoder, "norm_cfg.type", "GN") == "GN",
         f"pixel_decoder norm_cfg type={_at_path(pixel_decoder, 'norm_cfg.type')!r} (GroupNorm only)")
    need(_at_path(pixel_decoder, "act_cfg.type", "ReLU") == "ReLU",
         f"pixel_decoder act_cfg type={_at_path(pixel_decoder, 'act_cfg.type')!r} (ReLU only)")
    need(not head.get("enforce_decoder_input_project", False), "enforce_decoder_input_project=True")
    attn = _at_path(pixel_decoder, "encoder.layer_cfg.self_attn_cfg", {})
    num_heads, num_levels, num_points = (attn.get("num_heads", 8), attn.get("num_levels", 4),
                                         attn.get("num_points", 4))
    need(attn.get("value_proj_ratio", 1.0) == 1.0, f"encoder value_proj_ratio={attn.get('value_proj_ratio')!r}")
    decoder_layer = _at_path(head, "transformer_decoder.layer_cfg", {})
    cross_heads = _at_path(decoder_layer, "cross_attn_cfg.num_heads", 8)
    self_heads = _at_path(decoder_layer, "self_attn_cfg.num_heads", 8)
    need(self_heads == cross_heads, f"decoder self-attention num_heads={self_heads} != cross-attention "
                                    f"num_heads={cross_heads} (one num_heads)")
    need(cross_heads == num_heads, f"decoder num_heads={cross_heads} != encoder num_heads={num_heads} "
                                   "(M2FConfig has one num_heads)")
    feat_levels = head.get("num_transformer_feat_level", 3)
    num_outs = pixel_decoder.get("num_outs", 3)
    need(feat_levels == num_levels == num_outs,
         f"encoder num_levels={num_levels}, num_transformer_feat_level={feat_levels}, "
         f"pixel_decoder num_outs={num_outs} (must be equal)")
    for where, ffn in (("encoder", _at_path(pixel_decoder, "encoder.layer_cfg.ffn_cfg", {})),
                       ("decoder", decoder_layer.get("ffn_cfg", {}))):
        need(_at_path(ffn, "act_cfg.type", "ReLU") == "ReLU", f"{where} ffn act_cfg={ffn.get('act_cfg')!r} (ReLU only)")
        need(ffn.get("num_fcs", 2) == 2, f"{where} ffn num_fcs={ffn.get('num_fcs')!r} (2 only)")
    temperatures = []
    for where, pe in (("pixel_decoder.positional_encoding", pixel_decoder.get("positional_encoding", {})),
                      ("panoptic_head.positional_encoding", head.get("positional_encoding", {}))):
        need(pe.get("normalize", False) is True, f"{where} normalize={pe.get('normalize', False)!r} (True only)")
        need(math.isclose(pe.get("scale", 2 * math.pi), 2 * math.pi),
             f"{where} scale={pe.get('scale')!r} (2π only)")
        need(pe.get("offset", 0.0) == 0.0, f"{where} offset={pe.get('offset')!r} (0 only)")
        need(pe.get("eps", 1e-6) == 1e-6, f"{where} eps={pe.get('eps')!r} (1e-6 only)")
        temperatures.append(pe.get("temperature", 10000))
    need(temperatures[0] == temperatures[1],
         f"positional-encoding temperatures differ ({temperatures[0]} in the pixel decoder, "
         f"{temperatures[1]} in the head; M2FConfig has one temperature)")
    num_groups = _at_path(pixel_decoder, "norm_cfg.num_groups", 32)
    if problems:
        raise ConversionError(f"{source} asks for what m2f-teach does not compute: " + "; ".join(problems))
    return dict(num_heads=num_heads, num_levels=num_levels, num_points=num_points, num_groups=num_groups,
                temperature=float(temperatures[0]), frozen_backbone_norm=bool(backbone.get("norm_eval", True)))


def _divisors(n):
    return [d for d in range(1, n + 1) if n % d == 0]


def choices_from_weights(sd, num_heads=None, num_points=None, num_groups=None, source="the weights") -> dict:
    """Levels from the weights; heads, points and groups from the caller, checked against the
    weights, and refused with the candidates listed where the weights cannot decide."""
    pd = "panoptic_head.pixel_decoder"
    num_levels = sd[f"{pd}.level_encoding.weight"].shape[0] if f"{pd}.level_encoding.weight" in sd else 3
    C = sd["panoptic_head.query_feat.weight"].shape[1]
    key = f"{pd}.encoder.layers.0.self_attn.attention_weights.weight"
    if key not in sd:
        raise ConversionError(f"{source}: no {key!r}: cannot read heads × levels × points")
    n = sd[key].shape[0]
    heads_points = n // num_levels
    candidates = [(h, heads_points // h) for h in _divisors(heads_points) if C % h == 0]
    chosen = [(h, p) for h, p in candidates
              if (num_heads is None or h == num_heads) and (num_points is None or p == num_points)]
    flags = "give --num-heads and --num-points (API: num_heads=, num_points=), or the mmdet --config"
    if not chosen:
        raise ConversionError(f"{source}: num_heads={num_heads}, num_points={num_points} do not fit the weights "
                              f"(nH·P = {heads_points} with L = {num_levels}, C = {C}); candidates nH×P: "
                              + ", ".join(f"{h}×{p}" for h, p in candidates))
    if len(chosen) > 1:
        raise ConversionError(f"{source}: the weights give nH·L·P = {n} with L = {num_levels}, but not how it "
                              f"splits into heads × points; candidates nH×P: "
                              + ", ".join(f"{h}×{p}" for h, p in chosen) + f"; {flags}")
    if num_groups is None:
        raise ConversionError(f"{source}: the GroupNorm groups of the pixel decoder are not in the weights "
                              f"(C = {C}; candidates: " + ", ".join(map(str, _divisors(C)))
                              + "; mmdet's default 32): give --num-groups (API: num_groups=), or the mmdet --config")
    (h, p), = chosen
    return dict(num_heads=h, num_levels=num_levels, num_points=p, num_groups=num_groups)


def config_from_mmdet(state_dict, config=None, image_size=(1024, 1024), batch_size: int = 2, *,
                      meta_cfg: str | None = None, trust_config: bool = False, num_heads: int | None = None,
                      num_points: int | None = None, num_groups: int | None = None) -> M2FConfig:
    """`M2FConfig` read off the weights' shapes; heads, levels, points, groups and temperature from
    the mmdet config: `config` (a `.py` path, read as literals unless `trust_config`; a dict or an
    mmengine `Config`), else `meta_cfg` (the checkpoint's `meta['cfg']` text), else the
    `num_heads`, `num_points`, `num_groups` arguments (required where the weights cannot decide)."""
    sd = state_dict_from_mmdet(state_dict)
    need = "panoptic_head.query_feat.weight"
    if need not in sd or "backbone.conv1.weight" not in sd:
        raise ConversionError("not an mmdet Mask2Former (ResNet) state dict: no "
                              f"{need!r} or 'backbone.conv1.weight' among {len(sd)} keys, e.g. {list(sd)[:5]}")
    embed = sd.get("panoptic_head.query_embed.weight")
    if embed is not None and embed.shape != sd[need].shape:
        raise ConversionError(f"{need} has shape {tuple(sd[need].shape)} but panoptic_head.query_embed.weight "
                              f"{tuple(embed.shape)}: both must be (Q, C); one of them is mis-shaped")
    model_cfg, source = None, None
    if config is not None:
        model_cfg = load_mmdet_config(config, trust=trust_config)
        source = f"--config {config}" if isinstance(config, (str, bytes)) or hasattr(config, "__fspath__") \
            else "the mmdet config"
    elif meta_cfg:
        model_cfg, source = load_meta_cfg(meta_cfg, "the checkpoint's"), "the checkpoint's meta['cfg']"
    if model_cfg is not None:
        choices = choices_from_mmdet_cfg(model_cfg, source)
        given = dict(num_heads=num_heads, num_points=num_points, num_groups=num_groups)
        clash = [f"--{k.replace('_', '-')} {v} (config: {choices[k]})" for k, v in given.items()
                 if v is not None and v != choices[k]]
        if clash:
            raise ConversionError(f"{source} disagrees with " + ", ".join(clash))
        level_rows = sd.get("panoptic_head.pixel_decoder.level_encoding.weight")
        if level_rows is not None and level_rows.shape[0] != choices["num_levels"]:
            raise ConversionError(f"{source}: num_levels={choices['num_levels']} but the weights have "
                                  f"{level_rows.shape[0]} levels (pixel_decoder.level_encoding.weight)")
    else:
        choices = choices_from_weights(sd, num_heads, num_points, num_groups)
    stages = []
    for i in range(1, 10):
        blocks = _count(sd, rf"backbone\.layer{i}\.(\d+)\.conv1\.weight")
        if not blocks:
            break
        stages.append((blocks, sd[f"backbone.layer{i}.0.conv1.weight"].shape[0]))
    pd, td = "panoptic_head.pixel_decoder", "panoptic_head.transformer_decoder"
    Q, C = sd[need].shape
    required = [f"{pd}.encoder.layers.0.ffn.layers.0.0.weight", f"{td}.layers.0.ffn.layers.0.0.weight",
                "panoptic_head.cls_embed.weight", f"{pd}.mask_feature.weight"]
    missing = [k for k in required if k not in sd]
    if missing:
        raise ConversionError(f"not a complete mmdet Mask2Former state dict: no {missing}")
    try:
        return M2FConfig(
            batch_size=batch_size, image_size=tuple(image_size),
            in_channels=sd["backbone.conv1.weight"].shape[1], stem_channels=sd["backbone.conv1.weight"].shape[0],
            backbone_stages=tuple(stages), feat_channels=C,
            num_encoder_layers=_count(sd, rf"{pd}\.encoder\.layers\.(\d+)\."),
            encoder_ffn_channels=sd[required[0]].shape[0],
            num_queries=Q, num_decoder_layers=_count(sd, rf"{td}\.layers\.(\d+)\."),
            decoder_ffn_channels=sd[required[1]].shape[0],
            num_classes=sd["panoptic_head.cls_embed.weight"].shape[0] - 1,
            out_channels=sd[f"{pd}.mask_feature.weight"].shape[0], **choices)
    except ValueError as err:
        raise ConversionError(f"{source or 'the weights'}: {err}") from None


def from_mmdet(state_dict, config=None, image_size=(1024, 1024), **choices) -> Mask2Former:
    """A ready `Mask2Former` (eval mode) from mmdet 3.x or 2.x Mask2Former weights.

    `config`: an `M2FConfig` (used as it is), an mmdet config (a `.py` path read as literals,
    a `Config` or a dict) or None; `choices`: `meta_cfg=`, `trust_config=`, `num_heads=`,
    `num_points=`, `num_groups=` as in `config_from_mmdet`. Keys that do not fit raise
    `ConversionError` listing them by name.
    """
    if isinstance(config, M2FConfig):
        m2f_config = config
    else:
        m2f_config = config_from_mmdet(state_dict, config, image_size=image_size, **choices)
    model = Mask2Former(m2f_config)
    load_strict(model, state_dict_from_mmdet(state_dict), "mmdet Mask2Former state dict")
    return model.eval()
