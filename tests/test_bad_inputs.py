"""Bad input gets one clear line that names the offending value or file; nothing is silently
wrong, nothing read is executed, a training run is never lost.

The CLI runs in-process (`m2f_teach.__main__.main`), so each case costs milliseconds; two real
subprocesses prove that no traceback reaches the terminal and that SIGTERM saves a run.
"""
import argparse
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from m2f_teach import M2FConfig, Mask2Former
from m2f_teach.__main__ import main
from m2f_teach.convert import (ConversionError, from_mmdet, load_checkpoint, read_checkpoint,
                               read_state_dict, save_checkpoint)

REPO = Path(__file__).resolve().parents[1]
# a small model whose 4 heads × 8 points the weights alone cannot tell from 8 × 4
MMDET_CONFIG = dict(num_heads=4, num_points=8, num_groups=32, num_encoder_layers=1, num_decoder_layers=1,
                    image_size=(64, 64), batch_size=1)


def mmdet_model_cfg(heads=4, points=8, levels=3, groups=32):
    """The `model` section of an mmdet config for `MMDET_CONFIG` (only what the converter reads)."""
    pe = dict(num_feats=32, normalize=True)
    ffn = dict(embed_dims=64, feedforward_channels=128, num_fcs=2, act_cfg=dict(type="ReLU", inplace=True))
    return dict(
        type="Mask2Former",
        backbone=dict(type="ResNet", depth=50, num_stages=4, out_indices=(0, 1, 2, 3), style="pytorch",
                      norm_cfg=dict(type="BN", requires_grad=False), norm_eval=True),
        panoptic_head=dict(
            type="Mask2FormerHead", in_channels=[64, 128, 256, 512], strides=[4, 8, 16, 32], feat_channels=64,
            out_channels=64, num_queries=20, num_transformer_feat_level=levels,
            pixel_decoder=dict(
                type="MSDeformAttnPixelDecoder", num_outs=levels, norm_cfg=dict(type="GN", num_groups=groups),
                act_cfg=dict(type="ReLU"),
                encoder=dict(num_layers=1, layer_cfg=dict(
                    self_attn_cfg=dict(embed_dims=64, num_heads=heads, num_levels=levels, num_points=points),
                    ffn_cfg=ffn)),
                positional_encoding=dict(pe)),
            positional_encoding=dict(pe),
            transformer_decoder=dict(num_layers=1, layer_cfg=dict(
                self_attn_cfg=dict(embed_dims=64, num_heads=heads),
                cross_attn_cfg=dict(embed_dims=64, num_heads=heads), ffn_cfg=ffn))))


def config_text(model_cfg, prefix=""):
    return f"{prefix}model = {model_cfg!r}\n"


def changed(cfg, path, value):
    cfg = json.loads(json.dumps(cfg))          # a deep copy (tuples become lists: fine for mmdet)
    *keys, last = path.split(".")
    node = cfg
    for key in keys:
        node = node[key]
    node[last] = value
    return cfg


@pytest.fixture(scope="module")
def mmdet_model():
    torch.manual_seed(0)
    return Mask2Former(M2FConfig.small(**MMDET_CONFIG)).eval()


