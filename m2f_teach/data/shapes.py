"""Synthetic shapes: images with a few overlapping objects, their instance masks and labels.

Each sample is drawn from `numpy.random.default_rng((seed, index))`, so it depends only on the
seed and its index: any size, any order, the same on every machine.

    sample = draw_sample(index=0, seed=0, image_size=(128, 128))
    sample["image"]   # (H, W, 3) uint8
    sample["masks"]   # (N_gt, H, W) bool, the visible part of each object
    sample["labels"]  # (N_gt,) int64, indices into CLASS_NAMES

Objects are painted one over the other on a textured background; a mask is what stays visible.
An object is only placed if every object keeps at least `min_visible` of its own area, so no
shape is hidden so much that its class cannot be told.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

CLASS_NAMES = ("circle", "square", "triangle", "ring", "cross")
# mmdet's data_preprocessor for the seed config: RGB mean and std on the 0..255 scale
IMAGE_MEAN = (123.675, 116.28, 103.53)
IMAGE_STD = (58.395, 57.12, 57.375)
# data seeds of the shipped checkpoint: training, validation, held-out test
TRAIN_SEED, VAL_SEED, TEST_SEED = 0, 10_000, 20_000


def shape_mask(label: int, centre, radius: float, angle: float, image_size) -> np.ndarray:
    """`(H, W)` bool: pixels whose centre lies inside the shape `label`.

    `centre` (y, x) and `radius` (the shape's outer radius) in pixels, `angle` in radians. Only
    the square window around the centre that can hold the shape is computed (the cross's arm
    corners reach 1.044 · radius); every pixel outside it is False.
    """
    H, W = image_size
    reach = 1.1 * radius + 1                              # covers every shape's farthest point
    y0, y1 = max(0, int(centre[0] - reach)), min(H, int(centre[0] + reach) + 1)
    x0, x1 = max(0, int(centre[1] - reach)), min(W, int(centre[1] + reach) + 1)
    out = np.zeros((H, W), dtype=bool)
    if y0 >= y1 or x0 >= x1:
        return out
    y, x = np.ogrid[y0:y1, x0:x1]                         # (h, 1), (1, w) pixel indices
    dy, dx = y + 0.5 - centre[0], x + 0.5 - centre[1]     # offsets of the pixel centres
    # coordinates in the shape's own frame, rotated by -angle
    u = np.cos(angle) * dx + np.sin(angle) * dy           # (h, w)
    v = -np.sin(angle) * dx + np.cos(angle) * dy          # (h, w)
    r2 = u**2 + v**2
    name = CLASS_NAMES[label]
    if name == "circle":
        inside = r2 <= radius**2
    elif name == "square":
        half = radius / np.sqrt(2)                        # corners on the outer radius
        inside = (np.abs(u) <= half) & (np.abs(v) <= half)
    elif name == "triangle":
        # equilateral, vertices on the outer radius: inside all three edges' half-planes
        inside = np.ones_like(u, dtype=bool)
        for k in range(3):
            a = 2 * np.pi * k / 3
            inside &= np.cos(a) * u + np.sin(a) * v <= radius / 2
    elif name == "ring":
        inside = (r2 <= radius**2) & (r2 >= (0.55 * radius) ** 2)
    elif name == "cross":
        arm = 0.3 * radius
        inside = ((np.abs(u) <= radius) & (np.abs(v) <= arm)) | ((np.abs(v) <= radius) & (np.abs(u) <= arm))
    else:
        raise ValueError(f"unknown class {label}")
    out[y0:y1, x0:x1] = inside                            # (H, W)
    return out


def textured_background(rng: np.random.Generator, image_size) -> np.ndarray:
    """`(H, W, 3)` float in [0, 1]: a base colour, two random stripe waves and pixel noise."""
    H, W = image_size
    y, x = np.mgrid[0:H, 0:W] / max(H, W)                 # (H, W)
    base = rng.uniform(0.2, 0.8, size=3)                  # (3,)
    texture = np.zeros((H, W))
    for _ in range(2):
        frequency = rng.uniform(3, 12)
        direction = rng.uniform(0, np.pi)
        phase = rng.uniform(0, 2 * np.pi)
        texture += np.sin(2 * np.pi * frequency * (np.cos(direction) * x + np.sin(direction) * y) + phase)
    tint = rng.uniform(0.04, 0.10, size=3)                # (3,) stripe strength per channel
    image = base + texture[..., None] * tint              # (H, W, 3)
    image += rng.normal(0, 0.03, size=(H, W, 3))
    return image


def draw_sample(index: int, seed: int = 0, image_size=(128, 128), max_objects: int = 4,
                min_visible: float = 0.6, size_range=(0.12, 0.24), min_objects: int = 1) -> dict:
    """One sample: `image (H, W, 3)` uint8, `masks (N_gt, H, W)` bool, `labels (N_gt,)` int64.

    * `index`, `seed`: the sample is a function of these two alone.
    * `min_objects`, `max_objects`: `min_objects` (1 by default) to `max_objects` objects are
      tried (one that finds no place in 20 attempts is left out).
    * `min_visible`: an object is placed only if every object keeps this fraction of its area.
    * `size_range`: the outer radius as a fraction of min(H, W).
    """
    H, W = image_size
    rng = np.random.default_rng((seed, index))
    image = textured_background(rng, image_size)
    num_objects = int(rng.integers(min_objects, max_objects + 1))
    full_masks, visible_masks, labels, colours = [], [], [], []
    for _ in range(num_objects):
        for _attempt in range(20):
            label = int(rng.integers(len(CLASS_NAMES)))
            radius = rng.uniform(*size_range) * min(H, W)
            centre = (rng.uniform(0.6 * radius, H - 0.6 * radius), rng.uniform(0.6 * radius, W - 0.6 * radius))
            mask = shape_mask(label, centre, radius, rng.uniform(0, 2 * np.pi), image_size)
            # the new object goes on top: every earlier object loses what it covers
            covered = [v & ~mask for v in visible_masks]
            if all(c.sum() >= min_visible * f.sum() for c, f in zip(covered, full_masks)) \
                    and mask.sum() >= min_visible * (np.pi * radius**2) * 0.3:
                visible_masks = covered + [mask]
                full_masks.append(mask)
                labels.append(label)
                colours.append(rng.uniform(0, 1, size=3))
                break
    for mask, colour in zip(full_masks, colours):
        shade = colour + rng.normal(0, 0.02, size=(H, W, 3))   # slightly noisy fill, (H, W, 3)
        image[mask] = shade[mask]                              # (H, W, 3), painted over
    image = np.clip(image * 255, 0, 255).round().astype(np.uint8)
    masks = np.stack(visible_masks) if visible_masks else np.zeros((0, H, W), dtype=bool)
    return dict(image=image, masks=masks, labels=np.asarray(labels, dtype=np.int64))


def normalise_pixels(pixels: torch.Tensor) -> torch.Tensor:
    """mmdet's `DetDataPreprocessor`: `(x − mean) / std` per RGB channel, on the 0..255 scale.

    `pixels (..., 3, H, W)` float → the same shape; the one place the mean and std are applied
    (the data set, `predict`'s preprocessing and `viz.normalise` call it; `denormalise` undoes it).
    """
    mean = torch.tensor(IMAGE_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGE_STD).view(3, 1, 1)
    return (pixels - mean) / std


def denormalise(images: torch.Tensor) -> np.ndarray:
    """`(3, H, W)` or `(B, 3, H, W)` normalised float → `(H, W, 3)` / `(B, H, W, 3)` uint8."""
    mean = torch.tensor(IMAGE_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGE_STD).view(3, 1, 1)
    images = (images.detach().cpu() * std + mean).clamp(0, 255).round().to(torch.uint8)
    return images.movedim(-3, -1).numpy()


class ShapesDataset(Dataset):
    """`num_images` samples of seed `seed`: item i is `draw_sample(i, seed, ...)` as tensors.

    An item is a dict: `image (3, H, W)` float (normalised), `masks (N_gt, H, W)` bool,
    `labels (N_gt,)` int64. Use different seeds for training and held-out sets.
    """

    def __init__(self, num_images: int, seed: int = 0, image_size=(128, 128), max_objects: int = 4,
                 min_objects: int = 1):
        if not 1 <= min_objects <= max_objects:
            raise ValueError(f"objects per image {min_objects} to {max_objects}: expected 1 ≤ min ≤ max")
        self.num_images = num_images
        self.seed = seed
        self.image_size = tuple(image_size)
        self.max_objects = max_objects
        self.min_objects = min_objects

    def __len__(self):
        return self.num_images

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.num_images:
            raise IndexError(f"index {index} out of range for {self.num_images} images")
        sample = draw_sample(index, self.seed, self.image_size, self.max_objects,
                             min_objects=self.min_objects)
        return dict(image=normalise_pixels(torch.from_numpy(sample["image"]).permute(2, 0, 1).float()),  # (3, H, W)
                    masks=torch.from_numpy(sample["masks"]),                    # (N_gt, H, W)
                    labels=torch.from_numpy(sample["labels"]))                  # (N_gt,)


def collate(items: list[dict]):
    """A list of items → `images (B, 3, H, W)` and `targets`: a list of B dicts with
    `masks (N_gt, H, W)` and `labels (N_gt,)` (N_gt differs from image to image)."""
    images = torch.stack([item["image"] for item in items])                     # (B, 3, H, W)
    targets = [dict(masks=item["masks"], labels=item["labels"]) for item in items]
    return images, targets
