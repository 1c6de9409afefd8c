"""Both models stage by stage, what `python -m m2f_teach compare --hf DIR | --mmdet FILE --config CFG [IMAGE]`
prints (the subcommand: `cli.py`).

Converts the weights, runs the source model (HF transformers or mmdetection) and ours on the
same image, and prints every stage both have, in the order the network computes them:

| stage | where |
|---|---|
| `backbone.feats.{i}` | the backbone's four maps |
| `panoptic_head.pixel_decoder.memory` | the deformable encoder's output, `(S, B, C)` |
| `...multi_scale_memories.{l}` | `memory` split back into L maps |
| `...mask_features` | the FPN's output, `(B, C_m, Hm, Wm)` |
| `...layers.{i}.attn_mask` | the mask decoder layer i gets (counts of differing entries) |
| `panoptic_head.cls_pred.{j}`, `mask_pred.{j}` | every prediction, before and after each layer |

with the largest absolute difference, the relative one (over the reference's largest
magnitude) and the first stage beyond `--tolerance` (relative): where a port goes wrong.
IMAGE is any RGB image file (default: matplotlib's sample photo, no download), fitted into
`--resize` and normalised as `predict` does. The HF side reuses `hf_reference.hf_stages`,
the mmdet side hooks mmdet's own modules the same way (mmcv's compiled ops are not needed:
mmdet's deformable attention takes its pure-PyTorch path on CPU).
"""
from __future__ import annotations

import torch

from .hf_reference import max_abs_diffs, our_stages

DEFAULT_TOLERANCE = 1e-4
MASK_TOLERANCE = 1e-3        # attention masks: the fraction of entries allowed to differ
# (rounding at a logit near 0 flips an entry; a wrong port flips many)


def image_tensor(image=None, scale=(512, 512)) -> torch.Tensor:
    """`(1, 3, H, W)` normalised and padded to a multiple of 32, as `predict` prepares it."""
    from ..predict.preprocess import preprocess
    if image is None:
        from ..viz.images import sample_photo
        image = sample_photo((480, 640))
    tensors, _ = preprocess([image], scale=scale)
    return tensors[0][None]


def compare_stages(ours: dict, reference: dict, tolerance: float = DEFAULT_TOLERANCE) -> list[dict]:
    """One row per shared stage, in network order: name, shape, max abs and rel difference, ok."""
    shared = {k: v for k, v in reference.items() if k in ours}
    diffs = max_abs_diffs(ours, shared)
    rows = []
    for name in sorted(shared, key=_order):
        ref = shared[name]
        if ref.dtype == torch.bool:
            frac = diffs[name] / max(1, ref.numel())
            rows.append(dict(name=name, shape=tuple(ref.shape), abs=diffs[name], rel=frac,
                             ok=frac <= MASK_TOLERANCE, kind="mask"))
        else:
            rel = diffs[name] / max(float(ref.abs().max()), 1e-12)
            rows.append(dict(name=name, shape=tuple(ref.shape), abs=diffs[name], rel=rel,
                             ok=rel <= tolerance, kind="float"))
    return rows


def _order(name: str):
    groups = ["backbone.feats", "panoptic_head.pixel_decoder.memory",
              "panoptic_head.pixel_decoder.multi_scale_memories", "panoptic_head.pixel_decoder.mask_features"]
    for g, prefix in enumerate(groups):
        if name.startswith(prefix):
            return (g, int(name.rsplit(".", 1)[1]) if name[-1].isdigit() else 0, 0)
    index = int(name.split(".")[-2] if name.endswith("attn_mask") else name.rsplit(".", 1)[1])
    # prediction j, then the mask layer j gets from it
    kind = 0 if ".cls_pred." in name else 1 if ".mask_pred." in name else 2
    return (len(groups), index, kind)


def render(rows: list[dict], source: str) -> str:
    width = max(len(r["name"]) for r in rows)
    lines = [f"{'stage':<{width}}  {'shape':<22} {'max abs':>10} {'max rel':>10}",
             f"{'-' * width}  {'-' * 22} {'-' * 10} {'-' * 10}"]
    for r in rows:
        if r["kind"] == "mask":
            line = (f"{r['name']:<{width}}  {str(r['shape']):<22} {r['abs']:>10d} {r['rel']:>10.1e}"
                    f"  entries differing{'' if r['ok'] else '  <- differs'}")
        else:
            line = (f"{r['name']:<{width}}  {str(r['shape']):<22} {r['abs']:>10.2e} {r['rel']:>10.2e}"
                    f"{'' if r['ok'] else '  <- differs'}")
        lines.append(line)
    bad = [r for r in rows if not r["ok"]]
    if bad:
        lines.append(f"first stage beyond tolerance: {bad[0]['name']} (then {len(bad) - 1} more)")
    else:
        lines.append(f"all {len(rows)} stages agree with {source} within tolerance")
    return "\n".join(lines) + "\n"


