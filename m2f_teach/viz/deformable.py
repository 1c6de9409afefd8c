"""Deformable attention (seed 3.4): where one query samples, on every level, and how much.

    plot_initial_ring(attention_module)                 # the offsets every query starts with
    data = sampling_points(trace, layer=0, level=1, x=5, y=3)
    plot_sampling_points(trace, layer=0, level=1, x=5, y=3, head="all")
    deformable_explorer(trace)                          # pick layer, query pixel, head
    off_map_share(trace, layer=0)                       # attention weight on points that read zeros

A query is a pixel (x, y) of its level; its token index in the S tokens is
`level_start_index[level] + y·W_l + x`. It has one reference point (its pixel centre, the same
on every level) and, per head, P sampling points on each of the L levels, each with an
attention weight; the weights of one head sum to 1 over all L·P points.

A sampling point is **off the map** when its pixel coordinate `x·W_l − 0.5` is at most −1 or at
least W_l (or the same for y): each of its four bilinear neighbours is then off the level's map
or has bilinear weight 0, and the point reads exactly zero (`padding_mode="zeros"`). The explorer draws such points on the panel's border as ×.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from matplotlib.collections import LineCollection
from matplotlib.lines import Line2D

from ._common import as_numpy, kept, level_shapes, level_starts, show_image
from .explorer import Explorer, dropdown, int_slider, new_figure, static
from .images import image_of
from .reference_points import grid_segments

PREFIX = "panoptic_head.pixel_decoder.encoder.layers.{}.self_attn."
HEAD_COLOURS = ("tab:red", "tab:orange", "gold", "tab:green", "tab:cyan", "tab:blue", "tab:purple", "tab:pink")


def head_colour(head: int) -> str:
    return HEAD_COLOURS[head % len(HEAD_COLOURS)]


def ring_offsets(module) -> np.ndarray:
    """`(nH, L, P, 2)` offsets in pixels of each level given by the bias alone (the init ring)."""
    nH, L, P = module.num_heads, module.num_levels, module.num_points
    return as_numpy(module.sampling_offsets.bias.view(nH, L, P, 2))


def plot_initial_ring(module, level: int = 0, figure=None):
    """Deformable DETR's initial offsets: head h points at angle 2πh/nH, point p is p+1 pixels out."""
    offsets = ring_offsets(module)[:, level]                         # (nH, P, 2) in level pixels
    nH, P, _ = offsets.shape
    figure = figure if figure is not None else new_figure((5.0, 3.8))
    ax = figure.subplots()
    ax.scatter([0], [0], marker="+", s=120, c="black", label="reference point")
    for h in range(nH):
        ax.plot(offsets[h, :, 0], offsets[h, :, 1], "o-", color=head_colour(h), markersize=4,
                label=f"head {h}: {round(360 * h / nH)}°")
    ax.set_xlim(-P - 1, P + 1)
    ax.set_ylim(P + 1, -P - 1)                                        # y down, as in an image
    ax.set_aspect("equal")
    ax.grid(True, linewidth=0.4)
    ax.set_xlabel("x offset (pixels of the level)")
    ax.set_ylabel("y offset")
    ax.set_title(f"sampling_offsets bias: {nH} heads × {P} points", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    figure.tight_layout()
    return figure


def off_map(locations, shapes) -> torch.Tensor:
    """`locations` `(..., L, P, 2)` normalised (x, y) and `shapes` L × (H_l, W_l) → `(..., L, P)`
    bool: True where the point reads exactly 0: every bilinear neighbour with a weight above 0 is
    off the level's map (pixel coordinate ≤ −1 or ≥ W_l, or the same for y)."""
    locations = torch.as_tensor(locations)
    size = torch.tensor([[w, h] for h, w in shapes], dtype=locations.dtype)      # (L, 2) as (W_l, H_l)
    pixel = locations * size[:, None, :] - 0.5                                    # (..., L, P, 2)
    return ((pixel <= -1) | (pixel >= size[:, None, :])).any(-1)                  # (..., L, P)


def off_map_share(trace, layer: int, batch: int | None = None) -> dict:
    """Share of encoder layer `layer`'s attention weight that falls on points off the map, averaged
    over the queries and heads (of image `batch`, or of every image): `total` and `per_level` (L,),
    which sum to `total`; `points`: the share of the nH·L·P points (weight left aside) off the map."""
    locations = kept(trace, PREFIX.format(layer) + "sampling_locations")         # (B, S, nH, L, P, 2)
    weights = kept(trace, PREFIX.format(layer) + "attention_weights")            # (B, S, nH, L·P)
    if batch is not None:
        locations, weights = locations[batch:batch + 1], weights[batch:batch + 1]
    B, S, nH, L, P, _ = locations.shape
    off = off_map(locations, level_shapes(trace))                                 # (B, S, nH, L, P)
    on_off = weights.view(B, S, nH, L, P) * off                                   # (B, S, nH, L, P)
    per_level = on_off.sum(dim=(0, 1, 2, 4)) / (B * S * nH)                       # (L,)
    return dict(total=float(per_level.sum()), per_level=[float(v) for v in per_level],
                points=float(off.float().mean()))


def query_index(trace, level: int, x: int, y: int) -> int:
    """Token index of pixel (x, y) of `level` among the S tokens."""
    h, w = level_shapes(trace)[level]
    if not (0 <= x < w and 0 <= y < h):
        raise ValueError(f"pixel (x={x}, y={y}) is outside level {level}, which is {h}×{w} (H_l×W_l)")
    return level_starts(trace)[level] + y * w + x


def sampling_points(trace, layer: int, level: int, x: int, y: int, batch: int = 0) -> dict:
    """What query (x, y) of `level` does in encoder layer `layer`.

    Returns `query` (its token index), `reference` `(2,)` normalised (x, y),
    `locations` `(nH, L, P, 2)` normalised, `weights` `(nH, L, P)`.
    """
    q = query_index(trace, level, x, y)
    locations = kept(trace, PREFIX.format(layer) + "sampling_locations")[batch, q]   # (nH, L, P, 2)
    weights = kept(trace, PREFIX.format(layer) + "attention_weights")[batch, q]      # (nH, L·P)
    nH, L, P, _ = locations.shape
    reference = kept(trace, "panoptic_head.pixel_decoder.reference_points")[batch, q, 0]  # (2,)
    return dict(query=q, reference=as_numpy(reference), locations=as_numpy(locations),
                weights=as_numpy(weights.view(nH, L, P)))


def build_sampling_points(trace, batch: int = 0):
    """`build(figure) -> update(layer, level, x, y, head)`: one panel per level with the picture on
    that level's grid, the reference point (+) and the chosen head's (or every head's) sampling
    points, dot area ∝ attention weight."""
    image = image_of(trace, batch)
    H, W = trace.config.image_size
    shapes = level_shapes(trace)

    nH = trace.config.num_heads

    def build(figure):
        L = len(shapes)
        figure.subplots_adjust(left=0.01, right=0.99, bottom=0.12, top=0.8, wspace=0.05)
        axes = np.atleast_1d(figure.subplots(1, L))
        handles = [Line2D([], [], marker="o", linestyle="", color=head_colour(h), markeredgecolor="black",
                          markeredgewidth=0.4, label=f"head {h}") for h in range(nH)]
        handles.append(Line2D([], [], marker="+", linestyle="", color="black", markersize=9, label="reference point"))
        handles.append(Line2D([], [], marker="X", linestyle="", color="white", markeredgecolor="black",
                              label="off the map (on the border)"))
        figure.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=7, frameon=False,
                      handletextpad=0.1, columnspacing=0.8)
        points, outside, crosses, titles = [], [], [], []
        for ax, (h, w) in zip(axes, shapes):
            show_image(ax, image, alpha=0.55)
            ax.add_collection(LineCollection(grid_segments(h, w, H, W), colors="white", linewidths=0.25,
                                             alpha=0.5))
            points.append(ax.scatter(np.zeros((0, 2))[:, 0], np.zeros((0, 2))[:, 1], alpha=0.75,
                                     edgecolors="black", linewidths=0.4))
            outside.append(ax.scatter(np.zeros((0, 2))[:, 0], np.zeros((0, 2))[:, 1], marker="X", alpha=0.9,
                                      edgecolors="black", linewidths=0.5, clip_on=False))
            crosses.append((ax.scatter([], [], marker="+", s=150, c="white", linewidths=2),
                            ax.scatter([], [], marker="+", s=110, c="black", linewidths=1)))
            ax.set_xlim(0, W)
            ax.set_ylim(H, 0)
            ax.set_xticks([])
            ax.set_yticks([])
            titles.append(ax.set_title("", fontsize=8))
        suptitle = figure.suptitle("", fontsize=9)

        def update(layer, level, x, y, head="all"):
            data = sampling_points(trace, layer, level, x, y, batch)
            nH = data["weights"].shape[0]
            heads = list(range(nH)) if head == "all" else [int(head)]
            reference = data["reference"] * [W, H]
            for l, (h, w) in enumerate(shapes):
                loc = data["locations"][heads, l].reshape(-1, 2)                  # (heads·P, 2) normalised
                wt = data["weights"][heads, l].reshape(-1)                        # (heads·P,)
                off = off_map(torch.as_tensor(loc)[:, None, None, :], [(h, w)])[:, 0, 0].numpy()  # (heads·P,) reads 0
                colours = np.array([head_colour(hd) for hd in heads for _ in range(data["weights"].shape[2])])
                points[l].set_offsets(loc[~off] * [W, H])
                points[l].set_sizes(20 + 900 * wt[~off])
                points[l].set_facecolors(colours[~off])
                outside[l].set_offsets(np.clip(loc[off], 0, 1) * [W, H])          # drawn on the border
                outside[l].set_sizes(20 + 900 * wt[off])
                outside[l].set_facecolors(colours[off])
                for cross in crosses[l]:
                    cross.set_offsets([reference])
                share = float(wt.sum()) / len(heads)                              # per head, in [0, 1]
                share_off = float(wt[off].sum()) / len(heads)
                titles[l].set_text(f"level {l}: {h}×{w}\n"
                                   f"{'mean ' if len(heads) > 1 else ''}weight here {share:.2f}, "
                                   f"off the map {share_off:.2f} ({int(off.sum())}×)")
            who = "all heads" if head == "all" else f"head {head}"
            suptitle.set_text(f"encoder layer {layer}, query = level {level} pixel (x={x}, y={y}), "
                              f"token {data['query']}, {who}")
        update.artists = points + outside + [c for pair in crosses for c in pair] + titles + [suptitle]
        return update
    return build


