"""`m2f_teach.site`: the explorer's model returns what the notebooks teach, and the build is safe.

The model's extra outputs are checked against independent references: the predictions against
the model's own return values, the attention masks against `sigmoid(resized mask_pred) < 0.5`
with the all-blocked rows reset, written out here; the ONNX file against PyTorch in
onnxruntime. A narrow model keeps the export to seconds; the browser tests
(`tests/browser/test_site.py`) run the shipped checkpoint's file in Chromium.
"""
import json
import shutil

import pytest
import torch
import torch.nn.functional as F

from m2f_teach import M2FConfig, Mask2Former
from m2f_teach.site import TeachingOutputs, check_teaching_onnx, export_teaching_onnx, output_names
from m2f_teach.site.build import MARKER, build_site


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    config = M2FConfig.shapes(image_size=(64, 64), num_encoder_layers=2, num_decoder_layers=4,
                              num_queries=6, batch_size=1)
    return Mask2Former(config).eval()


def images(seed=1, size=(64, 64)):
    return torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(seed))


def test_teaching_outputs_hold_the_models_predictions_and_the_masks_each_layer_used(tiny):
    check_teaching_outputs(tiny, images())


def test_the_shipped_checkpoint_resets_all_blocked_rows_on_a_held_out_image():
    from m2f_teach.data.shapes import TEST_SEED, draw_sample, normalise_pixels
    from m2f_teach.pretrained import load_pretrained
    model = load_pretrained()
    x = normalise_pixels(torch.from_numpy(draw_sample(0, seed=TEST_SEED)["image"]).permute(2, 0, 1).float())[None]
    outputs = check_teaching_outputs(model, x)
    # the page shows the reset: on this image some query's mask is empty at some layer
    assert any(outputs[f"all_blocked.{i}"].any() for i in range(model.config.num_decoder_layers))


def check_teaching_outputs(tiny, x):
    with torch.no_grad():
        outputs = dict(zip(output_names(tiny.config), TeachingOutputs(tiny)(x)))
        cls_pred_list, mask_pred_list = tiny(x)
    config = tiny.config
    assert len(outputs) == 2 * config.num_encoder_layers + 1 + 2 * config.num_decoder_layers \
        + 2 * (config.num_decoder_layers + 1)
    for j, (cls_pred, mask_pred) in enumerate(zip(cls_pred_list, mask_pred_list)):
        assert torch.equal(outputs[f"cls_pred.{j}"], cls_pred)
        assert torch.equal(outputs[f"mask_pred.{j}"], mask_pred)
    spatial = config.spatial_shapes
    for i in range(config.num_decoder_layers):
        # the mask layer i used: prediction i's logits resized to level i % L, sigmoid < 0.5,
        # rows blocked everywhere reset to attend everywhere; the same for every head
        size = spatial[i % config.num_levels]
        resized = F.interpolate(outputs[f"mask_pred.{i}"], size, mode="bilinear", align_corners=False)
        blocked = (resized.sigmoid() < 0.5).flatten(2)[0]                 # (Q, H_l·W_l)
        all_blocked = blocked.all(-1)
        used = blocked & ~all_blocked[:, None]
        for h in range(config.num_heads):
            assert torch.equal(outputs[f"attn_mask.{i}"][h], used)
            assert torch.equal(outputs[f"all_blocked.{i}"][h], all_blocked)
    S, nH, L, P = config.num_tokens, config.num_heads, config.num_levels, config.num_points
    for i in range(config.num_encoder_layers):
        assert outputs[f"sampling_locations.{i}"].shape == (1, S, nH, L, P, 2)
        weights = outputs[f"attention_weights.{i}"]
        assert weights.shape == (1, S, nH, L * P)
        assert torch.allclose(weights.sum(-1), torch.ones(1, S, nH))   # a softmax over L·P points
    # the reference points: the grid ((x + 0.5) / W_l, (y + 0.5) / H_l), the same on every level's map
    H_0, W_0 = spatial[0]
    reference = outputs["reference_points"][0, :H_0 * W_0, 0]           # level-0 tokens on level 0
    ys, xs = torch.meshgrid(torch.arange(H_0), torch.arange(W_0), indexing="ij")
    assert torch.allclose(reference, torch.stack([(xs + 0.5) / W_0, (ys + 0.5) / H_0], -1).view(-1, 2))
    return outputs


def test_teaching_onnx_runs_in_onnxruntime_like_pytorch(tiny, tmp_path):
    pytest.importorskip("onnxruntime")
    path = tmp_path / "teach.onnx"
    names = export_teaching_onnx(tiny, path)
    assert names == output_names(tiny.config)
    assert not (tmp_path / "teach.traced.onnx").exists()           # the unsimplified file is gone
    diffs = check_teaching_onnx(path, tiny, images(seed=2))
    assert sorted(diffs) == sorted(names)
    assert max(diffs.values()) <= 1e-4, diffs
    # and the check can fail: another model's numbers differ
    torch.manual_seed(1)
    other = Mask2Former(tiny.config).eval()
    assert max(check_teaching_onnx(path, other, images(seed=2)).values()) > 1e-2


def test_site_refuses_to_replace_a_folder_it_did_not_write(tmp_path, cli, capsys):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "mine.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not written by"):
        build_site(folder)
    assert cli(["site", "-o", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error: -o" in err and "Traceback" not in err
    assert (folder / "mine.txt").read_text() == "keep me"


def test_site_without_npm_says_how_to_get_it_and_leaves_nothing(tmp_path, monkeypatch):
    web = tmp_path / "web"
    web.mkdir()
    (web / "package.json").write_text(json.dumps({"dependencies": {"onnxruntime-web": "1.30.0"}}))
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(FileNotFoundError, match="npm not found.*apt-get install -y npm"):
        build_site(tmp_path / "site", web_dir=web)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["web"]          # no half-written folder
    with pytest.raises(FileNotFoundError, match="package.json is missing"):
        build_site(tmp_path / "site", web_dir=tmp_path / "elsewhere")
    assert MARKER.startswith(".")