@pytest.fixture(scope="module")
def files(tmp_path_factory, mmdet_model):
    """Every bad (and one good) file the cases below point at, in one folder."""
    d = tmp_path_factory.mktemp("bad")
    good = d / "good.safetensors"
    save_checkpoint(mmdet_model, good)
    data = good.read_bytes()
    (d / "empty.pth").write_bytes(b"")
    (d / "empty.safetensors").write_bytes(b"")
    (d / "truncated.safetensors").write_bytes(data[:200])
    (d / "cut.safetensors").write_bytes(data[: len(data) // 2])
    (d / "text.safetensors").write_text("these are not weights, just a few words of text\n")
    torch.save({"a": torch.zeros(2)}, d / "zip.safetensors")
    shutil.copy(good, d / "st.pth")
    torch.save({"state_dict": {"a": torch.zeros(1)}, "meta": {"args": argparse.Namespace(lr=0.1)}},
               d / "objects.pth")
    torch.save({"state_dict": dict(mmdet_model.state_dict())}, d / "weights.pth")
    (d / "trunc.pth").write_bytes((d / "weights.pth").read_bytes()[:3000])
    (d / "list.pth").write_bytes(b"")
    torch.save([torch.zeros(1)], d / "list.pth")
    (d / "a_file").write_text("a plain file\n")
    (d / "hf_noconfig").mkdir()
    cfg = mmdet_model_cfg()
    configs = {
        "good.py": config_text(cfg),
        "caffe.py": config_text(changed(cfg, "backbone.style", "caffe")),
        "dilations.py": config_text(changed(cfg, "backbone.dilations", [1, 1, 2, 4])),
        "bstrides.py": config_text(changed(cfg, "backbone.strides", [1, 2, 2, 1])),
        "pdstrides.py": config_text(changed(cfg, "panoptic_head.pixel_decoder.strides", [8, 16, 32, 64])),
        "temperature.py": config_text(changed(cfg, "panoptic_head.positional_encoding.temperature", 20)),
        "scale.py": config_text(changed(cfg, "panoptic_head.pixel_decoder.positional_encoding.scale", 1.0)),
        "offset.py": config_text(changed(cfg, "panoptic_head.positional_encoding.offset", -0.5)),
        "normalize.py": config_text(changed(cfg, "panoptic_head.positional_encoding.normalize", False)),
        "selfheads.py": config_text(changed(cfg, "panoptic_head.transformer_decoder.layer_cfg.self_attn_cfg.num_heads", 8)),
        "outs.py": config_text(changed(cfg, "panoptic_head.pixel_decoder.num_outs", 2)),
        "swin.py": config_text(changed(cfg, "backbone.type", "SwinTransformer")),
        "syntax.py": "model = dict(type='Mask2Former',\n",
        "nohead.py": "model = dict(type='Mask2Former', backbone=dict(type='ResNet'))\n",
        "config.txt": config_text(cfg),
        "based.py": "_base_ = ['./nothere.py']\n" + config_text(cfg),
        "exec.py": config_text(cfg, prefix=f"open({str(d / 'EXECUTED')!r}, 'w').write('x')\n"),
        "repeat.py": config_text(cfg, prefix="big = [0] * 1000000000\n"),
    }
    for name, text in configs.items():
        (d / name).write_text(text)
    return d


def cli_error(capsys, argv, status=None) -> str:
    """Run the CLI in-process; it must exit non-zero with a message and no traceback."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    code = exit_info.value.code
    assert code not in (0, None), argv
    if status is not None:
        assert code == status
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip(), err
    return err


# ---- the command line: each message names the flag, value or file ---------------------------------
CLI_CASES = [
    # configuration flags of table/summary
    (["table", "--image-size", "1000", "1024"], ["1000×1024", "try 992×1024"]),
    (["table", "--image-size", "128.7", "128"], ["--image-size", "'128.7'"]),
    (["table", "--num-heads", "7"], ["num_heads=7"]),
    (["table", "--num-heads", "abc"], ["--num-heads", "'abc'"]),
    (["table", "--num-levels", "5"], ["num_levels=5", "at most 4"]),
    (["table", "--num-points", "0"], ["num_points", "got 0"]),
    (["table", "--num-queries", "-1"], ["num_queries", "got -1"]),
    (["table", "--batch-size", "0"], ["batch_size", "got 0"]),
    (["table", "--num-groups", "7"], ["num_groups=7"]),
    (["table", "--feat-channels", "18", "--num-heads", "2", "--num-groups", "2"], ["feat_channels=18"]),
    (["table", "--temperature", "0"], ["temperature", "got 0.0"]),
    (["table", "--temperature", "-1"], ["temperature", "got -1.0"]),
    (["table", "--temperature", "nan"], ["temperature", "got nan"]),
    (["table", "--temperature", "inf"], ["temperature", "got inf"]),
    (["table", "--frozen-backbone-norm", "maybe"], ["--frozen-backbone-norm", "'maybe'"]),
    (["table", "--preset", "big"], ["--preset", "'big'"]),
    (["table", "--format", "docx"], ["--format", "'docx'"]),
    (["summary", "--depth", "two"], ["--depth", "'two'"]),
    # train: every value is checked before anything is built
    (["train", "--clip", "-1"], ["--clip -1.0"]),
    (["train", "--clip", "nan"], ["--clip nan"]),
    (["train", "--warmup", "-5"], ["--warmup -5"]),
    (["train", "--weight-decay", "-0.1"], ["--weight-decay -0.1"]),
    (["train", "--lr", "nan"], ["--lr nan"]),
    (["train", "--lr", "-0.001"], ["--lr -0.001"]),
    (["train", "--lr", "inf"], ["--lr inf"]),
    (["train", "--threads", "-1"], ["--threads -1"]),
    (["train", "--workers", "-2"], ["--workers -2"]),
    (["train", "--steps", "0"], ["--steps 0"]),
    (["train", "--batch-size", "0"], ["--batch-size 0"]),
    (["train", "--val-every", "0"], ["--val-every 0"]),
    (["train", "--save-every", "-1"], ["--save-every -1"]),
    (["train", "--max-seconds", "-1"], ["--max-seconds -1.0"]),
    (["train", "--steps", "6", "--stop-after", "7"], ["--stop-after 7", "--steps 6"]),
    (["train", "--device", "tpu", "--out", "{d}/o.safetensors"], ["--device tpu"]),
    (["train", "--out", "/proc/m2f-teach-x/y.safetensors"], ["--out /proc/m2f-teach-x/y.safetensors"]),
    (["train", "--out", "{d}/a_file/y.safetensors"], ["--out {d}/a_file/y.safetensors"]),
    (["train", "--out", "{d}"], ["--out {d}", "is a folder"]),
    (["train", "--out", "{d}/weights.pth"], ["--out {d}/weights.pth", ".safetensors"]),
    (["train", "--init", "{d}/nowhere.safetensors"], ["--init {d}/nowhere.safetensors"]),
    (["train", "--init", "{d}/truncated.safetensors", "--out", "{d}/o.safetensors"],
     ["--init {d}/truncated.safetensors", "truncated"]),
    (["train", "--init", "{d}/zip.safetensors", "--out", "{d}/o.safetensors"],
     ["--init {d}/zip.safetensors", "zip archive"]),
    (["train", "--init", "{d}/good.safetensors", "--out", "{d}/o.safetensors"],
     ["--init {d}/good.safetensors", "shape mismatches"]),
    (["train", "--resume", "{d}/nowhere.state.pt"], ["--resume {d}/nowhere.state.pt"]),
    (["train", "--resume", "{d}/text.safetensors", "--out", "{d}/o.safetensors"],
     ["--resume {d}/text.safetensors", "not a training state"]),
    (["train", "--resume", "{d}/weights.pth", "--out", "{d}/o.safetensors"],
     ["--resume {d}/weights.pth", "not a training state"]),
    (["train", "--resume", "{d}/weights.pth", "--init", "{d}/good.safetensors"], ["--resume", "--init"]),
    # convert: files
    (["convert", "--from", "mmdet", "{d}/missing.pth", "-o", "{d}/o.safetensors"], ["{d}/missing.pth", "no such file"]),
    (["convert", "--from", "mmdet", "{d}", "-o", "{d}/o.safetensors"], ["{d}", "directory"]),
    (["convert", "--from", "mmdet", "{d}/empty.pth", "-o", "{d}/o.safetensors"], ["{d}/empty.pth", "empty"]),
    (["convert", "--from", "mmdet", "{d}/empty.safetensors", "-o", "{d}/o.safetensors"], ["{d}/empty.safetensors", "empty"]),
    (["convert", "--from", "mmdet", "{d}/truncated.safetensors", "-o", "{d}/o.safetensors"],
     ["{d}/truncated.safetensors", "truncated"]),
    (["convert", "--from", "mmdet", "{d}/cut.safetensors", "-o", "{d}/o.safetensors"], ["{d}/cut.safetensors"]),
    (["convert", "--from", "mmdet", "{d}/text.safetensors", "-o", "{d}/o.safetensors"],
     ["{d}/text.safetensors", "does not start like"]),
    (["convert", "--from", "mmdet", "{d}/zip.safetensors", "-o", "{d}/o.safetensors"],
     ["{d}/zip.safetensors", "zip archive", ".pth"]),
    (["convert", "--from", "mmdet", "{d}/st.pth", "-o", "{d}/o.safetensors"], ["{d}/st.pth", "looks like a .safetensors"]),
    (["convert", "--from", "mmdet", "{d}/objects.pth", "-o", "{d}/o.safetensors"], ["{d}/objects.pth", "weights_only"]),
    (["convert", "--from", "mmdet", "{d}/trunc.pth", "-o", "{d}/o.safetensors"], ["{d}/trunc.pth", "truncated"]),
    (["convert", "--from", "mmdet", "{d}/list.pth", "-o", "{d}/o.safetensors"], ["{d}/list.pth", "state dict"]),
    (["convert", "--from", "mmdet", "{d}/weights.pth", "-o", "{d}/o.txt"], ["--output {d}/o.txt", ".safetensors"]),
    (["convert", "--from", "hf", "{d}/hf_noconfig", "-o", "{d}/o.safetensors"], ["{d}/hf_noconfig", "config.json"]),
    (["convert", "--from", "hf", "{d}/weights.pth", "-o", "{d}/o.safetensors"], ["{d}/weights.pth", "a file"]),
    (["convert", "--from", "hf", "{d}/hf_noconfig", "--config", "{d}/good.py", "-o", "{d}/o.safetensors"],
     ["--config", "--from mmdet only"]),
    (["convert", "--from", "mmdet", "{d}/weights.pth", "--trust-config", "-o", "{d}/o.safetensors"],
     ["--trust-config", "no --config"]),
    # convert: what the weights cannot tell, and configs
    (["convert", "--from", "mmdet", "{d}/weights.pth", "-o", "{d}/o.safetensors"],
     ["{d}/weights.pth", "4×8", "8×4", "--num-heads", "--num-points"]),
    (["convert", "--from", "mmdet", "{d}/weights.pth", "--num-heads", "4", "--num-points", "8", "-o", "{d}/o.safetensors"],
     ["--num-groups", "candidates"]),
    (["convert", "--from", "mmdet", "{d}/weights.pth", "--num-heads", "3", "-o", "{d}/o.safetensors"],
     ["num_heads=3", "4×8"]),
    (["convert", "--from", "mmdet", "{d}/weights.pth", "--num-heads", "4", "--num-points", "8", "--num-groups", "5",
      "-o", "{d}/o.safetensors"], ["num_groups=5"]),
    (["convert", "--from", "mmdet", "{d}/weights.pth", "--config", "{d}/missing.py", "-o", "{d}/o.safetensors"],
     ["--config {d}/missing.py", "no such file"]),
    (["convert", "--from", "mmdet", "{d}/weights.pth", "--config", "{d}/config.txt", "-o", "{d}/o.safetensors"],
     ["--config {d}/config.txt", ".py"]),
    (["convert", "--from", "mmdet", "{d}/weights.pth", "--config", "{d}/based.py", "-o", "{d}/o.safetensors"],
     ["{d}/based.py", "{d}/nothere.py does not exist"]),
    (["convert", "--from", "mmdet", "{d}/weights.pth", "--config", "{d}/syntax.py", "-o", "{d}/o.safetensors"],
     ["{d}/syntax.py", "line"]),
    (["convert", "--from", "mmdet", "{d}/weights.pth", "--config", "{d}/nohead.py", "-o", "{d}/o.safetensors"],
     ["{d}/nohead.py", "panoptic_head"]),
    (["convert", "--from", "mmdet", "{d}/weights.pth", "--config", "{d}/repeat.py", "-o", "{d}/o.safetensors"],
     ["{d}/repeat.py", "repetition"]),
    (["convert", "--from", "mmdet", "{d}/weights.pth", "--config", "{d}/caffe.py", "-o", "{d}/o.safetensors"],
     ["{d}/caffe.py", "style='caffe'"]),
    (["convert", "--from", "mmdet", "{d}/weights.pth", "--config", "{d}/dilations.py", "-o", "{d}/o.safetensors"],
     ["{d}/dilations.py", "dilations=[1, 1, 2, 4]"]),
    (["convert", "--from", "mmdet", "{d}/weights.pth", "--config", "{d}/bstrides.py", "-o", "{d}/o.safetensors"],
     ["{d}/bstrides.py", "backbone strides=[1, 2, 2, 1]"]),
    (["convert", "--from", "mmdet", "{d}/weights.pth", "--config", "{d}/pdstrides.py", "-o", "{d}/o.safetensors"],
     ["{d}/pdstrides.py", "pixel_decoder strides=[8, 16, 32, 64]"]),
    (["convert", "--from", "mmdet", "{d}/weights.pth", "--config", "{d}/temperature.py", "-o", "{d}/o.safetensors"],
     ["{d}/temperature.py", "temperatures differ (10000 in the pixel decoder, 20 in the head"]),
    (["convert", "--from", "mmdet", "{d}/weights.pth", "--config", "{d}/scale.py", "-o", "{d}/o.safetensors"],
     ["{d}/scale.py", "scale=1.0"]),
    (["convert", "--from", "mmdet", "{d}/weights.pth", "--config", "{d}/offset.py", "-o", "{d}/o.safetensors"],
     ["{d}/offset.py", "offset=-0.5"]),
    (["convert", "--from", "mmdet", "{d}/weights.pth", "--config", "{d}/normalize.py", "-o", "{d}/o.safetensors"],
     ["{d}/normalize.py", "normalize=False"]),
    (["convert", "--from", "mmdet", "{d}/weights.pth", "--config", "{d}/selfheads.py", "-o", "{d}/o.safetensors"],
     ["{d}/selfheads.py", "self-attention num_heads=8 != cross-attention num_heads=4"]),
    (["convert", "--from", "mmdet", "{d}/weights.pth", "--config", "{d}/outs.py", "-o", "{d}/o.safetensors"],
     ["{d}/outs.py", "num_outs=2"]),
    (["convert", "--from", "mmdet", "{d}/weights.pth", "--config", "{d}/swin.py", "-o", "{d}/o.safetensors"],
     ["{d}/swin.py", "'SwinTransformer'"]),
    (["convert", "--from", "mmdet", "{d}/weights.pth", "--config", "{d}/good.py", "--num-heads", "8",
      "-o", "{d}/o.safetensors"], ["--num-heads 8 (config: 4)"]),
]


@pytest.mark.parametrize("argv,expected", CLI_CASES, ids=[" ".join(a).replace("{d}/", "")[:70] for a, _ in CLI_CASES])
def test_cli_names_the_bad_value(files, capsys, argv, expected):
    d = str(files)
    err = cli_error(capsys, [a.format(d=d) for a in argv])
    for text in expected:
        assert text.format(d=d) in err, (text, err)


def test_cli_errors_are_one_line(files, capsys):
    """A value error is exactly one line; argparse's own errors are its usage line and one error line."""
    err = cli_error(capsys, ["table", "--num-heads", "7"], status=2)
    assert err.count("\n") == 1 and err.startswith("error: num_heads=7")
    err = cli_error(capsys, ["train", "--threads", "-1"], status=2)
    assert err == "error: --threads -1: expected an integer ≥ 0\n"
    err = cli_error(capsys, ["convert", "--from", "mmdet", f"{files}/empty.pth", "-o", f"{files}/o.safetensors"],
                    status=2)                         # a failed conversion: the same status as any bad input
    assert err.count("\n") == 1


def test_debug_shows_the_traceback(capsys):
    with pytest.raises(ValueError, match="num_heads=7"):
        main(["table", "--num-heads", "7", "--debug"])


@pytest.mark.parametrize("argv,expected", [
    (["table", "--num-heads", "7"], "error: num_heads=7 must divide feat_channels=256"),
    (["convert", "--from", "mmdet", "nowhere.pth", "-o", "x.safetensors"], "error: nowhere.pth: no such file"),
])
def test_a_real_process_prints_no_traceback(argv, expected):
    result = subprocess.run([sys.executable, "-m", "m2f_teach", *argv], capture_output=True, text=True,
                            cwd=REPO, env=os.environ | {"PYTHONPATH": str(REPO)}, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith(expected) and result.stderr.count("\n") == 1, result.stderr


# ---- the API ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("changes,message", [
    (dict(num_heads=True), r"num_heads must be a positive integer, got True"),
    (dict(num_queries=20.0), r"num_queries must be a positive integer, got 20.0"),
    (dict(image_size=(128.7, 128)), r"image_size must be \(H, W\) of integers, got \(128.7, 128\)"),
    (dict(image_size=(128.0, 128)), r"image_size .*holds 128.0"),
    (dict(image_size="128"), r"image_size must be \(H, W\), got '128'"),
    (dict(image_size=(128, 128, 3)), r"image_size must be \(H, W\), got \(128, 128, 3\)"),
    (dict(backbone_stages=((1, 16), (1.5, 32))), r"backbone_stages .*holds 1.5"),
    (dict(frozen_backbone_norm="maybe"), r"frozen_backbone_norm must be True or False, got 'maybe'"),
    (dict(temperature=0), r"temperature must be a finite number > 0 .*got 0"),
    (dict(temperature=-10.0), r"temperature .* got -10.0"),
    (dict(temperature=float("nan")), r"temperature .* got nan"),
    (dict(temperature=True), r"temperature .* got True"),
    (dict(feat_channels=18, num_heads=2, num_groups=2), r"feat_channels=18 must be a multiple of 4.*C/2 = 9"),
    (dict(num_levels=5), r"num_levels=5 is beyond the backbone.*at most 4"),
])
def test_config_gaps_are_closed(changes, message):
    with pytest.raises(ValueError, match=message):
        M2FConfig.small(**changes)


def test_every_backbone_stage_in_the_encoder_is_allowed():
    model = Mask2Former(M2FConfig.small(num_levels=4, batch_size=1)).eval()
    assert len(model.panoptic_head.pixel_decoder.lateral_convs) == 0
    with torch.no_grad():
        cls_pred_list, mask_pred_list = model(torch.randn(1, 3, 64, 64))
    assert mask_pred_list[-1].shape == (1, 20, 16, 16) and torch.isfinite(mask_pred_list[-1]).all()


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return Mask2Former(M2FConfig.small(batch_size=1, num_encoder_layers=1, num_decoder_layers=1)).eval()


def test_nan_or_inf_pixels_give_a_warning(tiny):
    images = torch.zeros(1, 3, 64, 64)
    images[0, 1, 5, 7] = float("nan")
    images[0, 0, 0, 0] = float("inf")
    with pytest.warns(RuntimeWarning, match=r"images hold 2 NaN or infinite values \(shape \(1, 3, 64, 64\)\)"):
        with torch.no_grad():
            tiny(images)


def test_meta_and_real_devices_are_named(tiny):
    with pytest.raises(ValueError, match=r"images are on meta but the model's weights are on cpu"):
        tiny(torch.empty(1, 3, 64, 64, device="meta"))
    with torch.device("meta"):
        meta = Mask2Former(M2FConfig.small(batch_size=1, num_encoder_layers=1, num_decoder_layers=1))
    with pytest.raises(ValueError, match=r"images are on cpu but the model's weights are on meta"):
        meta(torch.zeros(1, 3, 64, 64))


@pytest.mark.parametrize("name,message", [
    ("missing.safetensors", r"no checkpoint at .*missing.safetensors"),
    ("empty.safetensors", r"empty.safetensors.*it is empty"),
    ("truncated.safetensors", r"truncated.safetensors.*truncated"),
    ("cut.safetensors", r"cut.safetensors"),
    ("text.safetensors", r"text.safetensors.*does not start like"),
    ("zip.safetensors", r"zip.safetensors.*zip archive.*\.pth"),
])
def test_load_checkpoint_names_the_file(files, name, message):
    with pytest.raises((ConversionError, FileNotFoundError), match=message):
        load_checkpoint(files / name)


def rewrite_config(src, dst, **changes):
    """A copy of checkpoint `src` whose stored config claims `changes` (the tensors unchanged)."""
    from safetensors import safe_open
    with safe_open(str(src), framework="pt") as f:
        metadata = f.metadata()
    config = json.loads(metadata["m2f_teach.config"]) | changes
    save_file(load_file(str(src)), str(dst), metadata=metadata | {"m2f_teach.config": json.dumps(config)})
    return dst


def test_stored_config_is_checked_before_anything_is_built(files, tmp_path, monkeypatch):
    """A small file that claims 2·10⁶ queries fails at once, naming query_feat; no real model is built."""
    import m2f_teach.convert.checkpoint as checkpoint
    built_on = []

    class Recording(Mask2Former):
        def __init__(self, config):
            built_on.append(torch.empty(0).device.type)
            super().__init__(config)

    monkeypatch.setattr(checkpoint, "Mask2Former", Recording)
    path = rewrite_config(files / "good.safetensors", tmp_path / "huge.safetensors", num_queries=2_000_000)
    with pytest.raises(ConversionError, match=r"panoptic_head.query_feat.weight: \(20, 64\) vs \(2000000, 64\)"):
        load_checkpoint(path)
    assert built_on == ["meta"]


@pytest.mark.parametrize("changes,message", [
    (dict(temperature=0), r"temperature must be a finite number > 0"),
    (dict(temperature=-1.0), r"temperature .* got -1.0"),
    (dict(temperature=float("nan")), r"temperature .* got nan"),
    (dict(num_heads=True), r"num_heads must be a positive integer, got True"),
    (dict(image_size=[64.5, 64]), r"image_size .*holds 64.5"),
    (dict(colour="red"), r"fields this m2f-teach does not know: \['colour'\]"),
])
def test_stored_config_fields_follow_m2fconfig_rules(files, tmp_path, changes, message):
    path = rewrite_config(files / "good.safetensors", tmp_path / "bad.safetensors", **changes)
    with pytest.raises(ConversionError, match=re.escape(f"{tmp_path}/bad.safetensors") + ".*" + message):
        load_checkpoint(path)


def test_a_misshaped_query_feat_is_named(files, tmp_path):
    state = load_file(str(files / "good.safetensors"))
    state["panoptic_head.query_feat.weight"] = torch.zeros(21, 64)
    from safetensors import safe_open
    with safe_open(str(files / "good.safetensors"), framework="pt") as f:
        metadata = f.metadata()
    save_file(state, str(tmp_path / "q.safetensors"), metadata=metadata)
    with pytest.raises(ConversionError) as err:
        load_checkpoint(tmp_path / "q.safetensors")
    lines = str(err.value).splitlines()
    assert "1 shape mismatches" in str(err.value) and len(lines) == 3
    assert "panoptic_head.query_feat.weight: (21, 64) vs (20, 64)" in lines[-1]


def test_a_misshaped_query_feat_is_named_in_conversion(mmdet_model):
    sd = dict(mmdet_model.state_dict())
    sd["panoptic_head.query_feat.weight"] = torch.zeros(20, 65)
    with pytest.raises(ConversionError, match=r"^panoptic_head.query_feat.weight has shape \(20, 65\) but "
                                              r"panoptic_head.query_embed.weight \(20, 64\)"):
        from_mmdet(sd, num_heads=4, num_points=8, num_groups=32)


def test_a_missing_ffn_key_is_named(mmdet_model):
    sd = dict(mmdet_model.state_dict())
    del sd["panoptic_head.pixel_decoder.encoder.layers.0.ffn.layers.0.0.weight"]
    with pytest.raises(ConversionError, match=r"encoder\.layers\.0\.ffn\.layers\.0\.0\.weight"):
        from_mmdet(sd, num_heads=4, num_points=8, num_groups=32)


def test_a_missing_pth_gets_no_resave_advice(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        read_state_dict(tmp_path / "gone.pth")
    assert "gone.pth: no such file" in str(err.value) and "Re-save" not in str(err.value)


def test_a_nested_trace_suffixes_repeated_names(tiny):
    from m2f_teach.tracing import trace

    class Twice(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model, self.config = tiny, tiny.config

        def forward(self, images):
            return self.model(images), self.model(images)

    names = trace(Twice(), torch.randn(1, 3, 64, 64)).names()
    assert len(names) == len(set(names))
    assert "model.panoptic_head.pixel_decoder.memory#1" in names


# ---- mmdet configs: read, never executed; heads and points never guessed ---------------------------
def test_a_config_file_is_never_executed(files, mmdet_model, tmp_path):
    model = from_mmdet(mmdet_model.state_dict(), str(files / "exec.py"), image_size=(64, 64))
    assert not (files / "EXECUTED").exists()
    assert (model.config.num_heads, model.config.num_points) == (4, 8)


def test_trust_config_executes_with_a_warning(files, mmdet_model):
    pytest.importorskip("mmengine")
    with pytest.warns(UserWarning, match=r"--trust-config: executing .*exec.py"):
        from_mmdet(mmdet_model.state_dict(), str(files / "exec.py"), trust_config=True, image_size=(64, 64))
    assert (files / "EXECUTED").exists()
    (files / "EXECUTED").unlink()


def test_heads_and_points_come_from_the_checkpoint_meta(mmdet_model, tmp_path, capsys):
    """4 heads × 8 points: refused without a config, exact with the meta['cfg'] text, while the
    old guess of 8 × 4 gives other masks."""
    sd = dict(mmdet_model.state_dict())
    path = tmp_path / "with_meta.pth"
    torch.save({"state_dict": sd, "meta": {"cfg": config_text(mmdet_model_cfg())}}, path)
    out = tmp_path / "m.safetensors"
    main(["convert", "--from", "mmdet", str(path), "-o", str(out)])
    converted = load_checkpoint(out)
    assert (converted.config.num_heads, converted.config.num_points, converted.config.num_groups) == (4, 8, 32)
    images = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    guessed = from_mmdet(sd, num_heads=8, num_points=4, num_groups=32, image_size=(64, 64))
    with torch.no_grad():
        want, got, wrong = mmdet_model(images)[1][-1], converted(images)[1][-1], guessed(images)[1][-1]
    assert torch.equal(want, got)
    assert (want - wrong).abs().max() > 0.1


def mmdet2_model_cfg(heads=4, points=8):
    """The same model in mmdet 2.x's config layout (mmcv 1.x `transformerlayers`)."""
    cfg = mmdet_model_cfg(heads, points)
    head = cfg["panoptic_head"]
    encoder, decoder = head["pixel_decoder"]["encoder"], head["transformer_decoder"]
    encoder["transformerlayers"] = dict(type="BaseTransformerLayer",
                                        attn_cfgs=dict(type="MultiScaleDeformableAttention",
                                                       **encoder.pop("layer_cfg")["self_attn_cfg"]),
                                        ffn_cfgs=dict(type="FFN", embed_dims=64, feedforward_channels=128, num_fcs=2),
                                        operation_order=("self_attn", "norm", "ffn", "norm"))
    decoder.pop("layer_cfg")
    decoder["transformerlayers"] = dict(type="DetrTransformerDecoderLayer",
                                        attn_cfgs=dict(type="MultiheadAttention", embed_dims=64, num_heads=heads),
                                        ffn_cfgs=dict(embed_dims=64, feedforward_channels=128, num_fcs=2),
                                        operation_order=("cross_attn", "norm", "self_attn", "norm", "ffn", "norm"))
    return cfg


def test_an_mmdet2_checkpoint_meta_config_is_read(mmdet_model, tmp_path):
    path = tmp_path / "v2.pth"
    torch.save({"state_dict": dict(mmdet_model.state_dict()),
                "meta": {"mmdet_version": "2.25.0", "config": config_text(mmdet2_model_cfg())}}, path)
    sd, meta_cfg = read_checkpoint(path)
    model = from_mmdet(sd, meta_cfg=meta_cfg, image_size=(64, 64))
    assert (model.config.num_heads, model.config.num_points, model.config.num_groups) == (4, 8, 32)


def test_read_checkpoint_returns_the_meta_cfg(mmdet_model, tmp_path):
    path = tmp_path / "m.pth"
    torch.save({"state_dict": dict(mmdet_model.state_dict()), "meta": {"cfg": "model = dict()"}}, path)
    sd, cfg = read_checkpoint(path)
    assert cfg == "model = dict()" and "panoptic_head.query_feat.weight" in sd


def test_the_literal_reader_follows_mmdets_own_configs():
    """mmdet's shipped Mask2Former config (with its _base_ files) reads, without running it, to the
    same model section as mmengine's Config.fromfile."""
    mmdet = pytest.importorskip("mmdet")
    pytest.importorskip("mmengine")
    from mmengine.config import Config
    from m2f_teach.convert.mmdet_config import load_meta_cfg, read_config_file
    path = Path(mmdet.__file__).parent / ".mim" / "configs" / "mask2former" / "mask2former_r50_8xb2-lsj-50e_coco.py"
    executed = Config.fromfile(str(path))
    assert read_config_file(path)["model"] == executed.to_dict()["model"]
    assert load_meta_cfg(executed.pretty_text, "x") == executed.to_dict()["model"]


# ---- offline HF conversion --------------------------------------------------------------------------
def test_hf_conversion_opens_no_socket(tmp_path, monkeypatch):
    pytest.importorskip("transformers")
    import huggingface_hub.constants
    from m2f_teach.convert.cli import load_hf_model
    from m2f_teach.convert.hf_reference import hf_resnet_config, random_hf_model
    snapshot = tmp_path / "models--someone--tiny-m2f" / "snapshots" / "0123abcd"
    random_hf_model(hf_resnet_config(), seed=0).save_pretrained(snapshot)
    (tmp_path / "models--someone--tiny-m2f" / "refs").mkdir()
    (tmp_path / "models--someone--tiny-m2f" / "refs" / "main").write_text("0123abcd")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)    # as on a user's machine
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    opened = []

    class NoSocket(socket.socket):
        def __init__(self, *args, **kwargs):
            opened.append(args)
            raise OSError("this test allows no network")

    monkeypatch.setattr(socket, "socket", NoSocket)
    model = load_hf_model("someone/tiny-m2f", cache_dir=tmp_path)
    assert type(model).__name__ == "Mask2FormerForUniversalSegmentation"
    with pytest.raises(ConversionError, match=r"someone/absent: not a folder and not in the local HF cache"):
        load_hf_model("someone/absent", cache_dir=tmp_path)
    assert opened == []
    assert huggingface_hub.constants.HF_HUB_OFFLINE is False          # restored afterwards


# ---- the shipped weights' checksum ------------------------------------------------------------------
def test_a_flipped_byte_in_the_shipped_weights_is_caught(tmp_path, monkeypatch):
    import m2f_teach.pretrained as pretrained
    for suffix in (".safetensors", ".json"):
        shutil.copy(pretrained._weights_file(suffix), tmp_path / f"w{suffix}")
    data = bytearray((tmp_path / "w.safetensors").read_bytes())
    data[-4:] = b"\xff\xff\xff\xff"                  # the last float becomes NaN
    (tmp_path / "w.safetensors").write_bytes(bytes(data))
    monkeypatch.setattr(pretrained, "_weights_file", lambda suffix: tmp_path / f"w{suffix}")
    with pytest.raises(ValueError, match=r"w.safetensors is damaged: sha256 .*expected 977c561a"):
        pretrained.load_pretrained()


# ---- training: checked first, saved on the way, resumable -------------------------------------------
def train_args(tmp_path, name, **changes):
    from m2f_teach.training.options import add_arguments
    args = add_arguments(argparse.ArgumentParser()).parse_args([])
    values = dict(steps=4, batch_size=2, val_every=1000, val_images=1, test_images=1, log_every=1, warmup=1,
                  device="cpu", workers=0, no_progress=True, out=str(tmp_path / f"{name}.safetensors"))
    for key, value in (values | changes).items():
        setattr(args, key, value)
    return args


@pytest.mark.parametrize("out", ["/proc/m2f-teach-x/y.safetensors", "{tmp}/a_file/y.safetensors"])
def test_train_out_is_checked_before_the_first_step(tmp_path, monkeypatch, out):
    from m2f_teach.training.train import train
    (tmp_path / "a_file").write_text("x")

    def no_step(self, images):
        raise AssertionError("a training step ran before --out was checked")

    monkeypatch.setattr(Mask2Former, "forward", no_step)
    out = out.format(tmp=tmp_path)
    with pytest.raises(ValueError, match=rf"--out {out}: cannot write"):
        train(train_args(tmp_path, "x", out=out))


def test_save_every_and_resume_give_the_same_weights(tmp_path):
    """A 4-step run saving every 2 steps; a second run resumes from its step-2 state (in a data
    worker, which draws the same batches) and ends with bitwise the same weights and losses."""
    from m2f_teach.training.train import train
    torch.set_num_threads(1)
    full = train(train_args(tmp_path, "full", save_every=2))
    state = torch.load(tmp_path / "full.state.pt", weights_only=True)
    assert state["steps_done"] == 2 and state["format"] == "m2f-teach-train-state/1"
    resumed = train(train_args(tmp_path, "resumed", resume=str(tmp_path / "full.state.pt"), workers=1))
    assert resumed["history"]["loss"] == full["history"]["loss"]
    a, b = load_file(str(tmp_path / "full.safetensors")), load_file(str(tmp_path / "resumed.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match=r"--resume .*full.state.pt: the run used --lr 0.001 \(this command: 0.002\)"):
        train(train_args(tmp_path, "other", resume=str(tmp_path / "full.state.pt"), lr=0.002))


def children_of(pid) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sigterm_saves_the_run_and_its_workers_exit(tmp_path):
    out = tmp_path / "run.safetensors"
    cmd = [sys.executable, "-u", "-m", "m2f_teach", "train", "--steps", "500", "--batch-size", "2", "--workers", "1",
           "--threads", "1", "--device", "cpu", "--no-progress", "--val-images", "1", "--test-images", "1",
           "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
                            env=os.environ | {"PYTHONPATH": str(REPO)})
    try:
        for line in proc.stdout:
            if line.startswith("step 5:"):
                break
        workers = children_of(proc.pid)
        assert workers, "a data worker should be running"
        proc.send_signal(signal.SIGTERM)
        rest = proc.stdout.read()
        assert proc.wait(timeout=120) == 128 + signal.SIGTERM
    finally:
        proc.kill()
    assert "continue with --resume" in rest and "Traceback" not in rest
    for suffix in (".safetensors", ".json", ".png", ".state.pt"):
        assert out.with_suffix(suffix).is_file()
    assert not list(tmp_path.glob(".*.tmp"))                  # nothing half-written left behind
    state = torch.load(out.with_suffix(".state.pt"), weights_only=True)
    assert state["steps_done"] >= 5 and json.loads(out.with_suffix(".json").read_text())["steps_done"] == state["steps_done"]
    deadline = time.time() + 10
    while time.time() < deadline and any(Path(f"/proc/{pid}").exists() for pid in workers):
        time.sleep(0.1)
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers), "a data worker outlived the run"


# ---- round two: the shipped checkpoint, weights, training, tables and the API ----------------------
def test_train_refuses_to_write_into_the_installed_package(tmp_path, monkeypatch, capsys):
    """The shipped checkpoint is never replaced by a run that meant to write elsewhere: a path
    inside m2f_teach/ needs --allow-package-write, and the missing-weights advice points elsewhere."""
    import m2f_teach.pretrained as pretrained
    from m2f_teach.training.options import check_package_write

    def no_step(self, images):
        raise AssertionError("a training step ran before --out was checked")

    monkeypatch.setattr(Mask2Former, "forward", no_step)
    shipped = Path(pretrained.__file__).parent / "weights" / "shapes_small.safetensors"
    before = shipped.read_bytes() if shipped.exists() else None
    err = cli_error(capsys, ["train", "--steps", "1", "--out", str(shipped)], status=2)
    assert f"--out {shipped}: inside the installed package" in err and "--allow-package-write" in err
    assert (shipped.read_bytes() if shipped.exists() else None) == before
    check_package_write(shipped.with_name("new.safetensors"), allow_package_write=True)     # the flag lets it through
    message = pretrained._missing_message(".safetensors")
    assert "--out m2f_teach/" not in message and "--out artifacts/shapes_small.safetensors" in message


@pytest.mark.parametrize("dtype,value,message", [
    (torch.int32, 1, r"is int32, expected floating-point weights"),
    (torch.float32, float("nan"), r"holds 1 NaN or infinite values"),
])
def test_convert_refuses_integer_or_nan_weights_naming_file_and_key(mmdet_model, tmp_path, capsys, dtype, value,
                                                                     message):
    sd = dict(mmdet_model.state_dict())
    key = "panoptic_head.cls_embed.weight"
    sd[key] = sd[key].clone().to(dtype)
    sd[key].view(-1)[0] = value
    path = tmp_path / "odd.pth"
    torch.save({"state_dict": sd}, path)
    err = cli_error(capsys, ["convert", "--from", "mmdet", str(path), "--num-heads", "4", "--num-points", "8",
                             "--num-groups", "32", "-o", str(tmp_path / "o.safetensors")])
    assert re.search(re.escape(str(path)) + ".*" + re.escape(key) + ".*" + message, err), err
    assert not (tmp_path / "o.safetensors").exists()


@pytest.mark.parametrize("change,message", [
    (lambda t: t.to(torch.int64), r"is int64, expected floating-point weights"),
    (lambda t: torch.full_like(t, float("nan")), r"holds 5184 NaN or infinite values \(of 5184\)"),
])
def test_load_checkpoint_refuses_integer_or_nan_weights_naming_file_and_key(files, tmp_path, change, message):
    from safetensors import safe_open
    state = load_file(str(files / "good.safetensors"))
    key = "panoptic_head.cls_embed.weight"
    assert state[key].numel() == 5184          # (K, C) = (81, 64)
    state[key] = change(state[key])
    with safe_open(str(files / "good.safetensors"), framework="pt") as f:
        metadata = f.metadata()
    save_file(state, str(tmp_path / "odd.safetensors"), metadata=metadata)
    with pytest.raises(ConversionError, match=re.escape(f"{tmp_path}/odd.safetensors: {key}") + " " + message):
        load_checkpoint(tmp_path / "odd.safetensors")


TINY_TRAIN = ["--batch-size", "2", "--image-size", "64", "64", "--num-encoder-layers", "1", "--threads", "1",
              "--workers", "0", "--val-images", "1", "--test-images", "1", "--no-progress", "--device", "cpu"]


def test_a_diverging_run_stops_before_matching_and_keeps_its_history(tmp_path, capsys):
    """--lr 1e6 makes the predictions NaN within a step or two: one line naming the step and the
    prediction, and the history so far in OUT.json and OUT.png (no NaN weights written)."""
    out = tmp_path / "run.safetensors"
    err = cli_error(capsys, ["train", "--lr", "1e6", "--warmup", "0", "--steps", "6", *TINY_TRAIN, "--out", str(out)])
    assert err.startswith("error: training diverged at step ") and err.count("\n") == 1, err
    assert "is not finite" in err and f"wrote the history to {out.with_suffix('.json')}" in err
    info = json.loads(out.with_suffix(".json").read_text())
    assert info["diverged"].startswith("step ") and info["test"] is None
    assert len(info["history"]["loss"]) == info["steps_done"] >= 1
    assert out.with_suffix(".png").is_file() and not out.exists()


def test_the_criterion_names_nan_predictions_instead_of_scipys_error():
    from m2f_teach.training.criterion import Mask2FormerCriterion
    from m2f_teach.training.matcher import HungarianMatcher
    criterion = Mask2FormerCriterion(num_classes=5, num_points=16)
    cls_pred = torch.zeros(1, 4, 6)                                             # (B, Q, K)
    mask_pred = torch.zeros(1, 4, 8, 8)                                         # (B, Q, Hm, Wm)
    mask_pred[0, 2, 3, 3] = float("nan")
    targets = [dict(labels=torch.tensor([1]), masks=torch.ones(1, 32, 32, dtype=torch.bool))]
    with pytest.raises(FloatingPointError, match=r"prediction 1 of 2 is not finite: mask_pred holds NaN"):
        criterion([cls_pred, cls_pred], [torch.zeros_like(mask_pred), mask_pred], targets)
    with pytest.raises(FloatingPointError, match=r"Hungarian matching: the cost matrix \(4, 1\) holds NaN"):
        HungarianMatcher(16)(cls_pred[0], mask_pred[0], targets[0]["labels"], targets[0]["masks"])


def test_ablate_records_a_diverging_variant_and_goes_on(tmp_path, monkeypatch, capsys):
    from m2f_teach.training import ablate
    monkeypatch.setitem(ablate.VARIANTS, "faithful", TINY_TRAIN)
    monkeypatch.setitem(ablate.VARIANTS, "no_reset", TINY_TRAIN + ["--lr", "1e6", "--warmup", "0"])
    monkeypatch.setitem(ablate.VARIANTS, "fpn_only", TINY_TRAIN + ["--deformable-encoder", "false"])
    main(["ablate", "--variants", "faithful", "no_reset", "fpn_only", "--seeds", "0", "--steps", "4",
          "--out-dir", str(tmp_path)])
    runs = json.loads((tmp_path / "ablations.json").read_text())["runs"]
    assert list(runs) == ["faithful", "no_reset", "fpn_only"]
    assert "test" in runs["faithful"] and "test" in runs["fpn_only"]
    assert runs["no_reset"]["diverged"].startswith("training diverged at step ")


def test_ctrl_c_while_the_command_starts_is_one_line_and_exit_130():
    """A Ctrl-C that lands while torch loads (simulated: the import of torch raises KeyboardInterrupt)."""
    code = ("import builtins, runpy, sys\n"
            "real_import = builtins.__import__\n"
            "def interrupted(name, *args, **kwargs):\n"
            "    if name.split('.')[0] == 'torch':\n"
            "        raise KeyboardInterrupt\n"
            "    return real_import(name, *args, **kwargs)\n"
            "builtins.__import__ = interrupted\n"
            "sys.argv = ['m2f_teach', 'table']\n"
            "runpy.run_module('m2f_teach', run_name='__main__', alter_sys=True)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                            env=os.environ | {"PYTHONPATH": str(REPO)}, timeout=120)
    assert (result.returncode, result.stderr) == (130, "interrupted\n"), result.stderr


@pytest.mark.parametrize("text,message", [
    ('{"test": {"miou": 0.5}, "hist', r"faithful.json: not valid JSON"),
    ('{"test": {"miou": 0.5}, "history": {"step": [], "loss": [], "val": []}}', r"faithful.json: no 'steps_done'"),
    ('[1, 2, 3]', r"faithful.json: holds a JSON list, expected the object train writes"),
    ('{"test": {"miou": 0.5}, "history": [1, 2]}', r"faithful.json: not the json train writes"),
])
def test_ablate_collect_names_a_broken_run_json(tmp_path, capsys, text, message):
    (tmp_path / "faithful.json").write_text(text)
    err = cli_error(capsys, ["ablate", "--collect", "--out-dir", str(tmp_path)], status=2)
    assert re.search(re.escape(str(tmp_path)) + "/" + message, err) and err.count("\n") == 1, err


@pytest.mark.parametrize("name,starts", [("t.html", "<table"), ("t.tex", "% Mask2Former shapes"), ("t.json", "[")])
def test_table_output_suffix_picks_the_format(tmp_path, capsys, name, starts):
    main(["table", "--preset", "small", "-o", str(tmp_path / name)])
    text = (tmp_path / name).read_text()
    assert text.startswith(starts) and ("\\begin{tabular}" in text) == (name == "t.tex")


def test_table_refuses_a_format_its_output_suffix_contradicts(tmp_path, capsys):
    err = cli_error(capsys, ["table", "--preset", "small", "--format", "md", "-o", str(tmp_path / "t.html")], status=2)
    assert f"--output {tmp_path}/t.html is a .html file but --format md" in err
    assert not (tmp_path / "t.html").exists()


@pytest.mark.parametrize("text", ["", ","])
def test_table_refuses_empty_columns(capsys, text):
    err = cli_error(capsys, ["table", "--preset", "small", "--columns", text], status=2)
    assert "--columns" in err and f"got {text!r}" in err


def test_summary_refuses_a_negative_depth(capsys):
    err = cli_error(capsys, ["summary", "--preset", "small", "--depth", "-1"], status=2)
    assert err == "error: --depth -1: expected an integer ≥ 0 (0: the model alone, 1: its parts, ...)\n"


@pytest.mark.parametrize("dpi", ["100000", "0"])
def test_diagram_dpi_is_bounded_before_drawing(tmp_path, capsys, dpi):
    err = cli_error(capsys, ["diagram", "--preset", "small", "--dpi", dpi, "-o", str(tmp_path / "a.png")], status=2)
    assert err.startswith(f"error: --dpi {dpi}: expected 10 to 600") and not (tmp_path / "a.png").exists()


def test_compare_hf_names_the_folder_whose_weights_do_not_fit_its_config(tmp_path, capsys):
    """HF would fill the misfits with random values (or print its own report and raise): one
    error naming the folder and each key, for compare and convert alike."""
    pytest.importorskip("transformers")
    from m2f_teach.convert.hf_reference import hf_resnet_config, random_hf_model
    folder = tmp_path / "hf"
    random_hf_model(hf_resnet_config(), seed=0).save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    config["num_queries"] += 3
    (folder / "config.json").write_text(json.dumps(config))
    capsys.readouterr()                                  # what saving printed
    for argv in (["compare", "--hf", str(folder)], ["convert", "--from", "hf", str(folder), "-o", str(tmp_path / "o.safetensors")]):
        err = cli_error(capsys, argv)
        assert err.startswith(f"error: cannot load {folder}: its weights do not fit its config.json:"), err
        assert "queries_features.weight: (20, 64) vs (23, 64)" in err and "ignore_mismatched_sizes" not in err


def test_compare_mmdet_names_the_files_when_the_config_is_another_models(mmdet_model, tmp_path, capsys):
    mmdet = pytest.importorskip("mmdet")
    pytest.importorskip("mmengine")
    config = Path(mmdet.__file__).parent / ".mim" / "configs" / "mask2former" / "mask2former_r50_8xb2-lsj-50e_coco.py"
    weights = tmp_path / "small.pth"
    torch.save({"state_dict": dict(mmdet_model.state_dict())}, weights)
    err = cli_error(capsys, ["compare", "--mmdet", str(weights), "--config", str(config), "--resize", "64", "64"])
    assert err.startswith(f"error: --mmdet {weights} with --config {config}: cannot load the weights"), err
    assert "panoptic_head.query_feat.weight: (20, 64) vs (100, 256)" in err or "shape mismatches" in err
    assert "size mismatch for" not in err and len(err.splitlines()) < 30


def test_a_model_too_large_for_memory_is_refused_with_its_estimate(monkeypatch):
    import m2f_teach.model.model as model_module
    monkeypatch.setattr(model_module, "memory_of", lambda device: 64 * 2**30)     # a 64 GiB machine
    with pytest.raises(ValueError, match=r"weights alone need about 477 GiB \(1.28e\+11 numbers at Q=1000000000, "
                                         r"C=64, K=81\); cpu has 64 GiB"):
        Mask2Former(M2FConfig.small(num_queries=10**9))
    monkeypatch.setattr(model_module, "memory_of", lambda device: 2**20)          # 1 MiB: meta builds all the same
    with torch.device("meta"):
        assert Mask2Former(M2FConfig.small(num_queries=1000)).panoptic_head.query_feat.weight.shape == (1000, 64)


@pytest.mark.parametrize("device,message", [
    ("cuda", r"map_location='cuda': this torch sees no CUDA device; load on 'cpu'"),
    ("gpu", r"map_location='gpu': not a device"),
])
def test_load_checkpoint_names_a_device_it_cannot_use(files, monkeypatch, device, message):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=message):
        load_checkpoint(files / "good.safetensors", map_location=device)


def test_a_safetensors_header_is_not_taken_for_a_pickle(tmp_path):
    """A header length whose first byte is 0x80 (1 file in 256) once read as 'a Python pickle'."""
    from m2f_teach.convert.checkpoint import describe_file
    header = b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'.ljust(128, b" ")
    path = tmp_path / "x.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header + b"\0\0")      # 2 of its 4 data bytes
    assert len(header) == 0x80 and describe_file(path).startswith("its contents do not match its header")


def test_load_checkpoint_names_the_file_of_an_unknown_hf_backbone_type(files, tmp_path):
    pytest.importorskip("transformers")
    from safetensors import safe_open
    with safe_open(str(files / "good.safetensors"), framework="pt") as f:
        metadata = f.metadata()
    metadata["m2f_teach.hf_backbone"] = json.dumps({"model_type": "no-such-backbone", "depths": [2, 2]})
    save_file(load_file(str(files / "good.safetensors")), str(tmp_path / "hf.safetensors"), metadata=metadata)
    with pytest.raises(ConversionError) as err:
        load_checkpoint(tmp_path / "hf.safetensors")
    message = str(err.value)
    assert message.startswith(f"{tmp_path}/hf.safetensors: its HF backbone has model_type 'no-such-backbone'")
    assert "swin" not in message and len(message) < 250


@pytest.mark.parametrize("size", [[4, 6], [3, 5], [0, 0]])
def test_rle_decode_refuses_a_size_its_counts_disagree_with(size):
    from m2f_teach.predict.rle import decode, encode
    mask = torch.zeros(4, 5, dtype=torch.bool)
    mask[1:3, 2:4] = True
    rle = encode(mask.numpy())
    assert (decode(rle) == mask.numpy()).all() and rle["size"] == [4, 5]
    with pytest.raises(ValueError, match=rf"RLE size \[{size[0]}, {size[1]}\] holds {size[0] * size[1]} pixels "
                                         r"but its counts add up to 20"):
        decode(dict(rle, size=size))
