"""From HF transformers' `Mask2FormerForUniversalSegmentation` to our `Mask2Former`.

Both models compute the same thing; only the names and two layouts differ:

| HF transformers (`model.` prefix dropped)                | ours                                                |
|----------------------------------------------------------|-----------------------------------------------------|
| `pixel_level_module.encoder.embedder.embedder.*`         | `backbone.conv1`, `backbone.bn1`                    |
| `...encoder.stages.{i}.layers.{b}.layer.{0,1,2}.*`       | `backbone.layer{i+1}.{b}.conv{1,2,3}`, `bn{1,2,3}`  |
| `...encoder.stages.{i}.layers.{b}.shortcut.*`            | `backbone.layer{i+1}.{b}.downsample.{0,1}`          |
| `pixel_level_module.decoder.input_projections.{i}.{0,1}` | `panoptic_head.pixel_decoder.input_convs.{i}.{conv,gn}` |
| `pixel_level_module.decoder.level_embed` (a Parameter)   | `...pixel_decoder.level_encoding.weight`            |
| `...decoder.encoder.layers.{n}.self_attn.*`              | `...encoder.layers.{n}.self_attn.*` (same names)    |
| `...layers.{n}.self_attn_layer_norm`, `final_layer_norm` | `...layers.{n}.norms.0`, `norms.1`                  |
| `...layers.{n}.fc1`, `fc2`                               | `...layers.{n}.ffn.layers.0.0`, `ffn.layers.1`      |
| `pixel_level_module.decoder.adapter_1`, `layer_1`        | `...pixel_decoder.lateral_convs.0`, `output_convs.0`|
| `pixel_level_module.decoder.mask_projection`             | `...pixel_decoder.mask_feature`                     |
| `transformer_module.queries_features`, `queries_embedder`| `panoptic_head.query_feat`, `query_embed`           |
| `transformer_module.level_embed`                         | `panoptic_head.level_embed`                         |
| `...decoder.layers.{n}.cross_attn.*`                     | `...transformer_decoder.layers.{n}.cross_attn.attn.*` |
| `...decoder.layers.{n}.self_attn.{q,k,v}_proj`           | `...self_attn.attn.in_proj_weight` = cat(q, k, v)   |
| `...cross_attn_layer_norm`, `self_attn_layer_norm`, `final_layer_norm` | `norms.0`, `norms.1`, `norms.2`       |
| `transformer_module.decoder.layernorm`                   | `panoptic_head.transformer_decoder.post_norm`       |
| `...mask_predictor.mask_embedder.{0,1,2}.0`              | `panoptic_head.mask_embed.{0,2,4}`                  |
| `class_predictor` (outside `model.`)                     | `panoptic_head.cls_embed`                           |

HF's `decoder_layers` counts the prediction before the first layer: `decoder_layers=10`
builds nine layers. `criterion.empty_weight` (the loss's no-object weight) is no part of the
forward pass and is dropped by name. A non-ResNet backbone (Swin, in every public checkpoint)
is kept as HF's own module behind `HFBackbone`.
"""
from __future__ import annotations

import copy
import re

import torch

from ..model.config import M2FConfig
from ..model import Mask2Former
from ..model.backbones import HFBackbone
from .strict import ConversionError, key_report, load_strict

# consumed by name: used by HF's training loss only
HF_TRAINING_ONLY_KEYS = ("criterion.empty_weight",)


def _get(config, name, default=None):
    return getattr(config, name, default)


def is_resnet_backbone(hf_config) -> bool:
    backbone_config = _get(hf_config, "backbone_config")
    return backbone_config is not None and _get(backbone_config, "model_type") == "resnet"


