"""The masked-attention decoder (seed 3.1 and 3.3): which pixels each query may attend to.

Layer i attends to level `i % L`. Its attention mask comes from the prediction before it
(`forward_head` index i): the mask logits `mask_pred (B, Q, Hm, Wm)` resized to the level's
`(H_l, W_l)`, `sigmoid < 0.5` (True = blocked), repeated over the nH heads to
`(B·nH, Q, H_l·W_l)`. A row that is blocked everywhere is reset to attend everywhere.

    rows = blocked_rows(trace)                         # per layer: how many rows were reset
    plot_attention_mask(trace, layer=0, query=3)
    attention_mask_explorer(trace)                     # widget over layer and query
"""
from __future__ import annotations

import numpy as np
import torch.nn.functional as F

from ._common import as_numpy, kept, level_shapes, show_image
from .explorer import Explorer, int_slider, static
from .cross_attention import colour_bar
from .images import image_of

HEAD = "panoptic_head."


def attention_mask_data(trace, layer: int, query: int, batch: int = 0) -> dict:
    """Everything about query `query` in decoder layer `layer` (head 0: every head is a copy)."""
    config = trace.config
    nH, L = config.num_heads, config.num_levels
    level = layer % L
    h, w = level_shapes(trace)[level]
    mask_pred = kept(trace, f"{HEAD}mask_pred.{layer}")[batch, query]                # (Hm, Wm)
    raw = kept(trace, f"{HEAD}attn_mask.{layer}")[batch * nH, query]                  # (H_l·W_l,)
    used = kept(trace, f"{HEAD}transformer_decoder.layers.{layer}.attn_mask")[batch * nH, query]
    reset = bool(kept(trace, f"{HEAD}all_blocked.{layer}")[batch * nH, query])
    resized = F.interpolate(mask_pred[None, None], (h, w), mode="bilinear", align_corners=False)[0, 0]
    return dict(level=level, size=(h, w), mask_prob=as_numpy(mask_pred.sigmoid()),
                resized_prob=as_numpy(resized.sigmoid()), blocked=as_numpy(raw.view(h, w)).astype(bool),
                used_blocked=as_numpy(used.view(h, w)).astype(bool), reset=reset)


def blocked_rows(trace, batch: int | None = None) -> list[dict]:
    """Per decoder layer: its level and size, and how many of the B·nH·Q mask rows were all blocked."""
    rows = []
    layers = len(trace.names(pattern=f"{HEAD}all_blocked.*"))
    shapes = level_shapes(trace)
    L = trace.config.num_levels
    for i in range(layers):
        blocked = kept(trace, f"{HEAD}all_blocked.{i}")                               # (B·nH, Q)
        rows.append(dict(layer=i, level=i % L, size=shapes[i % L],
                         all_blocked=int(blocked.sum()), rows=int(blocked.numel())))
    return rows


def build_attention_mask(trace, batch: int = 0):
    """`build(figure) -> update(layer, query)`: the query's mask probability (Hm×Wm), its attention
    mask at the level's size (dark = blocked), and the pixels it may attend to over the picture."""
    image = image_of(trace, batch)
    H, W = trace.config.image_size

    def build(figure):
        figure.subplots_adjust(left=0.01, right=0.99, bottom=0.02, top=0.84, wspace=0.25)
        ax_prob, ax_mask, ax_img = figure.subplots(1, 3)
        prob = ax_prob.imshow(np.zeros((1, 1)), cmap="viridis", vmin=0, vmax=1, interpolation="nearest",
                              extent=(0, W, H, 0))
        mask = ax_mask.imshow(np.zeros((1, 1)), cmap="gray", vmin=0, vmax=1, interpolation="nearest",
                              extent=(0, W, H, 0))
        colour_bar(figure, prob, ax_prob, "sigmoid (red line: 0.5)", sigmoid=True)
        bar = colour_bar(figure, mask, ax_mask)
        bar.set_ticks([0, 1])
        bar.set_ticklabels(["blocked", "allowed"])
        show_image(ax_img, image)
        veil = ax_img.imshow(np.zeros((1, 1, 4)), extent=(0, W, H, 0), interpolation="nearest")
        titles = [ax.set_title("", fontsize=8) for ax in (ax_prob, ax_mask, ax_img)]
        for ax in (ax_prob, ax_mask, ax_img):
            ax.set_xlim(0, W)
            ax.set_ylim(H, 0)
            ax.set_xticks([])
            ax.set_yticks([])

        def update(layer, query):
            d = attention_mask_data(trace, layer, query, batch)
            h, w = d["size"]
            Hm, Wm = d["mask_prob"].shape
            prob.set_data(d["mask_prob"])
            titles[0].set_text(f"sigmoid(mask_pred.{layer})[q={query}]\n{Hm}×{Wm}")
            mask.set_data((~d["blocked"]).astype(float))
            titles[1].set_text(f"attn_mask resized to level {d['level']}: {h}×{w}\n"
                               f"blocked (dark) {int(d['blocked'].sum())} of {h * w}")
            allowed = ~d["used_blocked"]
            overlay = np.zeros((h, w, 4))
            overlay[..., 0] = 1.0
            overlay[..., 3] = np.where(allowed, 0.0, 0.6)             # red veil where blocked
            veil.set_data(overlay)
            note = ("ALL BLOCKED → reset: attends everywhere" if d["reset"]
                    else f"attends to {int(allowed.sum())} of {h * w} pixels")
            titles[2].set_text(f"layer {layer} cross-attention\n{note}")
        update.artists = [prob, mask, veil] + titles
        return update
    return build


def plot_attention_mask(trace, layer: int = 0, query: int = 0, batch: int = 0, figure=None):
    """Mask probability, attention mask at the level's size, and the allowed pixels on the picture."""
    return static(build_attention_mask(trace, batch), figure, (9.0, 3.3), layer=layer, query=query)


def attention_mask_explorer(trace, batch: int = 0, query: int = 0, layer: int = 0) -> Explorer:
    """Widget: decoder layer and query (opening on `layer`, `query`); shows that query's attention
    mask from the cached trace."""
    layers = len(trace.names(pattern=f"{HEAD}transformer_decoder.layers.*.attn_mask"))
    Q = trace.config.num_queries
    controls = {"layer": int_slider("layer", layer, 0, layers - 1),
                "query": int_slider("query", query, 0, Q - 1)}
    return Explorer(build_attention_mask(trace, batch), controls, figsize=(9.0, 3.3), title="attention masks")
