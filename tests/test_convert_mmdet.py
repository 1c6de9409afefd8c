"""mmdetection → m2f-teach.

* Always: the key layouts. An mmdet 3.x state dict (our names) and the same weights in the
  2.x layout (`attentions.0`, `ffns.0`) give the same model; a key that does not fit is named.
* When mmdet 3.3.0 is importable (CI installs mmcv-lite==2.1.0, mmengine, mmdet==3.3.0): build
  mmdet's own Mask2Former from its shipped config `mask2former_r50_8xb2-lsj-50e_coco.py`,
  shrunk, on CPU (mmcv's compiled ops stubbed, so its deformable attention takes its
  pure-PyTorch path), convert its state dict, and compare stage by stage within 1e-4.
"""
import importlib.util
import os
import re
import types

import pytest
import torch

from m2f_teach import M2FConfig, Mask2Former
from m2f_teach.convert import ConversionError, config_from_mmdet, from_mmdet, read_state_dict
from m2f_teach.convert.hf_reference import max_abs_diffs, our_stages, randomize_batchnorm_
from m2f_teach.convert.compare import mmdet_stages
from m2f_teach.convert.mmdet import state_dict_from_mmdet

TOL = 1e-4
SEED_CHOICES = dict(num_heads=8, num_points=4, num_groups=32)   # not in the weights: given


def to_mmdet2_layout(state_dict):
    """Our (= mmdet 3.x) names written back in mmdet 2.x's layout."""
    rules = [(r"(pixel_decoder\.encoder\.layers\.\d+)\.self_attn\.", r"\1.attentions.0."),
             (r"(pixel_decoder\.encoder\.layers\.\d+)\.ffn\.", r"\1.ffns.0."),
             (r"(transformer_decoder\.layers\.\d+)\.cross_attn\.", r"\1.attentions.0."),
             (r"(transformer_decoder\.layers\.\d+)\.self_attn\.", r"\1.attentions.1."),
             (r"(transformer_decoder\.layers\.\d+)\.ffn\.", r"\1.ffns.0.")]
    out = {}
    for k, v in state_dict.items():
        for p, r in rules:
            k = re.sub(p, r, k)
        out[k] = v
    return out


@pytest.fixture(scope="module")
def small_model():
    torch.manual_seed(0)
    model = Mask2Former(M2FConfig.small(num_groups=32)).eval()
    randomize_batchnorm_(model, torch.Generator().manual_seed(0))
    return model


def test_mmdet3_layout_loads_as_is(small_model):
    sd = small_model.state_dict()
    config = config_from_mmdet(sd, image_size=small_model.config.image_size, **SEED_CHOICES)
    assert config == small_model.config
    model = from_mmdet(sd, **SEED_CHOICES)
    assert not model.training
    assert all(torch.equal(model.state_dict()[k], v) for k, v in sd.items())


def test_an_mmdet2_layout_checkpoint_converts_to_the_same_weights(small_model, tmp_path):
    sd2 = to_mmdet2_layout(small_model.state_dict())
    assert any(".attentions.1.attn.in_proj_weight" in k for k in sd2)
    path = tmp_path / "mmdet2.pth"
    torch.save({"meta": {"mmdet_version": "2.25.0"}, "state_dict": sd2}, path)
    model = from_mmdet(read_state_dict(path), **SEED_CHOICES)
    images = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        a, b = small_model(images), model(images)
    assert all(torch.equal(x, y) for x, y in zip(a[0] + a[1], b[0] + b[1]))


def test_bad_keys_are_named(small_model):
    sd = dict(small_model.state_dict())
    sd.pop("panoptic_head.pixel_decoder.mask_feature.bias")
    sd["panoptic_head.pixel_decoder.extra.weight"] = torch.zeros(3)
    with pytest.raises(ConversionError) as err:
        from_mmdet(sd, small_model.config)
    text = str(err.value)
    assert "panoptic_head.pixel_decoder.mask_feature.bias" in text
    assert "panoptic_head.pixel_decoder.extra.weight" in text


# ---- against mmdetection itself -----------------------------------------------------------------
def import_mmdet():
    """mmdet with mmcv-lite's compiled ops stubbed (they are not in mmcv-lite)."""
    if importlib.util.find_spec("mmdet") is None or importlib.util.find_spec("mmcv") is None:
        pytest.skip("mmdet is not importable: pip install mmcv-lite==2.1.0 mmengine mmdet==3.3.0")
    import mmcv.utils.ext_loader as ext_loader
    ext_loader.load_ext = lambda name, funcs: types.SimpleNamespace(**{f: None for f in funcs})
    import mmdet
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config
    register_all_modules()
    return mmdet, MODELS, Config