def config_from_hf(hf_config, image_size=(1024, 1024), batch_size: int = 2) -> M2FConfig:
    """`M2FConfig` for a HF `Mask2FormerConfig`; raises `ConversionError` for what we lack."""
    problems = []

    def need(ok, msg):
        if not ok:
            problems.append(msg)

    need(not _get(hf_config, "pre_norm", False), "pre_norm=True (we follow mmdet: post-norm)")
    need(_get(hf_config, "activation_function", "relu") == "relu",
         f"activation_function={_get(hf_config, 'activation_function')!r} (we use relu)")
    need(not _get(hf_config, "enforce_input_projection", False),
         "enforce_input_projection=True (we have no decoder input projection)")
    need(_get(hf_config, "hidden_dim") == _get(hf_config, "feature_size"),
         f"hidden_dim={_get(hf_config, 'hidden_dim')} != feature_size={_get(hf_config, 'feature_size')}")
    need(tuple(_get(hf_config, "feature_strides", (4, 8, 16, 32))) == (4, 8, 16, 32),
         f"feature_strides={_get(hf_config, 'feature_strides')} (we use 4, 8, 16, 32)")
    need(_get(hf_config, "common_stride", 4) == 4, "common_stride != 4")
    C = _get(hf_config, "feature_size")
    backbone_config = _get(hf_config, "backbone_config")
    if is_resnet_backbone(hf_config):
        need(_get(backbone_config, "layer_type", "bottleneck") == "bottleneck",
             f"ResNet layer_type={_get(backbone_config, 'layer_type')!r} (we build bottlenecks)")
        need(not _get(backbone_config, "downsample_in_bottleneck", False),
             "ResNet downsample_in_bottleneck=True (we put the stride in the 3×3 conv)")
        need(not _get(backbone_config, "downsample_in_first_stage", False),
             "ResNet downsample_in_first_stage=True")
        need(_get(backbone_config, "hidden_act", "relu") == "relu", "ResNet hidden_act != relu")
        need(list(_get(backbone_config, "out_features", [])) == ["stage1", "stage2", "stage3", "stage4"],
             f"ResNet out_features={_get(backbone_config, 'out_features')} (need stage1..stage4)")
        stem = _get(backbone_config, "embedding_size")
        stages = tuple((int(d), int(h) // 4) for d, h in zip(backbone_config.depths, backbone_config.hidden_sizes))
        in_channels = _get(backbone_config, "num_channels", 3)
    else:
        # a HF backbone kept as it is: the pixel decoder reads its channels from `HFBackbone`;
        # the stored config records them as ResNet stages of width C_i/4 (blocks unused), so that
        # tables and checkpoints name the same sizes
        channels = _channels_of_hf_backbone(backbone_config)
        need(all(c % 4 == 0 for c in channels), f"backbone channels {channels} must be multiples of 4")
        stem, stages = 64, tuple((1, c // 4) for c in channels)
        in_channels = _get(backbone_config, "num_channels", 3)
    if problems:
        raise ConversionError("this HF Mask2Former differs from the model m2f-teach builds:\n  "
                              + "\n  ".join(problems))
    return M2FConfig(batch_size=batch_size, image_size=tuple(image_size), in_channels=in_channels,
                     stem_channels=stem, backbone_stages=stages, feat_channels=C,
                     num_heads=hf_config.num_attention_heads, num_levels=3, num_points=4,
                     num_encoder_layers=hf_config.encoder_layers,
                     encoder_ffn_channels=hf_config.encoder_feedforward_dim, num_groups=32,
                     num_queries=hf_config.num_queries, num_decoder_layers=hf_config.decoder_layers - 1,
                     decoder_ffn_channels=hf_config.dim_feedforward, num_classes=hf_config.num_labels,
                     out_channels=hf_config.mask_feature_size)


def _channels_of_hf_backbone(backbone_config) -> list[int]:
    from transformers import AutoBackbone
    with torch.device("meta"):
        body = AutoBackbone.from_config(backbone_config)
    return list(body.channels)


def _resnet_keys(config: M2FConfig) -> dict[str, str]:
    """Our backbone names → HF ResNet names (without `model.pixel_level_module.encoder.`)."""
    names = {}
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")

    def conv_bn(ours_conv, ours_bn, hf):
        names[f"{ours_conv}.weight"] = f"{hf}.convolution.weight"
        for p in bn:
            names[f"{ours_bn}.{p}"] = f"{hf}.normalization.{p}"

    conv_bn("conv1", "bn1", "embedder.embedder")
    for i, (blocks, _) in enumerate(config.backbone_stages):
        for b in range(blocks):
            ours, hf = f"layer{i + 1}.{b}", f"encoder.stages.{i}.layers.{b}"
            for k in range(3):
                conv_bn(f"{ours}.conv{k + 1}", f"{ours}.bn{k + 1}", f"{hf}.layer.{k}")
            if b == 0:  # the first block of every stage changes width or stride
                conv_bn(f"{ours}.downsample.0", f"{ours}.downsample.1", f"{hf}.shortcut")
    return names


def _head_rules(config: M2FConfig) -> list[tuple[str, str]]:
    """(HF regex, our template) for everything after the backbone, `model.` prefix dropped."""
    pd, td = "panoptic_head.pixel_decoder", "panoptic_head.transformer_decoder"
    lateral = {f"adapter_{i + 1}": j for j, i in enumerate(range(len(config.backbone_stages) - config.num_levels - 1, -1, -1))}
    rules = [
        (r"pixel_level_module\.decoder\.input_projections\.(\d+)\.0\.(\w+)", pd + r".input_convs.\1.conv.\2"),
        (r"pixel_level_module\.decoder\.input_projections\.(\d+)\.1\.(\w+)", pd + r".input_convs.\1.gn.\2"),
        (r"pixel_level_module\.decoder\.level_embed", pd + ".level_encoding.weight"),
        (r"pixel_level_module\.decoder\.encoder\.layers\.(\d+)\.self_attn\.(\w+)\.(\w+)",
         pd + r".encoder.layers.\1.self_attn.\2.\3"),
        (r"pixel_level_module\.decoder\.encoder\.layers\.(\d+)\.self_attn_layer_norm\.(\w+)",
         pd + r".encoder.layers.\1.norms.0.\2"),
        (r"pixel_level_module\.decoder\.encoder\.layers\.(\d+)\.final_layer_norm\.(\w+)",
         pd + r".encoder.layers.\1.norms.1.\2"),
        (r"pixel_level_module\.decoder\.encoder\.layers\.(\d+)\.fc1\.(\w+)", pd + r".encoder.layers.\1.ffn.layers.0.0.\2"),
        (r"pixel_level_module\.decoder\.encoder\.layers\.(\d+)\.fc2\.(\w+)", pd + r".encoder.layers.\1.ffn.layers.1.\2"),
        (r"pixel_level_module\.decoder\.mask_projection\.(\w+)", pd + r".mask_feature.\1"),
        (r"transformer_module\.queries_features\.weight", "panoptic_head.query_feat.weight"),
        (r"transformer_module\.queries_embedder\.weight", "panoptic_head.query_embed.weight"),
        (r"transformer_module\.level_embed\.weight", "panoptic_head.level_embed.weight"),
        (r"transformer_module\.decoder\.layers\.(\d+)\.cross_attn\.(in_proj_weight|in_proj_bias)",
         td + r".layers.\1.cross_attn.attn.\2"),
        (r"transformer_module\.decoder\.layers\.(\d+)\.cross_attn\.out_proj\.(\w+)", td + r".layers.\1.cross_attn.attn.out_proj.\2"),
        (r"transformer_module\.decoder\.layers\.(\d+)\.self_attn\.out_proj\.(\w+)", td + r".layers.\1.self_attn.attn.out_proj.\2"),
        (r"transformer_module\.decoder\.layers\.(\d+)\.cross_attn_layer_norm\.(\w+)", td + r".layers.\1.norms.0.\2"),
        (r"transformer_module\.decoder\.layers\.(\d+)\.self_attn_layer_norm\.(\w+)", td + r".layers.\1.norms.1.\2"),
        (r"transformer_module\.decoder\.layers\.(\d+)\.final_layer_norm\.(\w+)", td + r".layers.\1.norms.2.\2"),
        (r"transformer_module\.decoder\.layers\.(\d+)\.fc1\.(\w+)", td + r".layers.\1.ffn.layers.0.0.\2"),
        (r"transformer_module\.decoder\.layers\.(\d+)\.fc2\.(\w+)", td + r".layers.\1.ffn.layers.1.\2"),
        (r"transformer_module\.decoder\.layernorm\.(\w+)", td + r".post_norm.\1"),
        (r"transformer_module\.decoder\.mask_predictor\.mask_embedder\.0\.0\.(\w+)", r"panoptic_head.mask_embed.0.\1"),
        (r"transformer_module\.decoder\.mask_predictor\.mask_embedder\.1\.0\.(\w+)", r"panoptic_head.mask_embed.2.\1"),
        (r"transformer_module\.decoder\.mask_predictor\.mask_embedder\.2\.0\.(\w+)", r"panoptic_head.mask_embed.4.\1"),
    ]
    for adapter, j in lateral.items():
        k = adapter.split("_")[1]
        rules.append((rf"pixel_level_module\.decoder\.adapter_{k}\.0\.(\w+)", pd + rf".lateral_convs.{j}.conv.\1"))
        rules.append((rf"pixel_level_module\.decoder\.adapter_{k}\.1\.(\w+)", pd + rf".lateral_convs.{j}.gn.\1"))
        rules.append((rf"pixel_level_module\.decoder\.layer_{k}\.0\.(\w+)", pd + rf".output_convs.{j}.conv.\1"))
        rules.append((rf"pixel_level_module\.decoder\.layer_{k}\.1\.(\w+)", pd + rf".output_convs.{j}.gn.\1"))
    return rules


def state_dict_from_hf(hf_state_dict, config: M2FConfig, resnet: bool = True) -> dict[str, torch.Tensor]:
    """Rename (and fuse q/k/v) a HF state dict into ours. Keys no rule covers raise.

    With `resnet=False` the backbone keys go to `backbone.body.*` (the `HFBackbone` adapter).
    """
    source = {k[len("model."):] if k.startswith("model.") else k: v for k, v in hf_state_dict.items()}
    out, used = {}, set()
    backbone_prefix = "pixel_level_module.encoder."
    if resnet:
        for ours, hf in _resnet_keys(config).items():
            if backbone_prefix + hf in source:
                out["backbone." + ours] = source[backbone_prefix + hf]
                used.add(backbone_prefix + hf)
    else:
        for k, v in source.items():
            if k.startswith(backbone_prefix):
                out["backbone.body." + k[len(backbone_prefix):]] = v
                used.add(k)
    rules = [(re.compile(pattern + "$"), template) for pattern, template in _head_rules(config)]
    qkv = {}
    for k, v in source.items():
        if k in used:
            continue
        if k in HF_TRAINING_ONLY_KEYS:
            used.add(k)
            continue
        if k.startswith("class_predictor."):
            out["panoptic_head.cls_embed." + k.split(".", 1)[1]] = v
            used.add(k)
            continue
        m = re.match(r"transformer_module\.decoder\.layers\.(\d+)\.self_attn\.([qkv])_proj\.(weight|bias)$", k)
        if m:  # HF keeps q, k, v apart; nn.MultiheadAttention stacks them in that order
            qkv[(int(m.group(1)), m.group(3), m.group(2))] = v
            used.add(k)
            continue
        for pattern, template in rules:
            if pattern.match(k):
                out[pattern.sub(template, k)] = v
                used.add(k)
                break
    layers = sorted({layer for layer, _, _ in qkv})
    for layer in layers:
        for kind in ("weight", "bias"):
            parts = [qkv.get((layer, kind, p)) for p in "qkv"]
            if any(p is None for p in parts):
                raise ConversionError(f"decoder layer {layer}: self_attn {kind} needs q, k and v projections")
            out[f"panoptic_head.transformer_decoder.layers.{layer}.self_attn.attn.in_proj_{kind}"] = torch.cat(parts, 0)
    left = [k for k in source if k not in used]
    if left:
        raise ConversionError(key_report([], left, [], "HF state dict (keys no rule converts)"))
    return out


def from_hf(hf_model=None, *, state_dict=None, config=None, image_size=(1024, 1024)) -> Mask2Former:
    """A ready `Mask2Former` (eval mode) with the weights of a HF Mask2Former.

    Either `from_hf(hf_model)` with a `Mask2FormerForUniversalSegmentation`, or
    `from_hf(state_dict=..., config=hf_config)` with its state dict and `Mask2FormerConfig`.
    """
    if hf_model is not None:
        hf_config, hf_state_dict = hf_model.config, hf_model.state_dict()
    elif state_dict is not None and config is not None:
        hf_config, hf_state_dict = config, state_dict
    else:
        raise TypeError("from_hf needs a HF model, or state_dict= and config= (its Mask2FormerConfig)")
    m2f_config = config_from_hf(hf_config, image_size=image_size)
    resnet = is_resnet_backbone(hf_config)
    backbone = None                                  # our ResNet, built from the config
    if not resnet:
        if hf_model is not None:
            body = copy.deepcopy(hf_model.model.pixel_level_module.encoder)
        else:
            from transformers import AutoBackbone
            body = AutoBackbone.from_config(hf_config.backbone_config)
        backbone = HFBackbone(body, m2f_config.strides)
    model = Mask2Former(m2f_config, backbone=backbone)
    ours = state_dict_from_hf(hf_state_dict, m2f_config, resnet=resnet)
    load_strict(model, ours, "converted HF Mask2Former")
    return model.eval()


# COCO panoptic's 133 classes: the first 80 are things (mmdetection's num_things_classes)
COCO_PANOPTIC_NUM_THINGS = 80


def labels_from_hf(hf_config) -> dict:
    """`{"class_names", "num_things"}` from a HF config's `id2label`, for `save_checkpoint`.

    Names are kept unless they are transformers' placeholders (`LABEL_0`, ...). Which classes
    are stuff is not in a HF config: 80 COCO names are all things; 133 COCO panoptic names
    (things first) have 80 things; otherwise it stays unknown (`None`).
    """
    id2label = _get(hf_config, "id2label") or {}
    num_labels = hf_config.num_labels
    names = [id2label.get(i, id2label.get(str(i))) for i in range(num_labels)]
    if any(n is None for n in names) or all(str(n) == f"LABEL_{i}" for i, n in enumerate(names)):
        return {"class_names": None, "num_things": None}
    num_things = None
    if num_labels == 80 and names[0] == "person" and names[79] == "toothbrush":
        num_things = 80
    elif num_labels == 133 and names[0] == "person" and names[79] == "toothbrush":
        num_things = COCO_PANOPTIC_NUM_THINGS
    return {"class_names": [str(n) for n in names], "num_things": num_things}
