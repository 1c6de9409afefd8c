"""What the decoder attends to (seed dec 3.4): masked cross-attention and self-attention weights.

Decoder layer i's cross-attention is ordinary multi-head attention over every pixel of level
`i % L`: for query q and head h, `softmax(q·kᵀ/√D)` over the `H_l·W_l` pixels, where the
attention mask puts −inf on the pixels the previous prediction calls background. A trace
records, per layer, `cross_attn.attn_scores` (before the mask), `cross_attn.attn_logits` (−inf
where masked), `cross_attn.attn_weights` `(B, nH, Q, H_l·W_l)` and `self_attn.attn_weights`
`(B, nH, Q, Q)` (the self-attention has no mask).

    d = cross_attention_data(trace, layer=0, query=3, head=0)   # weights with / without mask
    plot_cross_attention(trace, layer=0, query=3, head=0)       # mask | weights | weights unmasked
    plot_self_attention(trace, layer=0, head=0)                 # the Q×Q map
    matched_queries(trace)                                      # queries that found an object
    cross_attention_explorer(trace)                             # widget over layer, query and head
"""
from __future__ import annotations

import numpy as np
from matplotlib.ticker import MaxNLocator

from ._common import as_numpy, kept, level_shapes, show_image
from .explorer import Explorer, int_slider, new_figure
from .images import image_of

LAYER = "panoptic_head.transformer_decoder.layers.{}."


def colour_bar(figure, mappable, ax, label: str = "", sigmoid: bool = False):
    """A colour bar beside `ax`; for a sigmoid map, ticks 0 / 0.5 / 1 and a line at the 0.5 threshold."""
    bar = figure.colorbar(mappable, ax=ax, fraction=0.046, pad=0.03)
    bar.ax.tick_params(labelsize=7)
    if label:
        bar.set_label(label, fontsize=7)
    if sigmoid:
        bar.set_ticks([0, 0.5, 1])
        bar.ax.axhline(0.5, color="red", linewidth=1.5)
    return bar


def cross_attention_data(trace, layer: int, query: int, head: int = 0, batch: int = 0) -> dict:
    """Query `query`, head `head` of decoder layer `layer`, as `(H_l, W_l)` maps of its level.

    * `weights`: the recorded attention weights (after the mask and the softmax)
    * `weights_unmasked`: the softmax of the same scores without the mask
    * `blocked`: the mask the layer used (True = −inf); `reset`: the row was all blocked and reset
    * `inside`: how much of the unmasked weight already fell on the allowed pixels
    """
    L = trace.config.num_levels
    level = layer % L
    h, w = level_shapes(trace)[level]
    nH = trace.config.num_heads
    prefix = LAYER.format(layer)
    weights = kept(trace, prefix + "cross_attn.attn_weights")[batch, head, query]     # (H_l·W_l,)
    scores = kept(trace, prefix + "cross_attn.attn_scores")[batch, head, query]       # (H_l·W_l,)
    blocked = kept(trace, prefix + "attn_mask")[batch * nH + head, query]             # (H_l·W_l,)
    raw = kept(trace, f"panoptic_head.attn_mask.{layer}")[batch * nH + head, query]   # (H_l·W_l,)
    unmasked = scores.softmax(-1)                                                     # (H_l·W_l,)
    return dict(level=level, size=(h, w), weights=as_numpy(weights.view(h, w)),
                weights_unmasked=as_numpy(unmasked.view(h, w)),
                blocked=as_numpy(blocked.view(h, w)).astype(bool),
                reset=bool(raw.all()), inside=float(unmasked[~blocked].sum()))


def matched_queries(trace, index: int = -1, batch: int = 0, threshold: float = 0.5) -> list[int]:
    """Queries whose prediction `index` names an object (not no-object) with probability ≥ `threshold`,
    best first: the queries whose attention is worth looking at."""
    n = len(trace.names(pattern="panoptic_head.cls_pred.*"))
    probs = kept(trace, f"panoptic_head.cls_pred.{index % n}")[batch].softmax(-1)[:, :-1]  # (Q, K-1)
    best = probs.max(-1).values                                                            # (Q,)
    order = best.argsort(descending=True)
    return [int(q) for q in order if float(best[q]) >= threshold]


def _image_panel(ax, image, W, H):
    if image is not None:
        show_image(ax, image)
    ax.set_xlim(0, W)
    ax.set_ylim(H, 0)
    ax.set_xlabel("x (image pixels)", fontsize=7)
    ax.set_ylabel("y (image pixels)", fontsize=7)
    ax.tick_params(labelsize=6)