def hf_comparison(hf_model, images: torch.Tensor, tolerance: float = DEFAULT_TOLERANCE) -> list[dict]:
    """Convert `hf_model` and compare every stage on `images (B, 3, H, W)`."""
    from .hf import from_hf
    from .hf_reference import hf_stages
    ours = from_hf(hf_model, image_size=tuple(images.shape[-2:]))
    return compare_stages(our_stages(ours, images), hf_stages(hf_model, images), tolerance)


@torch.no_grad()
def mmdet_stages(model, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """mmdet's Mask2Former intermediates under our trace names (forward hooks)."""
    out, handles = {}, []
    head = model.panoptic_head

    def on_encoder(module, args, output):
        out["panoptic_head.pixel_decoder.memory"] = output.transpose(0, 1)              # (S, B, C)

    def on_pixel_decoder(module, args, output):
        mask_features, memories = output
        out["panoptic_head.pixel_decoder.mask_features"] = mask_features
        for i, m in enumerate(memories):
            out[f"panoptic_head.pixel_decoder.multi_scale_memories.{i}"] = m

    def on_layer(i):
        def hook(module, args, kwargs):
            out[f"panoptic_head.transformer_decoder.layers.{i}.attn_mask"] = kwargs["cross_attn_mask"]
        return hook

    handles.append(head.pixel_decoder.encoder.register_forward_hook(on_encoder))
    handles.append(head.pixel_decoder.register_forward_hook(on_pixel_decoder))
    for i, layer in enumerate(head.transformer_decoder.layers):
        handles.append(layer.register_forward_pre_hook(on_layer(i), with_kwargs=True))
    try:
        feats = model.extract_feat(images)
        cls_pred_list, mask_pred_list = head(feats, None)
    finally:
        for h in handles:
            h.remove()
    for i, f in enumerate(feats):
        out[f"backbone.feats.{i}"] = f
    for j, (c, m) in enumerate(zip(cls_pred_list, mask_pred_list)):
        out[f"panoptic_head.cls_pred.{j}"] = c
        out[f"panoptic_head.mask_pred.{j}"] = m
    return out


def build_mmdet_model(state_dict, config):
    """mmdet's own Mask2Former from `config` (a file, an mmengine Config or its `model`
    section) with `state_dict` loaded, eval mode; mmcv's compiled ops stubbed."""
    import types
    try:
        import mmcv.utils.ext_loader as ext_loader
    except ImportError as err:
        raise ValueError("--mmdet needs mmdetection: pip install mmcv-lite==2.1.0 mmengine mmdet==3.3.0") from err
    ext_loader.load_ext = lambda name, funcs: types.SimpleNamespace(**{f: None for f in funcs})
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from .mmdet import _mmdet_model_cfg, state_dict_from_mmdet
    register_all_modules()
    cfg = _mmdet_model_cfg(config)
    cfg.backbone["init_cfg"] = None                  # nothing to download: the weights come next
    model = MODELS.build(cfg).eval()
    # the mmdet 3.x names (2.x checkpoints are renamed the way `convert` does), every key and
    # shape checked first: load_state_dict's own error lists hundreds of lines without the files
    state_dict, expected = state_dict_from_mmdet(state_dict), model.state_dict()
    missing = [k for k in expected if k not in state_dict and "num_batches_tracked" not in k]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [(k, state_dict[k].shape, expected[k].shape) for k in expected
                  if k in state_dict and state_dict[k].shape != expected[k].shape]
    if missing or unexpected or mismatched:
        from .strict import ConversionError, key_report
        raise ConversionError(key_report(missing, unexpected, mismatched, "the weights into the model the mmdet "
                                                                          "config describes", limit=5))
    model.load_state_dict(state_dict, strict=False)
    return model


def mmdet_comparison(state_dict, config, images: torch.Tensor,
                     tolerance: float = DEFAULT_TOLERANCE) -> list[dict]:
    """Convert mmdet weights and compare every stage with mmdet's own model on `images`."""
    from .mmdet import from_mmdet
    reference_model = build_mmdet_model(state_dict, config)
    ours = from_mmdet(state_dict, config, image_size=tuple(images.shape[-2:]))
    return compare_stages(our_stages(ours, images), mmdet_stages(reference_model, images), tolerance)
