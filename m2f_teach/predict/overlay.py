"""An overlay picture of results: each mask tinted over the image, its name and score written.

Each caption sits at the median of its mask's largest connected component
(`scipy.ndimage.label`, 8-connected; detectron2's `Visualizer` places it so), moved to the
nearest pixel of that component (a ring's median is its hole), so stray pixels do not pull it
away; the font grows with the image (`font_size`: √(h·w) / 40, at least 10 px).
"""
from __future__ import annotations

import numpy as np

ALPHA = 0.5


def palette(n: int) -> np.ndarray:
    """`(n, 3)` uint8 colours, matplotlib's tab20 cycled."""
    from matplotlib import colormaps
    colours = np.asarray(colormaps["tab20"].colors)[[0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19]]
    return (colours[np.arange(n) % len(colours)] * 255).round().astype(np.uint8)


def regions(result: dict) -> list[tuple[np.ndarray, str]]:
    """`(mask (h, w) bool, caption)` for each instance, class or segment of one result."""
    from .tasks import TASKS
    return TASKS[result["task"]].regions(result)


def font_size(h: int, w: int) -> int:
    return max(10, round((h * w) ** 0.5 / 40))


def label_position(mask: np.ndarray) -> tuple[int, int] | None:
    """`(x, y)`: the pixel of the mask's largest 8-connected component nearest its median (None if empty)."""
    from scipy import ndimage
    components, count = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    if count == 0:
        return None
    sizes = np.bincount(components.ravel())[1:]                 # pixels of components 1..count
    ys, xs = np.nonzero(components == int(sizes.argmax()) + 1)
    x, y = np.median(xs), np.median(ys)
    nearest = int(np.argmin((xs - x) ** 2 + (ys - y) ** 2))     # on the mask: a ring's median is its hole
    return int(xs[nearest]), int(ys[nearest])


def draw(image: np.ndarray, result: dict) -> np.ndarray:
    """`image (h, w, 3)` uint8 and one result → the overlay, `(h, w, 3)` uint8."""
    from PIL import Image, ImageDraw, ImageFont
    h, w = image.shape[:2]
    out = image.astype(np.float32)
    found = regions(result)
    colours = palette(len(found))
    for (mask, _), colour in zip(found, colours):
        out[mask] = (1 - ALPHA) * out[mask] + ALPHA * colour
    picture = Image.fromarray(out.round().astype(np.uint8))
    pen = ImageDraw.Draw(picture)
    font = ImageFont.load_default(size=font_size(h, w))
    margin = max(1, font.size // 8)
    for (mask, caption), colour in zip(found, colours):
        where = label_position(mask)
        if where is None:
            continue
        x0, y0, x1, y1 = pen.textbbox((0, 0), caption, font=font)
        tw, th = x1 - x0 + 2 * margin, y1 - y0 + 2 * margin
        x = min(max(where[0] - tw // 2, 0), max(w - tw, 0))          # centred, kept inside the image
        y = min(max(where[1] - th // 2, 0), max(h - th, 0))
        pen.rectangle((x, y, x + tw, y + th), fill=tuple(int(c) for c in colour))
        pen.text((x + margin - x0, y + margin - y0), caption, fill=(255, 255, 255), font=font)
    return np.asarray(picture)
