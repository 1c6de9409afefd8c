"""Reference points (seed 2.1 "棋盘格映射并归一化"): one normalised (x, y) per pixel of each level.

    plot_reference_grid(trace, level=0)      # the level's points drawn over the input picture
    reference_browser(trace)                 # widget over level
"""
from __future__ import annotations

import numpy as np
from matplotlib.collections import LineCollection

from ._common import as_numpy, kept, level_shapes, level_starts, show_image
from .explorer import Explorer, dropdown, static
from .images import image_of

NAME = "panoptic_head.pixel_decoder.reference_points"


def level_reference_points(trace, level: int, batch: int = 0) -> np.ndarray:
    """`(H_l·W_l, 2)` normalised (x, y) of one level, sliced out of the traced `(B, S, L, 2)`."""
    points = kept(trace, NAME)[batch, :, level]                       # (S, 2): the same on every level
    start = level_starts(trace)[level]
    h, w = level_shapes(trace)[level]
    return as_numpy(points[start:start + h * w])


def grid_segments(h: int, w: int, H: int, W: int) -> list:
    """Line segments of an h×w pixel grid spread over an H×W picture."""
    vertical = [[(x, 0), (x, H)] for x in np.linspace(0, W, w + 1)]
    horizontal = [[(0, y), (W, y)] for y in np.linspace(0, H, h + 1)]
    return vertical + horizontal


def build_reference_grid(trace, batch: int = 0):
    """`build(figure) -> update(level, highlight=0)`: the level's pixel grid over the picture, a dot
    at each reference point, one point labelled."""
    image = image_of(trace, batch)
    H, W = trace.config.image_size

    def build(figure):
        figure.subplots_adjust(left=0.14, right=0.97, bottom=0.11, top=0.84)
        ax = figure.subplots()
        ax.set_xlabel("x (image pixels)", fontsize=8)
        ax.set_ylabel("y (image pixels)", fontsize=8)
        ax.tick_params(labelsize=7)
        show_image(ax, image, alpha=0.8)
        grid = LineCollection([], colors="white", linewidths=0.4, alpha=0.7)
        ax.add_collection(grid)
        dots = ax.scatter([], [], c="tab:red")
        ring = ax.scatter([], [], s=60, facecolors="none", edgecolors="yellow", linewidths=1.5)
        ax.set_xlim(0, W)
        ax.set_ylim(H, 0)
        title = ax.set_title("", fontsize=8)

        def update(level, highlight=0):
            h, w = level_shapes(trace)[level]
            points = level_reference_points(trace, level, batch)      # (h·w, 2)
            grid.set_segments(grid_segments(h, w, H, W))
            dots.set_offsets(points * [W, H])
            dots.set_sizes([max(1.0, 400 / max(h, w))])
            x, y = points[highlight]
            ring.set_offsets([[x * W, y * H]])
            col, row = highlight % w, highlight // w
            title.set_text(f"level {level}: {h}×{w} points, stride {H // h}\n"
                           f"token {highlight} = pixel (x={col}, y={row})\n→ "
                           f"(({col}+0.5)/{w}, ({row}+0.5)/{h}) = ({x:.4f}, {y:.4f})")
        update.artists = [grid, dots, ring, title]
        return update
    return build


def plot_reference_grid(trace, level: int = 0, batch: int = 0, highlight: int = 0, figure=None):
    """The level's pixel grid over the picture, a dot at each reference point, one point labelled."""
    return static(build_reference_grid(trace, batch), figure, (4.6, 4.6), level=level, highlight=highlight)


def reference_browser(trace, batch: int = 0) -> Explorer:
    """Widget: pick a level; its reference grid is drawn over the picture."""
    shapes = level_shapes(trace)
    level = dropdown("level", [(f"{i}: {h}×{w}", i) for i, (h, w) in enumerate(shapes)], 0)
    return Explorer(build_reference_grid(trace, batch), {"level": level}, figsize=(4.6, 4.6),
                    title="reference points")
