"""HF transformers → m2f-teach: convert a random-init HF Mask2Former, compare stage by stage.

Offline (HF_HUB_OFFLINE=1, random init). Stages: backbone features, encoder memory, the
multi-scale maps, mask features, every decoder layer's attention mask, class and mask logits
of all 10 predictions; fp32, max abs diff ≤ 1e-4 (we see ~3e-7 here at the small sizes).
Stages whose values run into the hundreds (the backbone's deeper maps at the seed size) are held
to 1e-4 of their largest magnitude instead: float32 keeps about 7 digits, and our backbone runs
its convolutions in the channels-last layout, which sums in another order.
"""
import argparse
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
import torch.nn.functional as F

transformers = pytest.importorskip("transformers", reason="transformers (a test dependency) is not installed")

from m2f_teach.convert import (ConversionError, from_hf, load_checkpoint, read_state_dict,  # noqa: E402
                               save_checkpoint, state_dict_from_hf)
from m2f_teach.convert.hf_reference import (hf_resnet_config, hf_stages, max_abs_diffs,  # noqa: E402
                                            our_stages, random_hf_model, seed_hf_config)

TOL = 1e-4


def blocked_where_sure(ref: dict, name: str, num_heads: int, margin: float = 1e-4):
    """Positions of layer i's attention mask where HF's resized mask logit is farther than
    `margin` from the 0.5 threshold, so that a 1e-7 rounding cannot flip them."""
    i = int(name.split(".")[-2])
    mask = ref[name]
    h, w = ref[f"panoptic_head.pixel_decoder.multi_scale_memories.{i % 3}"].shape[-2:]
    assert h * w == mask.shape[-1]
    logits = F.interpolate(ref[f"panoptic_head.mask_pred.{i}"], size=(h, w), mode="bilinear",
                           align_corners=False)                                # (B, Q, H_l, W_l)
    sure = logits.flatten(2).abs() > margin                                   # (B, Q, H_l·W_l)
    return sure.unsqueeze(1).repeat(1, num_heads, 1, 1).flatten(0, 1)         # (B·nH, Q, H_l·W_l)


def assert_equivalent(ours: dict, ref: dict, num_heads: int, tol: float = TOL):
    diffs = max_abs_diffs(ours, ref)
    assert len(ref) == 4 + 1 + 3 + 1 + 9 + 10 + 10
    bad = {}
    for name, d in diffs.items():
        if name.endswith("attn_mask"):
            sure = blocked_where_sure(ref, name, num_heads)
            flips = int(((ours[name] != ref[name]) & sure).sum())
            if flips:
                bad[name] = f"{flips} entries differ"
        elif d > tol * max(1.0, ref[name].abs().max().item()):
            bad[name] = d
    assert not bad, bad
    # the comparison is not vacuous: masks block some and free some pixels, values are not zero
    masks = torch.cat([ref[n].flatten() for n in ref if n.endswith("attn_mask")])
    assert 0.05 < masks.float().mean() < 0.95
    for name in ("backbone.feats.3", "panoptic_head.pixel_decoder.memory", "panoptic_head.cls_pred.9"):
        assert ref[name].abs().max() > 0.1
    return diffs


@pytest.fixture(scope="module")
def hf_small():
    return random_hf_model(hf_resnet_config(), seed=0)


@pytest.mark.parametrize("batch,size", [(1, (96, 160)), (2, (128, 64))])
def test_converted_hf_model_matches_hf_stage_by_stage(hf_small, batch, size):
    model = from_hf(hf_small, image_size=size)
    assert not model.training
    images = torch.randn(batch, 3, *size, generator=torch.Generator().manual_seed(batch))
    diffs = assert_equivalent(our_stages(model, images), hf_stages(hf_small, images), num_heads=8)
    print(f"max abs diff over all float stages: {max(v for k, v in diffs.items() if 'attn_mask' not in k):.2e}")


def test_plain_forward_matches_hf_outputs(hf_small):
    """`model(images)` (no trace) against HF's own `class_queries_logits`/`masks_queries_logits`."""
    model = from_hf(hf_small, image_size=(64, 96))
    images = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        cls_pred_list, mask_pred_list = model(images)
        out = hf_small(pixel_values=images)
    assert len(cls_pred_list) == len(mask_pred_list) == 10
    assert (cls_pred_list[-1] - out.class_queries_logits).abs().max() < TOL
    assert (mask_pred_list[-1] - out.masks_queries_logits).abs().max() < TOL


