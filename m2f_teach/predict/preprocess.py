"""Images in, padded normalised batches out: mmdetection's test pipeline and `DetDataPreprocessor`.

    images, metas = preprocess([photo, "cat.jpg"], scale=(1333, 800))

1. Load: a path (read with Pillow), a PIL image, a numpy `(H, W, 3)` array or a torch
   `(3, H, W)` tensor, as mmdet, detectron2 and HF take them: grayscale (`(H, W)`, `(H, W, 1)`,
   `(1, H, W)`, modes L and 1) is repeated to RGB; RGBA, LA and palette images with
   transparency are composited on `background` (black or white); 16-bit images (mode I;16, a
   uint16 array) are divided by 257; floats in [0, 1] (torchvision's `ToTensor`) are scaled by
   255. Each conversion that changes values is said once per call (`InputNote`, a warning;
   the CLI prints it as one `note:` line). Floats outside [0, 255] (an already normalised
   image), NaN or infinite values are refused with the image's name; read-only arrays are
   copied. Pillow's decompression-bomb guard names the file.
2. Resize like mmdet's `Resize(scale=(1333, 800), keep_ratio=True)`: one factor
   `min(long / max(h, w), short / min(h, w))`, bilinear (cv2's `INTER_LINEAR`, no antialias);
   `scale=None` keeps the image's size; the size the model then runs at is capped at
   `max_input_pixels` (default `MAX_INPUT_PIXELS`, 2²³ = 4096×2048; 0 = no cap).
3. Normalise with mmdet's RGB mean and std (`m2f_teach.data.IMAGE_MEAN`, `IMAGE_STD`).
4. Pad bottom and right with zeros (after normalisation, as `DetDataPreprocessor` does) to the
   next multiple of 32 (or to a fixed `pad_to` size, as an exported file needs), and record
   `img_shape` (resized) and `ori_shape` (original) so that
   results go back to each image's own size.

Mask2Former's pixel decoder does not mask padding (the seed's `# no padding`, as in mmdet and
HF): padded zeros are seen as image. So that an image's result never depends on the other
images of a call, each image is padded only to its own next multiple of 32, and images of
different padded sizes run as separate batches (`batches`).
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..data.shapes import normalise_pixels

SIZE_DIVISOR = 32          # the backbone's largest stride
MIN_SIDE = 32              # smaller images have no stride-32 pixel of their own
COCO_TEST_SCALE = (1333, 800)   # mmdet's Mask2Former COCO test pipeline: (long, short) edge
MAX_INPUT_PIXELS = 2**23        # the largest padded size the model runs at by default (4096×2048)
BACKGROUNDS = {"black": 0.0, "white": 255.0}


class InputNote(UserWarning):
    """A conversion that changed an image's values (alpha composited, 16-bit or [0, 1] scaled)."""


@dataclass
class ImageMeta:
    """Where one image came from and the sizes it went through, `(h, w)` each."""
    name: str
    ori_shape: tuple[int, int]     # as given
    img_shape: tuple[int, int]     # after the resize
    pad_shape: tuple[int, int]     # after padding (to a multiple of 32, or to `pad_to`)
    notes: list = field(default_factory=list)    # (kind, text) of each conversion made


def pil_to_array(image, name: str, notes: list) -> np.ndarray:
    """A PIL image of any mode → `(H, W)`, `(H, W, 3)` or `(H, W, 4)` array (uint8, uint16 or float32)."""
    mode = image.mode
    if mode in ("RGB", "RGBA", "L"):
        return np.array(image)
    if mode == "1":
        return np.array(image.convert("L"))
    if mode.startswith("I;16") or mode == "I":
        array = np.array(image).astype(np.int64)
        if array.size and (array.min() < 0 or array.max() > 65535):
            raise ValueError(f"{name}: {mode} image with values from {array.min()} to {array.max()}, "
                             f"expected 0..65535 (a 16-bit image)")
        return array.astype(np.uint16)
    if mode == "F":
        return np.array(image, dtype=np.float32)
    if mode == "P":
        return np.array(image.convert("RGBA" if "transparency" in image.info else "RGB"))
    if mode in ("LA", "PA", "La", "RGBa"):
        return np.array(image.convert("RGBA"))
    return np.array(image.convert("RGB"))                                    # CMYK, YCbCr, LAB, HSV


