"""The architecture on one page, drawn from a `Trace`: every arrow carries its live shape.

    figure = architecture_diagram(trace_shapes(M2FConfig.seed()))   # the seed's picture
    figure = architecture_diagram(trace_shapes(M2FConfig.small()))  # redrawn at any config

The seed note's own picture is missing (a local file path); this replaces it.
"""
from __future__ import annotations

from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from .explorer import new_figure

PD = "panoptic_head.pixel_decoder."
HD = "panoptic_head."
COLOURS = dict(input="#e8e8e8", backbone="#cfe2f3", pixel="#d9ead3", encoder="#b6d7a8",
               decoder="#fce5cd", head="#f4cccc", out="#ead1dc")


def shape_text(shape) -> str:
    return "×".join(str(s) for s in shape)


def _box(ax, x, y, w, h, title, body, colour):
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.05,rounding_size=0.15",
                                facecolor=colour, edgecolor="#444444", linewidth=1.0))
    ax.text(x + w / 2, y + h - 0.2, title, ha="center", va="top", fontsize=9, fontweight="bold")
    if body:
        ax.text(x + w / 2, y + h / 2 - 0.2, body, ha="center", va="center", fontsize=7, linespacing=1.3)


def _arrow(ax, start, end, label="", offset=(0.0, 0.12), ha="center", colour="#333333", rad=0.0,
           fontsize=7):
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=10, linewidth=1.0,
                                 color=colour, connectionstyle=f"arc3,rad={rad}"))
    if label:
        mx, my = (start[0] + end[0]) / 2 + offset[0], (start[1] + end[1]) / 2 + offset[1]
        ax.text(mx, my, label, ha=ha, va="bottom", fontsize=fontsize, color="#1a1a1a",
                bbox=dict(facecolor="white", edgecolor="none", alpha=0.8, pad=0.5))


