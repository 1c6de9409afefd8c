"""`predict` takes images as mmdet, detectron2 and HF take them: every common type converted, each
value-changing conversion said once, nothing silently wrong. References are independent: Pillow's
own conversions (`convert("RGB")`), the alpha-compositing formula written out, the uint8 image
the others were made from.
"""
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from m2f_teach.data import TEST_SEED, draw_sample
from m2f_teach.predict import Predictor
from m2f_teach.predict.preprocess import InputNote, as_image_tensor


@pytest.fixture(scope="module")
def predictor():
    return Predictor.from_weights()


@pytest.fixture(scope="module")
def rgb():
    return draw_sample(2, TEST_SEED)["image"]                   # (128, 128, 3) uint8


def chw(array):
    return torch.from_numpy(np.asarray(array, dtype=np.float32)).permute(2, 0, 1)


def converted(image, **kw):
    notes = []
    return as_image_tensor(image, "img", notes=notes, **kw), notes


def test_grayscale_file_array_and_tensor_are_repeated_to_rgb(rgb, tmp_path):
    gray = Image.fromarray(rgb).convert("L")
    gray.save(tmp_path / "gray.png")
    want = chw(gray.convert("RGB"))                             # Pillow's own L → RGB
    for image in (str(tmp_path / "gray.png"), gray, np.asarray(gray), np.asarray(gray)[..., None],
                  torch.from_numpy(np.asarray(gray).copy())[None]):
        got, notes = converted(image)
        assert torch.equal(got, want) and notes == []


def test_rgba_is_composited_on_black_or_white_and_said_once(rgb, tmp_path, predictor):
    alpha = np.tile(np.linspace(0, 255, 128).astype(np.uint8), (128, 1))[..., None]
    rgba = np.concatenate([rgb, alpha], -1)
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    a = alpha.astype(np.float32) / 255
    for background, value in (("black", 0.0), ("white", 255.0)):
        got, notes = converted(str(tmp_path / "rgba.png"), background=background)
        want = chw(rgb * a + value * (1 - a))                   # over-compositing, written out
        assert torch.allclose(got, want, atol=1e-4)
        assert [kind for kind, _ in notes] == ["alpha"] and background in notes[0][1]
    with pytest.warns(InputNote) as said:
        predictor([rgba, rgba, str(tmp_path / "rgba.png")], task="semantic")
    assert len(said) == 1 and "image 0, image 1" in str(said[0].message)


def test_palette_image_gives_the_rgb_image(rgb, tmp_path):
    palette = Image.fromarray(rgb).quantize(64)
    palette.save(tmp_path / "p.png")
    assert Image.open(tmp_path / "p.png").mode == "P"
    got, notes = converted(str(tmp_path / "p.png"))
    assert torch.equal(got, chw(palette.convert("RGB"))) and notes == []


def test_16_bit_png_is_scaled_not_clipped(rgb, tmp_path):
    """A 16-bit gray PNG holding the 8-bit values × 257 gives back the 8-bit values exactly
    (old: `convert("RGB")` clipped everything above 255 to white)."""
    gray8 = np.asarray(Image.fromarray(rgb).convert("L"))
    Image.fromarray(gray8.astype(np.uint16) * 257).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    got, notes = converted(str(tmp_path / "g16.png"))
    assert torch.equal(got, chw(np.repeat(gray8[..., None], 3, -1)))
    assert [kind for kind, _ in notes] == ["16-bit"]
    got, _ = converted(gray8.astype(np.uint16) * 257)          # a uint16 array too
    assert torch.equal(got, chw(np.repeat(gray8[..., None], 3, -1)))


@pytest.mark.parametrize("kind", ["tensor", "array"])
def test_float_image_in_0_1_is_scaled_and_gives_the_uint8_result(rgb, predictor, kind):
    """torchvision's `ToTensor` gives (3, H, W) floats in [0, 1]: the same results as the
    uint8 image (old: no detections, no warning)."""
    unit = rgb.astype(np.float32) / 255
    image = torch.from_numpy(unit).permute(2, 0, 1) if kind == "tensor" else unit
    want = predictor(rgb, task="semantic")[0]["segmentation"]
    with pytest.warns(InputNote, match=r"\[0, 1\].*255"):
        got = predictor(image, task="semantic")[0]["segmentation"]
    assert torch.equal(got, want)
    found = predictor(image, task="instance")[0]["instances"]
    assert [i["label"] for i in found] == [i["label"] for i in predictor(rgb)[0]["instances"]] != []


def test_read_only_array_is_copied_without_a_warning(rgb, predictor):
    frozen = np.asarray(Image.fromarray(rgb))                   # np.asarray(PIL image) is read-only
    assert not frozen.flags.writeable
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert predictor(frozen, task="semantic")[0]["segmentation"].shape == (128, 128)


@pytest.mark.parametrize("image,expected", [
    (np.full((64, 64, 3), np.nan, np.float32), "NaN or infinite"),
    (np.full((64, 64, 3), -1.5, np.float32), "float values from -1.5 to -1.5, expected 0..255"),
    (np.full((64, 64, 3), 300, np.int32), "integer values from 300 to 300"),
    (np.zeros((64, 64, 2), np.uint8), r"shape \(64, 64, 2\)")])
def test_values_that_cannot_be_an_image_are_refused_with_its_name(predictor, image, expected):
    with pytest.raises(ValueError, match=expected) as err:
        predictor([np.zeros((64, 64, 3), np.uint8), image], names=["ok.png", "bad.png"])
    assert "bad.png" in str(err.value)


def test_decompression_bomb_names_the_file(tmp_path, monkeypatch, cli, capsys):
    """Pillow's guard (a 15000×15000 PNG is over it) names the file; a lowered limit stands in
    for the large file here."""
    Image.new("RGB", (100, 100)).save(tmp_path / "huge.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)       # 10000 > 2 × 1000: an error
    assert cli(["predict", str(tmp_path / "huge.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(tmp_path / "huge.png") in err and "decompression bomb" in err
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 8000)       # between 1× and 2×: Pillow only warns
    assert cli(["predict", str(tmp_path / "huge.png")]) == 2
    assert "decompression bomb" in capsys.readouterr().err


def test_cli_takes_every_mode_with_one_note(rgb, tmp_path, cli, capsys):
    paths = []
    for mode in ("L", "RGBA", "P", "LA", "CMYK"):
        paths.append(str(tmp_path / f"{mode}.{'jpg' if mode == 'CMYK' else 'png'}"))
        image = Image.fromarray(rgb).convert(mode)
        if mode in ("RGBA", "LA"):
            image.putalpha(128)
        image.save(paths[-1])
    assert cli(["predict", *paths, "--task", "semantic", "--background", "white"]) == 0
    captured = capsys.readouterr()
    assert captured.err.count("note: ") == 1 and "composited on white" in captured.err
    assert "RGBA.png, " in captured.err and "LA.png" in captured.err
    assert captured.out.count("classes") == 5