def load_image(path: str | os.PathLike, notes: list | None = None) -> np.ndarray:
    """An image file (Pillow) → its pixels as `pil_to_array` gives them; `as_image_tensor` makes
    them RGB. Unreadable files, and files over Pillow's decompression-bomb limit, name the file."""
    from PIL import Image, UnidentifiedImageError
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such image file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ValueError(f"{path}: {err.args[0].split(' could be')[0]}, above Pillow's limit "
                         f"(a guard against decompression bombs); if you trust the file, raise "
                         f"PIL.Image.MAX_IMAGE_PIXELS") from None
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise ValueError(f"{path}: cannot read it as an image (corrupt or not an image format "
                         f"Pillow reads: {type(err).__name__})") from None
    return pil_to_array(image, str(path), notes if notes is not None else [])


def as_image_tensor(image, name: str = "image", background: str = "black",
                    notes: list | None = None) -> torch.Tensor:
    """Any accepted image → `(3, H, W)` float32 RGB on the 0..255 scale (see the module doc).
    `notes` collects `(kind, text)` for each conversion that changed values."""
    notes = notes if notes is not None else []
    if background not in BACKGROUNDS:
        raise ValueError(f"background {background!r}: expected black or white")
    if isinstance(image, (str, os.PathLike)):
        image = load_image(image, notes)
    elif type(image).__module__.startswith("PIL."):
        image = pil_to_array(image, name, notes)
    if isinstance(image, np.ndarray):
        if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] not in (1, 3, 4)):
            raise ValueError(f"{name}: numpy image of shape {image.shape}, expected (H, W, 3) RGB "
                             f"(or (H, W) / (H, W, 1) gray, (H, W, 4) RGBA)")
        sixteen_bit = image.dtype == np.uint16
        if image.dtype.kind in "iu" and image.dtype.itemsize > 1:
            image = image.astype(np.int64)                 # torch has few uint16 ops
        if not image.flags.writeable:
            image = image.copy()                           # torch.from_numpy warns on read-only memory
        try:
            pixels = torch.from_numpy(np.ascontiguousarray(image))
        except TypeError:
            raise TypeError(f"{name}: numpy dtype {image.dtype}, expected uint8, uint16 or float") from None
        pixels = pixels[..., None] if pixels.dim() == 2 else pixels                   # (H, W, C)
    elif isinstance(image, torch.Tensor):
        pixels = image.detach().cpu()
        pixels = pixels[None] if pixels.dim() == 2 else pixels
        if pixels.dim() != 3 or pixels.shape[0] not in (1, 3, 4):
            raise ValueError(f"{name}: tensor image of shape {tuple(image.shape)}, expected (3, H, W) RGB "
                             f"(or (H, W) / (1, H, W) gray, (4, H, W) RGBA)")
        pixels = pixels.permute(1, 2, 0)                                       # (H, W, C)
        sixteen_bit = pixels.dtype == torch.uint16
        if sixteen_bit:
            pixels = pixels.to(torch.int64)
    else:
        raise TypeError(f"{name}: {type(image).__name__} is not an image; expected a path, "
                        f"a PIL image, a numpy (H, W, 3) array or a torch (3, H, W) tensor")
    if pixels.dtype == torch.bool or pixels.is_complex():
        raise TypeError(f"{name}: dtype {pixels.dtype}, expected uint8, uint16 or float on the 0..255 scale")
    h, w = pixels.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise ValueError(f"{name}: image is {h}×{w} pixels, expected at least {MIN_SIDE} on each "
                         f"side (the backbone's largest stride)")
    pixels = scale_to_255(pixels, name, sixteen_bit, notes)                   # (H, W, C) float32
    channels = pixels.shape[-1]
    if channels == 4:
        alpha = pixels[..., 3:] / 255.0                                       # (H, W, 1)
        if bool((alpha < 1).any()):
            notes.append(("alpha", f"transparent pixels composited on {background}"))
        pixels = pixels[..., :3] * alpha + BACKGROUNDS[background] * (1 - alpha)
    elif channels == 1:
        pixels = pixels.expand(h, w, 3)
    return pixels.permute(2, 0, 1).contiguous()                               # (3, H, W)


def scale_to_255(pixels: torch.Tensor, name: str, sixteen_bit: bool, notes: list) -> torch.Tensor:
    """uint8 as is; 16-bit ÷ 257; float in [0, 1] × 255; anything else outside 0..255 refused."""
    if pixels.dtype == torch.uint8:
        return pixels.float()
    if not pixels.dtype.is_floating_point:
        low, high = int(pixels.min()), int(pixels.max())
        if sixteen_bit:
            notes.append(("16-bit", "16-bit values divided by 257 to 0..255"))
            return pixels.float() / 257.0
        if low < 0 or high > 255:
            raise ValueError(f"{name}: integer values from {low} to {high}, expected 0..255 (8-bit) "
                             f"or 0..65535 (16-bit)")
        return pixels.float()
    pixels = pixels.float()
    if not bool(torch.isfinite(pixels).all()):
        raise ValueError(f"{name}: the image contains NaN or infinite values")
    low, high = float(pixels.min()), float(pixels.max())
    if low < 0 or high > 255:
        raise ValueError(f"{name}: float values from {low:.3g} to {high:.3g}, expected 0..255 (or 0..1); "
                         f"give the image before normalisation")
    if 0 < high <= 1:
        notes.append(("unit float", "float values in [0, 1] (as torchvision's ToTensor gives) "
                                    "multiplied by 255"))
        return pixels * 255.0
    return pixels


