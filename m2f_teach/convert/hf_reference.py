"""HF transformers' Mask2Former as a reference: its intermediates under our trace names.

Used by the equivalence tests, the benchmark and notebook 08. `hf_stages(hf_model, images)`
runs HF's model once and returns a dict keyed like `m2f_teach.tracing` names:

| name                                                   | shape         | where HF has it                       |
|--------------------------------------------------------|---------------|---------------------------------------|
| `backbone.feats.{i}`                                   | `(B, C_i, H/s_i, W/s_i)` | `encoder_hidden_states`    |
| `panoptic_head.pixel_decoder.memory`                   | `(S, B, C)`   | pixel-decoder encoder output (hook), `(B, S, C)` there |
| `panoptic_head.pixel_decoder.multi_scale_memories.{l}` | `(B, C, H_l, W_l)` | `pixel_decoder_hidden_states`    |
| `panoptic_head.pixel_decoder.mask_features`            | `(B, C_m, Hm, Wm)` | `pixel_decoder_last_hidden_state` |
| `panoptic_head.transformer_decoder.layers.{i}.attn_mask` | `(B·nH, Q, H_l·W_l)` | the mask each layer gets (hook) |
| `panoptic_head.cls_pred.{j}`                           | `(B, Q, K)`   | `class_predictor(intermediate_states[j])` |
| `panoptic_head.mask_pred.{j}`                          | `(B, Q, Hm, Wm)` | `masks_queries_logits[j]`          |

`random_hf_model` builds a small random-init HF model (offline) whose BatchNorm statistics
are not the identity, so a backbone mix-up cannot hide behind all-zero features.
"""
from __future__ import annotations

import torch

STAGE_PATTERNS = ["backbone.feats.*", "panoptic_head.pixel_decoder.memory",
                  "panoptic_head.pixel_decoder.multi_scale_memories.*",
                  "panoptic_head.pixel_decoder.mask_features",
                  "panoptic_head.transformer_decoder.layers.*.attn_mask",
                  "panoptic_head.cls_pred.*", "panoptic_head.mask_pred.*"]


def hf_resnet_config(stem=16, widths=(16, 32, 64, 128), depths=(1, 1, 1, 1), C=64, heads=8,
                     queries=20, num_labels=80, encoder_ffn=128, decoder_ffn=128,
                     encoder_layers=6, decoder_layers=9):
    """A HF `Mask2FormerConfig` with a ResNet backbone; `decoder_layers` counts real layers."""
    from transformers import Mask2FormerConfig, ResNetConfig
    backbone = ResNetConfig(embedding_size=stem, hidden_sizes=[4 * w for w in widths], depths=list(depths),
                            out_features=["stage1", "stage2", "stage3", "stage4"])
    return Mask2FormerConfig(backbone_config=backbone, feature_size=C, hidden_dim=C, mask_feature_size=C,
                             num_attention_heads=heads, encoder_feedforward_dim=encoder_ffn,
                             dim_feedforward=decoder_ffn, encoder_layers=encoder_layers,
                             decoder_layers=decoder_layers + 1,   # HF counts the prediction before layer 1
                             num_queries=queries, num_labels=num_labels)


def seed_hf_config():
    """The seed's R50 Mask2Former (C=256, Q=100, 80 classes) as a HF config."""
    return hf_resnet_config(stem=64, widths=(64, 128, 256, 512), depths=(3, 4, 6, 3), C=256, heads=8,
                            queries=100, num_labels=80, encoder_ffn=1024, decoder_ffn=2048)


@torch.no_grad()
def randomize_batchnorm_(model: torch.nn.Module, generator: torch.Generator) -> None:
    """Give every BatchNorm weight ~1, a bias, a running mean and a variance that matter."""
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.weight.copy_(1 + 0.1 * torch.randn(n, generator=generator))
            m.bias.copy_(0.1 * torch.randn(n, generator=generator))
            m.running_mean.copy_(0.1 * torch.randn(n, generator=generator))
            m.running_var.copy_(0.5 + torch.rand(n, generator=generator))


