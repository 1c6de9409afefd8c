"""`m2f_teach.export`: an ONNX file run in onnxruntime and a `torch.export` program, each
against the PyTorch model (≤ 1e-4) at another batch size than the one exported with.

A narrow config with the seed's structure but fewer layers keeps each export to seconds; the
README gives the figures for the shipped checkpoint (`python -m m2f_teach export ...`).
"""
import pytest
import torch

from m2f_teach import M2FConfig, Mask2Former
from m2f_teach.convert import save_checkpoint
from m2f_teach.export import check_onnx, check_program, export_onnx, export_program

TOL = 1e-4




@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    config = M2FConfig.small(image_size=(64, 96), num_encoder_layers=1, num_decoder_layers=2, num_queries=8)
    return Mask2Former(config).eval()


def images(batch, size=(64, 96)):
    return torch.randn(batch, 3, *size, generator=torch.Generator().manual_seed(batch))


def test_onnx_runs_in_onnxruntime_like_pytorch(tiny, tmp_path):
    pytest.importorskip("onnxruntime")
    path = tmp_path / "tiny.onnx"
    export_onnx(tiny, path)
    for batch in (1, 3):                       # exported with a batch of 2
        assert check_onnx(path, tiny, images(batch)) <= TOL
    # the fast kernels are back in place after the export
    from m2f_teach import kernels
    assert kernels.enabled()
    # and a wrong model is told apart: the check can fail
    other = Mask2Former(tiny.config).eval()
    assert check_onnx(path, other, images(1)) > 1e-2


def test_pt2_program_runs_like_pytorch(tiny, tmp_path):
    path = tmp_path / "tiny.pt2"
    torch.export.save(export_program(tiny), path)
    for batch in (1, 3):
        assert check_program(path, tiny, images(batch)) <= TOL


def test_cli_exports_converted_weights_and_checks_them(cli, tiny, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    weights = save_checkpoint(tiny, tmp_path / "tiny.safetensors")
    out = tmp_path / "tiny.onnx"
    assert cli(["export", "--weights", str(weights), "--format", "onnx", "--image-size", "64", "64",
                "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "images (B, 3, 64, 64), B dynamic" in text and "check: onnxruntime vs PyTorch" in text
    assert out.stat().st_size > 1e5


@pytest.mark.parametrize("args,expected", [
    (["--format", "tflite", "-o", "m.tflite"], "--format tflite: expected onnx or pt2"),
    (["--format", "onnx", "-o", "m.pt2"], "-o m.pt2: expected a file name ending in .onnx"),
    (["--format", "onnx", "--image-size", "100", "100", "-o", "m.onnx"], "multiples of 32"),
    (["--format", "pt2", "--weights", "missing.safetensors", "-o", "m.pt2"], "no checkpoint at missing.safetensors")])
def test_bad_arguments_are_one_line(cli, tmp_path, capsys, monkeypatch, args, expected):
    monkeypatch.chdir(tmp_path)
    assert cli(["export", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and expected in err and err.count("\n") == 1, err
