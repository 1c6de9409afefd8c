"""One query through deformable attention by hand (seed 3.4), and Deformable DETR's Fig. 6 view.

    x, y = pixel_inside(mask, (h, w))                  # a level pixel whose centre is on an object
    cell = bilinear_corners(location, (h, w))          # one sampling point's 4 neighbours, weights
    sample = bilinear_sample(value_map, location)      # Σ weight · value over those 4 neighbours
    plot_bilinear_cell(location, (h, w))               # the 2×2 cell and the point
    plot_sampling_overview({"init": t0, "trained": t}, layer=5, level=2, x=6, y=9)   # Fig. 6

A normalised location (x, y) ∈ [0, 1] lands on the level's pixel coordinate
`(x·W_l − 0.5, y·H_l − 0.5)`, where pixel centres sit on integers (`grid_sample` with
`align_corners=False`). Its four neighbours are the pixels around it; a neighbour outside the map
reads zero (`padding_mode="zeros"`), exactly as `multi_scale_deformable_attn` does.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ._common import as_numpy, level_shapes, show_image
from .deformable import off_map, sampling_points
from .explorer import new_figure
from .images import image_of

CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right")
LEVEL_MARKERS = ("s", "^", "o", "D", "v", "p")


def pixel_inside(mask, shape: tuple[int, int]) -> tuple[int, int]:
    """`(x, y)` of the pixel of an `(h, w)` level whose centre lies on `mask` `(H, W)` (bool),
    nearest to the mask's centroid. Raises ValueError when no level pixel centre is on it."""
    mask = np.asarray(mask, dtype=bool)
    H, W = mask.shape
    h, w = shape
    ys, xs = np.mgrid[0:h, 0:w]
    cy = ((ys + 0.5) * H / h).astype(int)                     # image row of each level pixel centre
    cx = ((xs + 0.5) * W / w).astype(int)
    on = mask[cy, cx]                                         # (h, w)
    if not on.any():
        raise ValueError(f"no pixel centre of the {h}×{w} level lies on the mask "
                         f"({int(mask.sum())} of {H}×{W} image pixels set); pick a finer level")
    my, mx = np.argwhere(mask).mean(0)                        # centroid, image pixels
    distance = ((cy + 0.5 - my) ** 2 + (cx + 0.5 - mx) ** 2) + np.where(on, 0, np.inf)
    y, x = np.unravel_index(np.argmin(distance), distance.shape)
    return int(x), int(y)