def random_hf_model(hf_config, seed: int = 0):
    """A random-init `Mask2FormerForUniversalSegmentation` in eval mode (no download)."""
    from transformers import Mask2FormerForUniversalSegmentation
    torch.manual_seed(seed)
    model = Mask2FormerForUniversalSegmentation(hf_config).eval()
    randomize_batchnorm_(model, torch.Generator().manual_seed(seed))
    return model


def hf_predictions(hf_model, images: torch.Tensor) -> tuple[list, list]:
    """HF's ten predictions as ours returns them: class logits `(B, Q, K)` and mask logits
    `(B, Q, Hm, Wm)` of the input-independent query and of every decoder layer."""
    result = hf_model.model(pixel_values=images, output_hidden_states=True, return_dict=True)
    cls_pred_list = [hf_model.class_predictor(x.transpose(0, 1))                      # (B, Q, K)
                     for x in result.transformer_decoder_intermediate_states]
    return cls_pred_list, list(result.masks_queries_logits)


@torch.no_grad()
def hf_stages(hf_model, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Run HF's model on `images (B, 3, H, W)`; its intermediates under our trace names."""
    out, handles = {}, []
    pixel_decoder = hf_model.model.pixel_level_module.decoder
    decoder = hf_model.model.transformer_module.decoder

    def on_encoder(module, args, output):
        out["panoptic_head.pixel_decoder.memory"] = output.last_hidden_state.transpose(0, 1)  # (S, B, C)

    def on_layer(i):
        def hook(module, args, kwargs):
            out[f"panoptic_head.transformer_decoder.layers.{i}.attn_mask"] = kwargs["encoder_attention_mask"]
        return hook

    handles.append(pixel_decoder.encoder.register_forward_hook(on_encoder))
    for i, layer in enumerate(decoder.layers):
        handles.append(layer.register_forward_pre_hook(on_layer(i), with_kwargs=True))
    try:
        result = hf_model.model(pixel_values=images, output_hidden_states=True, return_dict=True)
    finally:
        for h in handles:
            h.remove()
    for i, x in enumerate(result.encoder_hidden_states):
        out[f"backbone.feats.{i}"] = x
    for i, x in enumerate(result.pixel_decoder_hidden_states):
        out[f"panoptic_head.pixel_decoder.multi_scale_memories.{i}"] = x
    out["panoptic_head.pixel_decoder.mask_features"] = result.pixel_decoder_last_hidden_state
    for j, x in enumerate(result.transformer_decoder_intermediate_states):
        out[f"panoptic_head.cls_pred.{j}"] = hf_model.class_predictor(x.transpose(0, 1))   # (B, Q, K)
    for j, x in enumerate(result.masks_queries_logits):
        out[f"panoptic_head.mask_pred.{j}"] = x
    return out


def our_stages(model, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Our model's values of the same names, through `m2f_teach.tracing`."""
    from ..tracing.trace import trace
    t = trace(model, images, keep=STAGE_PATTERNS, record_modules=False)
    return {name: t.value(name) for name in t.names() if _kept(name)}


def _kept(name: str) -> bool:
    import fnmatch
    return any(fnmatch.fnmatch(name, p) for p in STAGE_PATTERNS)


def max_abs_diffs(ours: dict, reference: dict) -> dict[str, float]:
    """Max |ours − reference| per name (float tensors) or the count of differing entries (bool)."""
    missing = sorted(set(reference) - set(ours))
    if missing:
        raise KeyError(f"our trace lacks {missing}")
    diffs = {}
    for name, ref in reference.items():
        a = ours[name]
        if tuple(a.shape) != tuple(ref.shape):
            raise ValueError(f"{name}: shape {tuple(a.shape)} vs reference {tuple(ref.shape)}")
        if ref.dtype == torch.bool:
            diffs[name] = int((a != ref).sum())
        else:
            diffs[name] = float((a.float() - ref.float()).abs().max())
    return diffs