def architecture_diagram(trace, figure=None):
    """Backbone → pixel decoder (encoder + FPN) → masked-attention decoder → 1 + N_dec predictions."""
    c = trace.config
    s = c.symbols()
    L, n_dec, n_enc = c.num_levels, c.num_decoder_layers, c.num_encoder_layers
    n_feats = len(c.backbone_channels)
    sh = trace.shape
    figure = figure if figure is not None else new_figure((13.0, 8.6))
    ax = figure.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, 16)
    ax.set_ylim(0, 10.6)
    ax.axis("off")
    ax.text(0.2, 10.35, f"Mask2Former at B={s['B']}, H×W={s['H']}×{s['W']}, C={s['C']}, nH={s['nH']}, "
            f"L={s['L']}, P={s['P']}, Q={s['Q']}, K={s['K']}, S={s['S']}   (shapes from a live trace)",
            fontsize=10, va="top")

    # ---- 1 backbone -----------------------------------------------------------------------------
    _box(ax, 0.2, 8.2, 2.2, 1.5, "images", "(B, C_in, H, W)\n" + shape_text(sh("images")), COLOURS["input"])
    _box(ax, 3.4, 8.2, 2.8, 1.5, "1 backbone", "ResNet\nstrides " + ", ".join(map(str, c.strides)),
         COLOURS["backbone"])
    _arrow(ax, (2.45, 8.95), (3.35, 8.95))
    feats = [f"backbone.feats.{i}" for i in range(n_feats)]
    _box(ax, 7.2, 7.9, 4.4, 1.8 + 0.1 * max(0, n_feats - 4), "feats (seed: x = extract_feat(img))",
         "\n".join(f"feats[{i}] {shape_text(sh(f))}  stride {c.strides[i]}" for i, f in enumerate(feats)),
         COLOURS["backbone"])
    _arrow(ax, (6.25, 8.95), (7.15, 8.95))

    # ---- 2 pixel decoder: projection, embeddings, flatten, concat ------------------------------
    _box(ax, 0.2, 4.6, 4.6, 2.0, "2.1 per level, low → high res",
         f"input_convs: 1×1 conv + GN → C={s['C']}\n+ pos_embed (sine) + level_encoding[l]\n"
         f"flatten(2).permute(2, 0, 1) → (H_l·W_l, B, C)\nreference points ((x+0.5)/W_l, (y+0.5)/H_l)",
         COLOURS["pixel"])
    enc_levels = [n_feats - 1 - i for i in range(L)]           # backbone index of level i
    _arrow(ax, (7.6, 7.85), (3.2, 6.65), "levels 0…L−1 = " + ", ".join(f"feats[{f}]" for f in enc_levels),
           offset=(-0.3, 0.05))
    _box(ax, 5.6, 4.6, 3.6, 2.0, "2.2 concatenate",
         f"encoder_inputs {shape_text(sh(PD + 'encoder_inputs'))}\n"
         f"spatial_shapes {shape_text(sh(PD + 'spatial_shapes'))}, level_start_index\n"
         f"reference_points {shape_text(sh(PD + 'reference_points'))}\n"
         f"padding_masks {shape_text(sh(PD + 'padding_masks'))}",
         COLOURS["pixel"])
    _arrow(ax, (4.85, 5.4), (5.55, 5.4), "L × (H_l·W_l, B, C)", offset=(0, 0.08), fontsize=6)
    layer0 = PD + "encoder.layers.0.self_attn."
    _box(ax, 10.6, 4.6, 5.2, 2.0, f"3.3–3.4 deformable encoder ×{n_enc}",
         f"sampling_offsets {shape_text(sh(layer0 + 'sampling_offsets'))}\n"
         f"attention_weights {shape_text(sh(layer0 + 'attention_weights'))}\n"
         f"sampling_locations = ref + offsets / (W_l, H_l)\n"
         f"each query reads L·P = {L * c.num_points} points per head",
         COLOURS["encoder"])
    _arrow(ax, (9.25, 5.1), (10.55, 5.1), "(S, B, C)\n" + shape_text(sh(PD + "encoder_inputs")),
           offset=(0, 0.08), fontsize=6)

    # ---- 3.5 split, 3.6 FPN -----------------------------------------------------------------------
    _box(ax, 10.6, 2.5, 5.2, 1.5, "3.5 split back into maps",
         "memory.permute(1, 2, 0), split over S, reshape\n(the seed leaves out the permute)", COLOURS["encoder"])
    _arrow(ax, (13.2, 4.55), (13.2, 4.05), "memory " + shape_text(sh(PD + "memory")), offset=(0.1, -0.12),
           ha="left")
    _box(ax, 4.6, 2.5, 4.6, 1.5, "3.6 FPN + mask_feature",
         f"lateral 1×1 on feats[0] + upsampled last map,\n3×3 conv, then 1×1 conv → C_m={s['C_m']}",
         COLOURS["pixel"])
    memories = [PD + f"multi_scale_memories.{i}" for i in range(L)]
    _arrow(ax, (10.55, 3.0), (9.25, 3.0), "multi_scale_\nmemories", offset=(0, 0.05), fontsize=6)
    _arrow(ax, (9.9, 7.85), (8.9, 4.05), f"feats[0] {shape_text(sh(feats[0]))}", offset=(0.15, 0.6),
           ha="left", fontsize=6)

    # ---- decoder -------------------------------------------------------------------------------------
    _box(ax, 0.2, 0.2, 3.0, 1.8, "3.2 queries", f"query_feat {shape_text(sh(HD + 'query_feat'))}\n"
         f"query_embed {shape_text(sh(HD + 'query_embed'))}\n(Q, C) repeated over B", COLOURS["decoder"])
    _box(ax, 4.0, 0.2, 5.4, 1.8, f"3.1 masked-attention decoder ×{n_dec}",
         f"layer i: cross-attn to level i % {L}, self-attn, FFN\nattn_mask (B·nH, Q, H_l·W_l):\n"
         + ", ".join(shape_text(sh(HD + f"attn_mask.{i}")) for i in range(L)), COLOURS["decoder"])
    _arrow(ax, (3.25, 1.1), (3.95, 1.1), "(Q,B,C)", offset=(0, 0.08), fontsize=6)
    _arrow(ax, (11.6, 2.45), (8.6, 2.05), "", rad=0.0)
    ax.text(10.0, 2.32, "decoder_inputs (+ level_embed): " +
            ", ".join(shape_text(sh(HD + f"decoder_inputs.{i}")) for i in range(L)), fontsize=6,
            ha="center", va="bottom", bbox=dict(facecolor="white", edgecolor="none", alpha=0.8, pad=0.5))
    _box(ax, 10.3, 0.2, 2.8, 1.8, "3.3 forward_head",
         f"×{1 + n_dec}: before layer 0\nand after each layer\ncls_embed, mask_embed, einsum",
         COLOURS["head"])
    _arrow(ax, (9.45, 1.3), (10.25, 1.3), "(Q,B,C)", offset=(0, 0.06), fontsize=6)
    _arrow(ax, (6.9, 2.45), (11.0, 2.05), "", rad=-0.15)
    ax.text(6.3, 2.12, "mask_features " + shape_text(sh(PD + "mask_features")), fontsize=6, ha="center",
            va="bottom", bbox=dict(facecolor="white", edgecolor="none", alpha=0.8, pad=0.5))
    _arrow(ax, (10.25, 0.5), (9.45, 0.5), "attn_mask", offset=(0, 0.04), fontsize=6)
    _box(ax, 13.9, 0.2, 1.9, 1.8, "outputs", f"cls_pred\n{shape_text(sh(HD + 'cls_pred.0'))}\n"
         f"mask_pred\n{shape_text(sh(HD + 'mask_pred.0'))}\n×{1 + n_dec}", COLOURS["out"])
    _arrow(ax, (13.15, 1.1), (13.85, 1.1))
    return figure
