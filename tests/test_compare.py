"""`python -m m2f_teach compare`: every shared stage, its differences, the first that differs."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch

from m2f_teach.convert.compare import compare_stages, image_tensor, mmdet_comparison, render
from m2f_teach.convert.hf_reference import hf_resnet_config, hf_stages, our_stages, random_hf_model

STAGES = 4 + 1 + 3 + 1 + 9 + 10 + 10




@pytest.fixture(scope="module")
def hf_model():
    pytest.importorskip("transformers")
    return random_hf_model(hf_resnet_config(), seed=0)


def test_cli_on_a_converted_hf_folder(cli, hf_model, tmp_path, capsys):
    hf_model.save_pretrained(tmp_path / "hf")
    from PIL import Image
    from m2f_teach.data import draw_sample
    Image.fromarray(draw_sample(0, 0, (100, 150))["image"]).save(tmp_path / "shapes.png")
    assert cli(["compare", "--hf", str(tmp_path / "hf"), str(tmp_path / "shapes.png"),
                "--resize", "128", "128"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert len(lines) == 2 + STAGES + 1
    assert lines[2].startswith("backbone.feats.0 ") and "(1, 64, 24, 32)" in lines[2]   # 85×128 → 96×128
    assert lines[-1] == f"all {STAGES} stages agree with HF transformers within tolerance"
    order = [line.split()[0] for line in lines[2:-1]]
    assert order.index("panoptic_head.cls_pred.0") < order.index(
        "panoptic_head.transformer_decoder.layers.0.attn_mask") < order.index("panoptic_head.cls_pred.1")


def test_first_stage_that_differs_is_named(hf_model):
    """A port that gets the mask-feature conv wrong: every stage before it agrees, it does not."""
    from m2f_teach.convert import from_hf
    images = image_tensor(scale=(128, 96))
    model = from_hf(hf_model, image_size=tuple(images.shape[-2:]))
    with torch.no_grad():
        model.panoptic_head.pixel_decoder.mask_feature.bias.add_(0.05)
    rows = compare_stages(our_stages(model, images), hf_stages(hf_model, images))
    assert len(rows) == STAGES
    bad = [r["name"] for r in rows if not r["ok"]]
    assert bad[0] == "panoptic_head.pixel_decoder.mask_features"
    assert all(r["ok"] for r in rows[:rows.index(next(r for r in rows if not r["ok"]))])
    assert "first stage beyond tolerance: panoptic_head.pixel_decoder.mask_features" in render(rows, "HF")


def test_compare_finds_every_mmdetection_stage_equal_to_ours():
    from test_convert_mmdet import import_mmdet, shrunk_mmdet_config
    from m2f_teach.convert.hf_reference import randomize_batchnorm_
    mmdet, MODELS, Config = import_mmdet()
    cfg = shrunk_mmdet_config(Config, mmdet)
    torch.manual_seed(0)
    reference = MODELS.build(cfg).eval()
    randomize_batchnorm_(reference, torch.Generator().manual_seed(1))
    rows = mmdet_comparison(reference.state_dict(), cfg, image_tensor(scale=(128, 96)))
    assert len(rows) == STAGES and all(r["ok"] for r in rows), [r for r in rows if not r["ok"]]


def test_bad_arguments_are_one_line(cli, tmp_path, capsys):
    assert cli(["compare", "--mmdet", str(tmp_path / "w.pth")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--config" in err
    assert cli(["compare", "--hf", str(tmp_path), str(tmp_path / "nope.jpg")]) == 2
    assert "nope.jpg: no such image file" in capsys.readouterr().err
