"""Images for the notebooks: a real photo shipped with matplotlib and synthetic shapes.

    image = sample_photo((256, 256))     # (H, W, 3) uint8, Grace Hopper, no network needed
    images = normalise(image)            # (1, 3, H, W) float, mmdet's ImageNet mean and std

mmdet's `DetDataPreprocessor` for the seed config subtracts the RGB mean
(123.675, 116.28, 103.53) and divides by the std (58.395, 57.12, 57.375) on the 0..255 scale.
"""
from __future__ import annotations

import numpy as np
import torch

from ..data.shapes import IMAGE_MEAN, IMAGE_STD, denormalise, normalise_pixels  # noqa: F401 (re-exported)


def sample_photo(size: tuple[int, int] = (256, 256)) -> np.ndarray:
    """`matplotlib`'s sample `grace_hopper.jpg`, centre-cropped square and resized: `(H, W, 3)` uint8."""
    from matplotlib import cbook
    from PIL import Image

    with cbook.get_sample_data("grace_hopper.jpg") as file:
        photo = Image.open(file).convert("RGB")
        photo.load()
    w, h = photo.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 4           # keep the face: crop nearer the top
    photo = photo.crop((left, top, left + side, top + side))
    H, W = size
    photo = photo.resize((W, H), Image.BILINEAR)
    return np.asarray(photo, dtype=np.uint8).copy()


def shapes_image(index: int = 0, size: tuple[int, int] = (128, 128), seed: int | None = None) -> dict:
    """One synthetic-shapes sample (`m2f_teach.data.shapes`), from the held-out test seed."""
    from ..data.shapes import draw_sample
    if seed is None:
        from ..data.shapes import TEST_SEED
        seed = TEST_SEED
    return draw_sample(index, seed, tuple(size))


def normalise(picture: np.ndarray) -> torch.Tensor:
    """A picture, `(H, W, 3)` uint8 (or `(B, H, W, 3)`), as the model's input `images (B, 3, H, W)`:
    channels first, then `normalise_pixels` (mmdet's mean and std)."""
    pictures = picture if picture.ndim == 4 else picture[None]
    pixels = torch.from_numpy(np.ascontiguousarray(pictures)).permute(0, 3, 1, 2).float()  # (B, 3, H, W)
    return normalise_pixels(pixels)


def image_of(trace, batch: int = 0) -> np.ndarray | None:
    """The input picture of a trace (`images` kept), as `(H, W, 3)` uint8, else None."""
    if "images" in trace and trace["images"].value is not None:
        return denormalise(trace.value("images")[batch])
    return None