def shrunk_mmdet_config(Config, mmdet, C=64, queries=20):
    path = os.path.join(os.path.dirname(mmdet.__file__), ".mim", "configs", "mask2former",
                        "mask2former_r50_8xb2-lsj-50e_coco.py")
    cfg = Config.fromfile(path).model
    cfg.backbone.update(base_channels=16, init_cfg=None)          # R50 layout, narrow, no download
    head = cfg.panoptic_head
    head.update(in_channels=[64, 128, 256, 512], feat_channels=C, out_channels=C, num_queries=queries)
    head.pixel_decoder.encoder.layer_cfg.self_attn_cfg.embed_dims = C
    head.pixel_decoder.encoder.layer_cfg.ffn_cfg.update(embed_dims=C, feedforward_channels=128)
    head.pixel_decoder.positional_encoding.num_feats = C // 2
    head.positional_encoding.num_feats = C // 2
    layer = head.transformer_decoder.layer_cfg
    layer.self_attn_cfg.embed_dims = layer.cross_attn_cfg.embed_dims = C
    layer.ffn_cfg.update(embed_dims=C, feedforward_channels=128)
    return cfg


@pytest.fixture(scope="module")
def mmdet_model():
    mmdet, MODELS, Config = import_mmdet()
    torch.manual_seed(0)
    model = MODELS.build(shrunk_mmdet_config(Config, mmdet)).eval()
    randomize_batchnorm_(model, torch.Generator().manual_seed(1))
    return model


@pytest.mark.parametrize("batch,size", [(1, (96, 160)), (2, (128, 64))])
def test_converted_mmdet_model_matches_mmdetection_stage_by_stage(mmdet_model, batch, size):
    mmdet, _, Config = import_mmdet()
    cfg = shrunk_mmdet_config(Config, mmdet)
    model = from_mmdet(mmdet_model.state_dict(), cfg, image_size=size)
    assert model.config.feat_channels == 64 and model.config.num_heads == 8
    images = torch.randn(batch, 3, *size, generator=torch.Generator().manual_seed(batch))
    ref = mmdet_stages(mmdet_model, images)
    ours = our_stages(model, images)
    diffs = max_abs_diffs(ours, ref)
    assert len(diffs) == 4 + 1 + 3 + 1 + 9 + 10 + 10
    floats = {k: v for k, v in diffs.items() if "attn_mask" not in k}
    assert max(floats.values()) <= TOL, floats
    flips = sum(v for k, v in diffs.items() if "attn_mask" in k)
    total = sum(ref[k].numel() for k in diffs if "attn_mask" in k)
    assert flips <= 1e-4 * total, f"{flips} of {total} attention-mask entries differ"
    masks = torch.cat([ref[k].flatten() for k in diffs if "attn_mask" in k]).float()
    assert 0.05 < masks.mean() < 0.95          # masks that block some pixels and free others
    assert ref["panoptic_head.pixel_decoder.memory"].abs().max() > 0.1


def test_every_stage_in_the_encoder_matches_mmdetection():
    """num_levels = 4 = the backbone's stages: every map goes through the encoder, no FPN level
    is left (mmdetection runs it; the mask features come from the stride-4 memory)."""
    mmdet, MODELS, Config = import_mmdet()
    cfg = shrunk_mmdet_config(Config, mmdet)
    cfg.panoptic_head.num_transformer_feat_level = 4
    cfg.panoptic_head.pixel_decoder.num_outs = 4
    cfg.panoptic_head.pixel_decoder.encoder.layer_cfg.self_attn_cfg.num_levels = 4
    torch.manual_seed(0)
    reference = MODELS.build(cfg).eval()
    randomize_batchnorm_(reference, torch.Generator().manual_seed(1))
    model = from_mmdet(reference.state_dict(), cfg, image_size=(64, 96))
    assert model.config.num_levels == 4 and len(model.panoptic_head.pixel_decoder.lateral_convs) == 0
    images = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(3))
    diffs = max_abs_diffs(our_stages(model, images), mmdet_stages(reference, images))
    floats = {k: v for k, v in diffs.items() if "attn_mask" not in k}
    assert len(floats) == 4 + 1 + 4 + 1 + 10 + 10 and max(floats.values()) <= TOL, floats
