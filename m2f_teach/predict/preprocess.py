"""Images in, padded normalised batches out: mmdetection's test pipeline and `DetDataPreprocessor`.

    images, metas = preprocess([photo, "cat.jpg"], scale=(1333, 800))

1. Load: a path (read with Pillow), a PIL image, a numpy `(H, W, 3)` array or a torch
   `(3, H, W)` tensor, RGB, values on the 0..255 scale (uint8 or float).
2. Resize like mmdet's `Resize(scale=(1333, 800), keep_ratio=True)`: one factor
   `min(long / max(h, w), short / min(h, w))`, bilinear (cv2's `INTER_LINEAR`, no antialias);
   `scale=None` keeps the image's size.
3. Normalise with mmdet's RGB mean and std (`m2f_teach.data.IMAGE_MEAN`, `IMAGE_STD`).
4. Pad bottom and right with zeros (after normalisation, as `DetDataPreprocessor` does) to the
   next multiple of 32, and record `img_shape` (resized) and `ori_shape` (original) so that
   results go back to each image's own size.

Mask2Former's pixel decoder does not mask padding (the seed's `# no padding`, as in mmdet and
HF): padded zeros are seen as image. So that an image's result never depends on the other
images of a call, each image is padded only to its own next multiple of 32, and images of
different padded sizes run as separate batches (`batches`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..data.shapes import normalise_pixels

SIZE_DIVISOR = 32          # the backbone's largest stride
MIN_SIDE = 32              # smaller images have no stride-32 pixel of their own
COCO_TEST_SCALE = (1333, 800)   # mmdet's Mask2Former COCO test pipeline: (long, short) edge


@dataclass
class ImageMeta:
    """Where one image came from and the sizes it went through, `(h, w)` each."""
    name: str
    ori_shape: tuple[int, int]     # as given
    img_shape: tuple[int, int]     # after the resize
    pad_shape: tuple[int, int]     # after padding to a multiple of 32


def load_image(path: str | os.PathLike, to_rgb: bool = False) -> np.ndarray:
    """`(H, W, 3)` uint8 RGB from an image file (Pillow). `to_rgb` converts grayscale/RGBA."""
    from PIL import Image, UnidentifiedImageError
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such image file")
    try:
        with Image.open(path) as image:
            image.load()
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise ValueError(f"{path}: cannot read it as an image (corrupt or not an image format "
                         f"Pillow reads: {type(err).__name__})") from None
    if image.mode != "RGB":
        if not to_rgb:
            raise ValueError(f"{path}: image mode {image.mode} ({len(image.getbands())} channels), "
                             f"expected RGB (3 channels); convert it, e.g. with --to-rgb")
        image = image.convert("RGB")
    return np.asarray(image, dtype=np.uint8).copy()


def as_image_tensor(image, name: str = "image", to_rgb: bool = False) -> torch.Tensor:
    """Any accepted image → `(3, H, W)` float32 on the 0..255 scale."""
    if isinstance(image, (str, os.PathLike)):
        image = load_image(image, to_rgb)
    elif type(image).__module__.startswith("PIL."):
        if image.mode != "RGB":
            if not to_rgb:
                raise ValueError(f"{name}: PIL image mode {image.mode}, expected RGB (3 channels)")
            image = image.convert("RGB")
        image = np.asarray(image, dtype=np.uint8).copy()
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(f"{name}: numpy image of shape {image.shape}, expected (H, W, 3) RGB")
        image = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)   # (3, H, W)
    elif isinstance(image, torch.Tensor):
        if image.dim() != 3 or image.shape[0] != 3:
            raise ValueError(f"{name}: tensor image of shape {tuple(image.shape)}, expected (3, H, W) RGB")
    else:
        raise TypeError(f"{name}: {type(image).__name__} is not an image; expected a path, "
                        f"a PIL image, a numpy (H, W, 3) array or a torch (3, H, W) tensor")
    if image.dtype == torch.bool or image.is_complex():
        raise TypeError(f"{name}: dtype {image.dtype}, expected uint8 or float on the 0..255 scale")
    h, w = image.shape[-2:]
    if min(h, w) < MIN_SIDE:
        raise ValueError(f"{name}: image is {h}×{w} pixels, expected at least {MIN_SIDE} on each "
                         f"side (the backbone's largest stride)")
    return image.float()


def rescale_size(size: tuple[int, int], scale: tuple[int, int]) -> tuple[int, int]:
    """mmcv's `rescale_size` with `keep_ratio=True`: fit the long edge in `max(scale)` and the
    short edge in `min(scale)`, one factor for both axes."""
    h, w = size
    factor = min(max(scale) / max(h, w), min(scale) / min(h, w))
    return int(h * factor + 0.5), int(w * factor + 0.5)


def preprocess_one(image, name: str = "image", scale: tuple[int, int] | None = COCO_TEST_SCALE,
                   to_rgb: bool = False) -> tuple[torch.Tensor, ImageMeta]:
    """One image → `(3, H_pad, W_pad)` normalised and padded, and its `ImageMeta`."""
    image = as_image_tensor(image, name, to_rgb)                             # (3, h, w)
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
    image = F.pad(normalise_pixels(image), (0, W - w, 0, H - h), value=0.0)         # (3, H_pad, W_pad)
    return image, ImageMeta(name, ori_shape, img_shape, (H, W))


def preprocess(images, scale: tuple[int, int] | None = COCO_TEST_SCALE, names=None,
               to_rgb: bool = False) -> tuple[list[torch.Tensor], list[ImageMeta]]:
    """A list of images (or one) → per-image padded tensors and metas (see the module doc)."""
    if not isinstance(images, (list, tuple)):
        images = [images]
    if names is None:
        names = [str(im) if isinstance(im, (str, os.PathLike)) else f"image {i}" for i, im in enumerate(images)]
    out = [preprocess_one(im, n, scale, to_rgb) for im, n in zip(images, names)]
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