def rescale_size(size: tuple[int, int], scale: tuple[int, int]) -> tuple[int, int]:
    """mmcv's `rescale_size` with `keep_ratio=True`: fit the long edge in `max(scale)` and the
    short edge in `min(scale)`, one factor for both axes."""
    h, w = size
    factor = min(max(scale) / max(h, w), min(scale) / min(h, w))
    return int(h * factor + 0.5), int(w * factor + 0.5)


def preprocess_one(image, name: str = "image", scale: tuple[int, int] | None = COCO_TEST_SCALE,
                   background: str = "black", pad_to: tuple[int, int] | None = None,
                   max_input_pixels: int = MAX_INPUT_PIXELS) -> tuple[torch.Tensor, ImageMeta]:
    """One image → `(3, H_pad, W_pad)` normalised and padded, and its `ImageMeta`."""
    notes: list = []
    image = as_image_tensor(image, name, background, notes)                  # (3, h, w)
    ori_shape = tuple(image.shape[-2:])
    if scale is not None:
        size = rescale_size(ori_shape, scale)
        if size != ori_shape:
            image = F.interpolate(image[None], size=size, mode="bilinear", align_corners=False)[0]
    img_shape = tuple(image.shape[-2:])
    if min(img_shape) < MIN_SIDE:
        raise ValueError(f"{name}: resized to {img_shape[0]}×{img_shape[1]}, below {MIN_SIDE} pixels; "
                         f"choose a larger scale than {scale}")
    h, w = img_shape
    H, W = -(-h // SIZE_DIVISOR) * SIZE_DIVISOR, -(-w // SIZE_DIVISOR) * SIZE_DIVISOR
    if pad_to is not None:
        if h > pad_to[0] or w > pad_to[1]:
            raise ValueError(f"{name}: resized to {h}×{w}, larger than the {pad_to[0]}×{pad_to[1]} the "
                             f"model takes; export it at --image-size {H} {W}")
        if (H, W) != tuple(pad_to):
            notes.append((f"padded {H} {W}", f"padded to {pad_to[0]}×{pad_to[1]} (the exported size), where "
                          f"predict pads to {H}×{W}: results can differ (padding is seen as image); "
                          f"export with --image-size {H} {W} to match"))
        H, W = pad_to
    if max_input_pixels and H * W > max_input_pixels:
        raise ValueError(f"{name}: the model would run at {H}×{W} = {H * W / 1e6:.1f} Mpixels, above the "
                         f"limit of {max_input_pixels / 1e6:.1f} Mpixels (memory grows with it); resize "
                         f"the image, or raise the limit (--max-input-pixels N, max_input_pixels=N; 0: none)")
    image = F.pad(normalise_pixels(image), (0, W - w, 0, H - h), value=0.0)         # (3, H_pad, W_pad)
    return image, ImageMeta(name, ori_shape, img_shape, (H, W), notes)


def preprocess(images, scale: tuple[int, int] | None = COCO_TEST_SCALE, names=None,
               background: str = "black", pad_to: tuple[int, int] | None = None,
               max_input_pixels: int = MAX_INPUT_PIXELS) -> tuple[list[torch.Tensor], list[ImageMeta]]:
    """A list of images (or one) → per-image padded tensors and metas (see the module doc)."""
    if not isinstance(images, (list, tuple)):
        images = [images]
    if names is None:
        names = [str(im) if isinstance(im, (str, os.PathLike)) else f"image {i}" for i, im in enumerate(images)]
    out = [preprocess_one(im, n, scale, background, pad_to, max_input_pixels) for im, n in zip(images, names)]
    return [t for t, _ in out], [m for _, m in out]


def batches(tensors: list[torch.Tensor], max_batch: int = 8) -> list[list[int]]:
    """Indices of images that share a padded size, in groups of at most `max_batch`."""
    groups: dict[tuple, list[int]] = {}
    for i, t in enumerate(tensors):
        groups.setdefault(tuple(t.shape[-2:]), []).append(i)
    out = []
    for idx in groups.values():
        out += [idx[k:k + max_batch] for k in range(0, len(idx), max_batch)]
    return out