def test_a_wrong_weight_is_caught(hf_small):
    """Negative control: one LayerNorm bias mapped wrongly in the encoder shows up in `memory`."""
    model = from_hf(hf_small, image_size=(64, 64))
    norms = model.panoptic_head.pixel_decoder.encoder.layers[2].norms
    with torch.no_grad():
        norms[0].bias.copy_(norms[1].bias + 0.5)
    images = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    diffs = max_abs_diffs(our_stages(model, images), hf_stages(hf_small, images))
    assert diffs["panoptic_head.pixel_decoder.memory"] > TOL
    assert diffs["backbone.feats.3"] <= TOL


def test_swin_backbone_through_adapter():
    """A (tiny, random) Swin backbone runs as HF's own module behind `HFBackbone`."""
    cfg = transformers.Mask2FormerConfig(
        backbone_config=transformers.SwinConfig(embed_dim=32, depths=[1, 1, 1, 1], num_heads=[1, 2, 4, 8],
                                                window_size=4, out_features=["stage1", "stage2", "stage3", "stage4"]),
        feature_size=64, hidden_dim=64, mask_feature_size=64, encoder_feedforward_dim=128,
        dim_feedforward=128, decoder_layers=10, num_queries=10, num_labels=5)
    hf = random_hf_model(cfg, seed=1)
    model = from_hf(hf, image_size=(64, 96))
    assert type(model.backbone).__name__ == "HFBackbone"
    images = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(1))
    ref = hf_stages(hf, images)
    diffs = max_abs_diffs(our_stages(model, images), ref)
    assert max(v for k, v in diffs.items() if "attn_mask" not in k) <= TOL
    # from its state dict + config, as from a checkpoint on disk
    rebuilt = from_hf(state_dict=hf.state_dict(), config=cfg, image_size=(64, 96))
    assert max(v for k, v in max_abs_diffs(our_stages(rebuilt, images), ref).items()
               if "attn_mask" not in k) <= TOL


def test_save_load_and_cli(hf_small, tmp_path, capsys, cli):
    hf_dir = tmp_path / "hf"
    hf_small.save_pretrained(hf_dir)
    out = tmp_path / "m2f.safetensors"
    assert cli(["convert", "--from", "hf", str(hf_dir), "--output", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    loaded = load_checkpoint(out)
    assert not loaded.training
    images = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(5))
    diffs = max_abs_diffs(our_stages(loaded, images), hf_stages(hf_small, images))
    assert max(v for k, v in diffs.items() if "attn_mask" not in k) <= TOL
    # a round trip through save_checkpoint keeps every tensor bit for bit
    again = tmp_path / "again.safetensors"
    save_checkpoint(loaded, again)
    a, b = read_state_dict(out), read_state_dict(again)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_cli_reports_a_missing_model(tmp_path, capsys, cli):
    missing = str(tmp_path / "nothing-here")
    assert cli(["convert", "--from", "hf", missing, "--output", str(tmp_path / "x.safetensors")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {missing}: not a folder and not in the local HF cache") and "Download it first" in err


def test_missing_and_unexpected_keys_are_named(hf_small):
    sd = dict(hf_small.state_dict())
    del sd["model.transformer_module.decoder.layers.3.fc1.weight"]
    sd["model.transformer_module.decoder.layers.3.extra.weight"] = torch.zeros(1)
    with pytest.raises(ConversionError, match=r"transformer_module\.decoder\.layers\.3\.extra\.weight"):
        from_hf(state_dict=sd, config=hf_small.config)
    del sd["model.transformer_module.decoder.layers.3.extra.weight"]
    with pytest.raises(ConversionError) as err:
        from_hf(state_dict=sd, config=hf_small.config)
    assert "missing keys" in str(err.value)
    assert "panoptic_head.transformer_decoder.layers.3.ffn.layers.0.0.weight" in str(err.value)


def test_unsupported_hf_config_is_explained():
    cfg = hf_resnet_config()
    cfg.pre_norm = True
    with pytest.raises(ConversionError, match="pre_norm"):
        from_hf(state_dict={}, config=cfg)


def test_a_checkpoint_holding_pickled_objects_is_refused(tmp_path):
    path = tmp_path / "weird.pth"
    torch.save({"state_dict": {"a": torch.zeros(1)}, "meta": {"args": argparse.Namespace(lr=0.1)}}, path)
    with pytest.raises(ConversionError, match="weights_only"):
        read_state_dict(path)


@pytest.mark.slow
def test_seed_configuration_matches_hf():
    """The seed: R50, C=256, Q=100, 2×3×1024×1024 (minutes on CPU)."""
    hf = random_hf_model(seed_hf_config(), seed=0)
    model = from_hf(hf)
    state = state_dict_from_hf(hf.state_dict(), model.config)
    assert len(state) == len(model.state_dict())
    images = torch.randn(2, 3, 1024, 1024, generator=torch.Generator().manual_seed(0))
    diffs = assert_equivalent(our_stages(model, images), hf_stages(hf, images), num_heads=8)
    print({k: v for k, v in diffs.items()})