def plot_cross_attention(trace, layer: int = 0, query: int = 0, head: int = 0, batch: int = 0,
                         figure=None):
    """Three panels over the picture: the attention mask that the layer used (red = blocked), the
    weights it computed (with the mask), and the softmax of the same scores without the mask.

    Each weight map has its own colour scale (0 to its largest weight) and the allowed pixels
    outlined in white: on one shared scale the unmasked map, spread over every pixel, would look
    empty, and its weight outside the mask would be hidden."""
    d = cross_attention_data(trace, layer, query, head, batch)
    H, W = trace.config.image_size
    h, w = d["size"]
    image = image_of(trace, batch)
    figure = figure if figure is not None else new_figure((11.0, 3.6))
    axes = figure.subplots(1, 3)
    extent = (0, W, H, 0)
    _image_panel(axes[0], image, W, H)
    veil = np.zeros((h, w, 4))
    veil[..., 0] = 1.0
    veil[..., 3] = np.where(d["blocked"], 0.6, 0.0)
    axes[0].imshow(veil, extent=extent, interpolation="nearest")
    note = "all blocked → reset, none blocked" if d["reset"] else \
        f"{int(d['blocked'].sum())} of {h * w} blocked (red)"
    axes[0].set_title(f"attn_mask, layer {layer} (level {d['level']}, {h}×{w})\n{note}", fontsize=8)
    for ax, key, title in ((axes[1], "weights", "with the mask (what the model uses)"),
                           (axes[2], "weights_unmasked", "mask removed (softmax of attn_scores)")):
        _image_panel(ax, image, W, H)
        shown = ax.imshow(d[key], extent=extent, cmap="magma", vmin=0, vmax=float(d[key].max()), alpha=0.8,
                          interpolation="nearest")
        if d["blocked"].any() and not d["blocked"].all():
            ys, xs = (np.arange(h) + 0.5) * H / h, (np.arange(w) + 0.5) * W / w   # pixel centres, image units
            ax.contour(xs, ys, (~d["blocked"]).astype(float), levels=[0.5], colors="white", linewidths=1.0)
        colour_bar(figure, shown, ax, "attention weight (own scale)")
        ax.set_title(f"query {query}, head {head}: {title}", fontsize=8)
    axes[2].text(0.02, 0.02, f"{d['inside']:.2f} inside the mask (white line), {1 - d['inside']:.2f} outside",
                 transform=axes[2].transAxes, fontsize=7, color="white",
                 bbox=dict(facecolor="black", alpha=0.6, pad=1, linewidth=0))
    figure.tight_layout()
    return figure


def plot_self_attention(trace, layer: int = 0, head: int = 0, batch: int = 0, queries=None,
                        figure=None):
    """The Q×Q self-attention weights of one layer and head: row = the query that reads, column =
    the query it reads from. `queries` (e.g. `matched_queries(trace)`) are marked on both axes."""
    weights = kept(trace, LAYER.format(layer) + "self_attn.attn_weights")[batch, head]  # (Q, Q)
    Q = weights.shape[0]
    figure = figure if figure is not None else new_figure((4.6, 4.0))
    ax = figure.subplots()
    shown = ax.imshow(as_numpy(weights), cmap="magma", vmin=0, interpolation="nearest")
    colour_bar(figure, shown, ax, "attention weight")
    ax.set_xlabel("key: the query read from", fontsize=8)
    ax.set_ylabel("the query that reads", fontsize=8)
    ax.tick_params(labelsize=6)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    for q in queries or ():
        ax.axhline(q, color="cyan", linewidth=0.8, alpha=0.8)
        ax.axvline(q, color="cyan", linewidth=0.8, alpha=0.8)
    marked = f"; cyan: queries {list(queries)}" if queries else ""
    ax.set_title(f"self-attention, layer {layer}, head {head}: {Q}×{Q}, no mask{marked}", fontsize=8)
    figure.tight_layout()
    return figure


def build_cross_attention(trace, batch: int = 0):
    """`build(figure) -> update(layer, query, head)` for the explorer: the mask over the picture, and
    the weights with and without it, each divided by its own largest weight so one colour bar
    (0 to 1) serves every layer; the caption gives the largest weights."""
    image = image_of(trace, batch)
    H, W = trace.config.image_size
    extent = (0, W, H, 0)

    def build(figure):
        figure.subplots_adjust(left=0.06, right=0.93, bottom=0.14, top=0.9, wspace=0.35)
        axes = figure.subplots(1, 3)
        for ax in axes:
            _image_panel(ax, image, W, H)
        veil = axes[0].imshow(np.zeros((1, 1, 4)), extent=extent, interpolation="nearest")
        maps = [ax.imshow(np.zeros((1, 1)), extent=extent, cmap="magma", vmin=0, vmax=1, alpha=0.8,
                          interpolation="nearest") for ax in axes[1:]]
        colour_bar(figure, maps[1], list(axes), "weight ÷ largest weight of the map")
        titles = [ax.set_title("", fontsize=8) for ax in axes]

        def update(layer, query, head):
            d = cross_attention_data(trace, layer, query, head, batch)
            h, w = d["size"]
            overlay = np.zeros((h, w, 4))
            overlay[..., 0] = 1.0
            overlay[..., 3] = np.where(d["blocked"], 0.6, 0.0)
            veil.set_data(overlay)
            note = "all blocked → reset" if d["reset"] else f"{int(d['blocked'].sum())} of {h * w} blocked (red)"
            titles[0].set_text(f"attn_mask, layer {layer}, level {d['level']} ({h}×{w}): {note}")
            for artist, key, title, k in ((maps[0], "weights", "with the mask", 1),
                                          (maps[1], "weights_unmasked", "without the mask", 2)):
                largest = float(d[key].max())
                artist.set_data(d[key] / largest)
                titles[k].set_text(f"query {query}, head {head}, {title}: largest weight {largest:.2f}")
            titles[2].set_text(titles[2].get_text() + f"; {d['inside']:.2f} of it inside the mask")
        update.artists = [veil, *maps, *titles]
        return update
    return build


def cross_attention_explorer(trace, batch: int = 0, query: int = 0) -> Explorer:
    """Widget: decoder layer, query and head; the cross-attention weights with and without the mask,
    from the cached trace (trace with `keep` covering `*.attn_mask*`, `*cross_attn.attn_*`)."""
    config = trace.config
    controls = {"layer": int_slider("layer", 0, 0, config.num_decoder_layers - 1),
                "query": int_slider("query", query, 0, config.num_queries - 1),
                "head": int_slider("head", 0, 0, config.num_heads - 1)}
    return Explorer(build_cross_attention(trace, batch), controls, figsize=(9.0, 3.2),
                    title="cross-attention")