def plot_sampling_points(trace, layer: int = 0, level: int = 0, x: int = 0, y: int = 0,
                         head="all", batch: int = 0, figure=None):
    """One panel per level: the reference point (+) and the sampling points, area ∝ weight."""
    return static(build_sampling_points(trace, batch), figure, (3.0 * len(level_shapes(trace)), 3.7),
                  layer=layer, level=level, x=x, y=y, head=head)


def deformable_explorer(trace, batch: int = 0) -> Explorer:
    """Widget: encoder layer, query level, query pixel (x, y) and head; redraws from the trace."""
    shapes = level_shapes(trace)
    layers = len(trace.names(pattern=PREFIX.format("*") + "sampling_locations"))
    nH = trace.config.num_heads
    h0, w0 = shapes[0]
    controls = {
        "layer": int_slider("layer", 0, 0, layers - 1),
        "level": dropdown("query level", [(f"{i}: {h}×{w}", i) for i, (h, w) in enumerate(shapes)], 0),
        "x": int_slider("x", w0 // 2, 0, w0 - 1),
        "y": int_slider("y", h0 // 2, 0, h0 - 1),
        "head": dropdown("head", ["all"] + list(range(nH)), "all"),
    }

    def on_change(explorer, name):
        if name == "level":
            h, w = shapes[controls["level"].value]
            # keep the same place in the picture when the level changes
            old_w, old_h = controls["x"].max + 1, controls["y"].max + 1
            fx, fy = (controls["x"].value + 0.5) / old_w, (controls["y"].value + 0.5) / old_h
            controls["x"].max, controls["y"].max = max(w - 1, controls["x"].value), max(h - 1, controls["y"].value)
            controls["x"].value = min(w - 1, int(fx * w))
            controls["y"].value = min(h - 1, int(fy * h))
            controls["x"].max, controls["y"].max = w - 1, h - 1

    return Explorer(build_sampling_points(trace, batch), controls, figsize=(3.0 * len(shapes), 3.7),
                    title="deformable sampling", on_change=on_change)
