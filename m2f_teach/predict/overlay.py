"""An overlay picture of results: each mask tinted over the image, its name and score written."""
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


def draw(image: np.ndarray, result: dict) -> np.ndarray:
    """`image (h, w, 3)` uint8 and one result → the overlay, `(h, w, 3)` uint8."""
    from PIL import Image, ImageDraw
    out = image.astype(np.float32)
    found = regions(result)
    colours = palette(len(found))
    for (mask, _), colour in zip(found, colours):
        out[mask] = (1 - ALPHA) * out[mask] + ALPHA * colour
    picture = Image.fromarray(out.round().astype(np.uint8))
    pen = ImageDraw.Draw(picture)
    for (mask, caption), colour in zip(found, colours):
        ys, xs = np.nonzero(mask)
        if len(xs):
            x, y = int(xs.min()), int(ys.min())
            pen.rectangle((x, y, x + 6 * len(caption) + 2, y + 11), fill=tuple(int(c) for c in colour))
            pen.text((x + 1, y), caption, fill=(255, 255, 255))
    return np.asarray(picture)