def bilinear_corners(location, shape: tuple[int, int]) -> dict:
    """The four neighbours of one normalised sampling location on an `(h, w)` level.

    Returns `pixel` (px, py) = (x·W_l − 0.5, y·H_l − 0.5), `top_left` (x0, y0) = its floor,
    `fraction` (fx, fy) = pixel − top_left, and `corners`: four dicts in the order top-left,
    top-right, bottom-left, bottom-right with `x`, `y` (column, row), `weight`
    ((1 − fx)(1 − fy), fx(1 − fy), (1 − fx)fy, fx·fy) and `inside` (a neighbour off the map
    reads zero, so its weight is used with a zero value).
    """
    h, w = shape
    x, y = (float(v) for v in location)
    px, py = x * w - 0.5, y * h - 0.5
    x0, y0 = math.floor(px), math.floor(py)
    fx, fy = px - x0, py - y0
    corners = []
    for name, (cx, cy), weight in zip(CORNERS, ((x0, y0), (x0 + 1, y0), (x0, y0 + 1), (x0 + 1, y0 + 1)),
                                      ((1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy)):
        corners.append(dict(name=name, x=cx, y=cy, weight=weight, inside=0 <= cx < w and 0 <= cy < h))
    return dict(pixel=(px, py), top_left=(x0, y0), fraction=(fx, fy), corners=corners)


def bilinear_sample(value_map: torch.Tensor, location) -> torch.Tensor:
    """`value_map` `(h, w, D)` read at a normalised (x, y): Σ over the 4 neighbours on the map of
    weight · value, `(D,)`. Equal to `grid_sample(align_corners=False, padding_mode="zeros")`."""
    h, w, D = value_map.shape
    sample = value_map.new_zeros(D)
    for corner in bilinear_corners(location, (h, w))["corners"]:
        if corner["inside"]:
            sample = sample + corner["weight"] * value_map[corner["y"], corner["x"]]
    return sample


def plot_bilinear_cell(location, shape: tuple[int, int], level: int | None = None, figure=None):
    """The pixels around one sampling point in the level's pixel coordinates (centres on
    integers): the point (★), its four neighbours (area ∝ bilinear weight, labelled), the 2×2
    cell between their centres and the fractions fx, fy."""
    h, w = shape
    cell = bilinear_corners(location, shape)
    px, py = cell["pixel"]
    x0, y0 = cell["top_left"]
    fx, fy = cell["fraction"]
    figure = figure if figure is not None else new_figure((5.0, 5.0))
    ax = figure.subplots()
    for gx in range(x0 - 1, x0 + 3):                          # pixel boundaries at half-integers
        ax.axvline(gx - 0.5, color="0.8", linewidth=0.8, zorder=0)
    for gy in range(y0 - 1, y0 + 3):
        ax.axhline(gy - 0.5, color="0.8", linewidth=0.8, zorder=0)
    centres = [(cx, cy) for cy in range(y0 - 1, y0 + 3) for cx in range(x0 - 1, x0 + 3)]
    on_map = [0 <= cx < w and 0 <= cy < h for cx, cy in centres]
    ax.scatter([c[0] for c in centres], [c[1] for c in centres], s=12,
               c=["0.45" if inside else "white" for inside in on_map], edgecolors="0.45",
               linewidths=0.6, zorder=1, label="pixel centres (hollow: off the map)")
    ax.add_patch(_rectangle(x0, y0))
    for corner in cell["corners"]:
        colour = "tab:blue" if corner["inside"] else "tab:gray"
        ax.scatter([corner["x"]], [corner["y"]], s=40 + 900 * corner["weight"], c=colour, alpha=0.7,
                   edgecolors="black", linewidths=0.6, zorder=2)
        left, top = corner["x"] == x0, corner["y"] == y0          # label outside the cell
        ax.text(corner["x"] + (-0.12 if left else 0.12), corner["y"] + (-0.12 if top else 0.12),
                f"({corner['x']}, {corner['y']})\nw = {corner['weight']:.3f}"
                + ("" if corner["inside"] else "\noff the map: 0"),
                ha="right" if left else "left", va="bottom" if top else "top", fontsize=7, zorder=4)
    ax.scatter([px], [py], marker="*", s=180, c="tab:red", edgecolors="black", linewidths=0.6, zorder=3,
               label="sampling point")
    ax.annotate("", xy=(px, y0), xytext=(x0, y0), arrowprops=dict(arrowstyle="<->", color="tab:red"))
    ax.text((x0 + px) / 2, y0 - 0.05, f"fx={fx:.2f}", color="tab:red", ha="center", va="bottom", fontsize=7)
    ax.annotate("", xy=(x0, py), xytext=(x0, y0), arrowprops=dict(arrowstyle="<->", color="tab:red"))
    ax.text(x0 - 0.06, (y0 + py) / 2, f"fy={fy:.2f}", color="tab:red", ha="right", va="center", fontsize=7)
    ax.set_xlim(x0 - 1.3, x0 + 2.3)
    ax.set_ylim(y0 + 2.1, y0 - 1.1)                           # rows grow downwards, as in an image
    ax.set_aspect("equal")
    ax.set_xticks(range(x0 - 1, x0 + 3))
    ax.set_yticks(range(y0 - 1, y0 + 3))
    where = f"level {level}, " if level is not None else ""
    ax.set_xlabel(f"column: x·W_l − 0.5  ({where}W_l = {w})")
    ax.set_ylabel(f"row: y·H_l − 0.5  (H_l = {h})")
    ax.set_title(f"point ({px:.2f}, {py:.2f}): neighbours x0={x0}, y0={y0}\n"
                 f"area ∝ bilinear weight, weights sum to 1", fontsize=8)
    figure.subplots_adjust(left=0.16, right=0.96, bottom=0.2, top=0.9)
    handles, names = ax.get_legend_handles_labels()
    figure.legend(handles, names, fontsize=7, loc="lower center", ncol=2, frameon=False)
    return figure


def _rectangle(x0, y0):
    from matplotlib.patches import Rectangle
    return Rectangle((x0, y0), 1, 1, fill=False, edgecolor="tab:blue", linestyle="--", linewidth=1,
                     zorder=1)


def plot_sampling_overview(traces: dict, layer: int, level: int, x: int, y: int, batch: int = 0,
                           figure=None):
    """Deformable DETR's Fig. 6, one panel per trace (e.g. `{"init": ..., "trained": ...}`): all
    heads' sampling points of one query, every level drawn in one picture (marker = level),
    colour and area = attention weight (one colour scale for all panels), the reference point as a
    green +. Points off the map fall outside the picture; each title gives their weight. The traces must share the configuration and keep the encoder's sampling values."""
    labels = list(traces)
    if not labels:
        raise ValueError("plot_sampling_overview needs at least one trace, e.g. {'trained': trace}")
    shapes = level_shapes(traces[labels[0]])
    H, W = traces[labels[0]].config.image_size
    data = {label: sampling_points(traces[label], layer, level, x, y, batch) for label in labels}
    top = max(float(d["weights"].max()) for d in data.values())
    figure = figure if figure is not None else new_figure((3.2 * len(labels) + 1.0, 4.2))
    axes = np.atleast_1d(figure.subplots(1, len(labels)))
    scatter = None
    figure.subplots_adjust(left=0.08, right=0.86, bottom=0.24, top=0.79, wspace=0.12)
    for ax, label in zip(axes, labels):
        d = data[label]
        show_image(ax, image_of(traces[label], batch), alpha=0.6)
        for l, (h, w) in enumerate(shapes):
            locations = d["locations"][:, l].reshape(-1, 2) * [W, H]           # (nH·P, 2) image pixels
            weights = d["weights"][:, l].reshape(-1)                           # (nH·P,)
            order = np.argsort(weights)                                        # heavy points on top
            scatter = ax.scatter(locations[order, 0], locations[order, 1], c=weights[order], s=8 + 260 * weights[order] / top,
                                 cmap="plasma", vmin=0, vmax=top, marker=LEVEL_MARKERS[l % len(LEVEL_MARKERS)],
                                 edgecolors="black", linewidths=0.3, label=f"level {l} ({h}×{w})")
        reference = d["reference"] * [W, H]
        ax.scatter([reference[0]], [reference[1]], marker="+", s=160, c="lime", linewidths=2.2,
                   label="reference point")
        ax.set_xlim(0, W)
        ax.set_ylim(H, 0)
        ax.set_xlabel("x (image pixels)")
        shares = " / ".join(f"{d['weights'][:, l].sum() / d['weights'].shape[0]:.2f}" for l in range(len(shapes)))
        off = off_map(torch.as_tensor(d["locations"]), shapes).numpy()               # (nH, L, P): read 0
        off_share = float((d["weights"] * off).sum()) / d["weights"].shape[0]
        ax.set_title(f"{label}\nweight per level: {shares}\noff the map (not drawn): {off_share:.2f}", fontsize=8)
    axes[0].set_ylabel("y (image pixels)")
    figure.suptitle(f"encoder layer {layer}, query = level {level} pixel (x={x}, y={y}): all "
                    f"{d['weights'].shape[0]} heads' points", fontsize=9)
    handles, names = axes[0].get_legend_handles_labels()
    legend = figure.legend(handles, names, fontsize=7, loc="lower center", ncol=len(names), frameon=False,
                           bbox_to_anchor=(0.47, 0.0),
                           markerscale=0.8)
    for handle in legend.legend_handles:
        handle.set_color("0.5")
    colourbar = figure.colorbar(scatter, cax=figure.add_axes((0.89, 0.3, 0.02, 0.54)))
    colourbar.set_label("attention weight", fontsize=8)
    return figure
