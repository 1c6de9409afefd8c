"""The architecture on one page, drawn from a `Trace`: every arrow carries its live shape.

    figure = architecture_diagram(trace_shapes(M2FConfig.seed()))   # the seed's picture
    figure = architecture_diagram(trace_shapes(M2FConfig.small()))  # redrawn at any config
    figure = architecture_diagram(trace, lang="zh")                  # in Chinese (needs a CJK font)

The seed note's own picture is missing (a local file path); this replaces it.
"""
from __future__ import annotations

from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from .explorer import new_figure

PD = "panoptic_head.pixel_decoder."
HD = "panoptic_head."
COLOURS = dict(input="#e8e8e8", backbone="#cfe2f3", pixel="#d9ead3", encoder="#b6d7a8",
               decoder="#fce5cd", head="#f4cccc", out="#ead1dc")


TITLE_PT, BODY_PT, LABEL_PT = 11.5, 10, 8.5     # at 13 in wide: about the same on a 16:9 slide
LANGUAGES = ("en", "zh")
# fonts with Chinese glyphs, the first one installed is used for `lang="zh"`
CJK_FONTS = ("Noto Sans CJK SC", "Source Han Sans SC", "WenQuanYi Micro Hei", "WenQuanYi Zen Hei",
             "AR PL UMing CN", "SimHei", "Microsoft YaHei", "PingFang SC")
# the diagram's words in Chinese, the seed note's terms (formulas and names stay as they are)
WORDS_ZH = {
    "images": "输入图像 images", "1 backbone": "1 主干网络", "strides": "步长", "stride": "步长",
    "feats (seed: x = extract_feat(img))": "feats（seed：x = extract_feat(img)）",
    "2.1 per level, low → high": "2.1 逐层，由低到高分辨率", "2.2 concatenate": "2.2 拼接",
    "deformable encoder": "可变形编码器", "3.5 split back into maps": "3.5 拆分为多尺度特征图",
    "3.6 FPN + mask_feature": "3.6 FPN + mask_feature", "dec 3.2 queries": "dec 3.2 查询",
    "masked-attention decoder": "掩码注意力解码器", "outputs": "输出",
    "each query reads": "每个查询读取", "points per head": "个采样点（每个头）",
    "(Q, C) repeated over B": "(Q, C) 在 B 上重复", "layer i: cross-attn to level": "第 i 层：交叉注意力看层级",
    "self-attn, FFN": "自注意力, FFN", "before layer 0\nand after each layer": "第 0 层之前\n及每层之后",
    "levels 0…L−1 =": "层级 0…L−1 =", "(the seed leaves out the permute)": "（seed 漏写了 permute）",
    "split over S,": "沿 S 拆分,", "lateral 1×1 on feats[0] + upsampled last map,": "feats[0] 横向 1×1 + 上采样的最后一张图,",
    "3×3 conv, then 1×1 conv": "3×3 卷积, 再 1×1 卷积", "sine encoding of each map (key_pos):": "每张图的正弦编码（key_pos）:",
    "shapes from a live trace": "形状来自实际追踪",
}


def _zh(text: str) -> str:
    for english in sorted(WORDS_ZH, key=len, reverse=True):
        text = text.replace(english.replace("\\n", "\n"), WORDS_ZH[english].replace("\\n", "\n"))
    return text


def cjk_font() -> str:
    """The family name of an installed font with Chinese glyphs, or a `ValueError` that says
    which to install."""
    from matplotlib import font_manager
    for attempt in range(2):
        installed = {f.name for f in font_manager.fontManager.ttflist}
        for name in CJK_FONTS:
            if name in installed:
                return name
        if attempt == 0:                 # a font installed after matplotlib cached its list
            for path in font_manager.findSystemFonts():
                if path.lower().endswith((".ttc", ".otf", ".ttf")) and path not in {
                        f.fname for f in font_manager.fontManager.ttflist}:
                    try:
                        font_manager.fontManager.addfont(path)
                    except (OSError, RuntimeError, ValueError):
                        continue
    raise ValueError("--lang zh: no font with Chinese glyphs is installed; install one "
                     "(Debian: fonts-noto-cjk or fonts-wqy-microhei) and run again")


def shape_text(shape) -> str:
    return "×".join(str(s) for s in shape)


def _box(ax, x, y, w, h, title, body, colour):
    """A rounded box with a bold title at the top and its body below (never on top of it)."""
    title, body = ax._m2f_words(title), ax._m2f_words(body)
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0,rounding_size=0.12",
                                facecolor=colour, edgecolor="#444444", linewidth=1.0, gid="box"))
    ax.text(x + w / 2, y + h - 0.1, title, ha="center", va="top", fontsize=TITLE_PT,
            fontweight="bold", gid="box-text")
    if body:
        ax.text(x + w / 2, y + h - 0.42, body, ha="center", va="top", fontsize=BODY_PT,
                linespacing=1.3, gid="box-text")


def _label(ax, x, y, text, ha="center", va="center", rotation=0):
    text = ax._m2f_words(text)
    ax.text(x, y, text, ha=ha, va=va, fontsize=LABEL_PT, color="#1a1a1a", rotation=rotation,
            linespacing=1.2, gid="arrow-label")


def _arrow(ax, start, end, colour="#333333"):
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=12, linewidth=1.1,
                                 color=colour, shrinkA=0, shrinkB=0, gid="arrow"))


def _path(ax, points, colour="#333333"):
    """A bent arrow: straight segments through `points`, the head on the last one."""
    xs, ys = zip(*points[:-1])
    ax.plot(xs, ys, color=colour, linewidth=1.1, solid_capstyle="butt", gid="arrow")
    _arrow(ax, points[-2], points[-1], colour)


def architecture_diagram(trace, figure=None, lang: str = "en"):
    """Backbone → pixel decoder (encoder + FPN) → masked-attention decoder → 1 + N_dec predictions.

    Four rows read top to bottom: the backbone; the pixel decoder's inputs and its deformable
    encoder; the split back into maps and the FPN; the decoder (the seed's "3、decoder" chapter,
    whose steps the table calls "dec 3.x"). No arrow crosses another arrow, a box or a label;
    `tests/test_diagram.py` checks the text extents. `lang="zh"` writes the words in Chinese
    (the names and formulas stay), in the first installed font of `CJK_FONTS`.
    """
    if lang not in LANGUAGES:
        raise ValueError(f"language {lang!r}: expected one of {', '.join(LANGUAGES)}")
    if lang == "en":
        return _draw(trace, figure, lang)
    import matplotlib
    with matplotlib.rc_context({"font.family": [cjk_font(), "DejaVu Sans"]}):
        return _draw(trace, figure, lang)


def _draw(trace, figure, lang):
    c = trace.config
    s = c.symbols()
    L, n_dec, n_enc = c.num_levels, c.num_decoder_layers, c.num_encoder_layers
    n_feats = len(c.backbone_channels)
    sh = trace.shape
    figure = figure if figure is not None else new_figure((13.0, 8.6))
    ax = figure.add_axes((0, 0, 1, 1))
    ax._m2f_words = _zh if lang == "zh" else (lambda text: text)
    ax.set_xlim(0, 13.0)
    ax.set_ylim(0, 8.6)
    ax.axis("off")
    ax.text(0.15, 8.5, ax._m2f_words(f"Mask2Former at B={s['B']}, H×W={s['H']}×{s['W']}, C={s['C']}, nH={s['nH']}, "
            f"L={s['L']}, P={s['P']}, Q={s['Q']}, K={s['K']}, S={s['S']}   (shapes from a live trace)"),
            fontsize=TITLE_PT, va="top", gid="title")

    # ---- row 1: 1 backbone --------------------------------------------------------------------
    top, h = 6.85, 1.3
    _box(ax, 0.15, top, 2.0, h, "images", "(B, C_in, H, W)\n" + shape_text(sh("images")), COLOURS["input"])
    _box(ax, 2.75, top, 2.5, h, "1 backbone", "ResNet\nstrides " + ", ".join(map(str, c.strides)),
         COLOURS["backbone"])
    _arrow(ax, (2.15, top + 0.55), (2.75, top + 0.55))
    feats = [f"backbone.feats.{i}" for i in range(n_feats)]
    _box(ax, 7.0, top, 5.2, h, "feats (seed: x = extract_feat(img))",
         "\n".join(f"feats[{i}] {shape_text(sh(f))}  stride {c.strides[i]}" for i, f in enumerate(feats)),
         COLOURS["backbone"])
    _arrow(ax, (5.25, top + 0.55), (7.0, top + 0.55))

    # ---- row 2: 2.1 per level → 2.2 concatenate → 3.3–3.4 encoder (right to left) -----------------
    y, h = 4.45, 1.65
    _box(ax, 9.2, y, 3.0, h, "2.1 per level, low → high",
         f"input_convs: 1×1 conv + GN → C={s['C']}\n+ pos_embed (sine)\n+ level_encoding[l]\n"
         f"flatten(2).permute(2, 0, 1)\n→ (H_l·W_l, B, C)", COLOURS["pixel"])
    enc_levels = [n_feats - 1 - i for i in range(L)]           # backbone index of level i
    _arrow(ax, (10.7, top), (10.7, y + h))
    _label(ax, 10.6, (top + y + h) / 2, "levels 0…L−1 = " + ", ".join(f"feats[{f}]" for f in enc_levels),
           ha="right")
    _box(ax, 4.95, y, 3.2, h, "2.2 concatenate",
         f"encoder_inputs {shape_text(sh(PD + 'encoder_inputs'))}\n"
         f"spatial_shapes {shape_text(sh(PD + 'spatial_shapes'))}, level_start_index\n"
         f"reference_points {shape_text(sh(PD + 'reference_points'))}\n"
         f"padding_masks {shape_text(sh(PD + 'padding_masks'))}",
         COLOURS["pixel"])
    _arrow(ax, (9.2, y + 0.55), (8.15, y + 0.55))
    _label(ax, 8.675, y + 0.85, "L ×\n(H_l·W_l, B, C)")
    layer0 = PD + "encoder.layers.0.self_attn."
    _box(ax, 0.15, y, 4.0, h, f"3.3–3.4 deformable encoder ×{n_enc}",
         f"sampling_offsets {shape_text(sh(layer0 + 'sampling_offsets'))}\n"
         f"attention_weights {shape_text(sh(layer0 + 'attention_weights'))}\n"
         f"sampling_locations = ref + offsets / (W_l, H_l)\n"
         f"each query reads L·P = {L * c.num_points} points per head",
         COLOURS["encoder"])
    _arrow(ax, (4.95, y + 0.55), (4.15, y + 0.55))
    _label(ax, 4.55, y + 0.8, "(S, B, C)")

    # ---- row 3: 3.5 split → 3.6 FPN; feats[0] comes down the right-hand side ------------------------
    y3, h3 = 2.3, 1.35
    _box(ax, 0.15, y3, 4.0, h3, "3.5 split back into maps",
         "memory.permute(1, 2, 0), split over S,\nreshape (the seed leaves out the permute)\n"
         + ", ".join(shape_text(sh(PD + f"multi_scale_memories.{i}")) for i in range(L)), COLOURS["encoder"])
    _arrow(ax, (2.15, y), (2.15, y3 + h3))
    _label(ax, 2.25, (y + y3 + h3) / 2, "memory " + shape_text(sh(PD + "memory")), ha="left")
    _box(ax, 7.4, y3, 4.8, h3, "3.6 FPN + mask_feature",
         f"lateral 1×1 on feats[0] + upsampled last map,\n3×3 conv, then 1×1 conv → C_m={s['C_m']}",
         COLOURS["pixel"])
    _arrow(ax, (4.15, y3 + 0.55), (7.4, y3 + 0.55))
    _label(ax, 5.775, y3 + 0.8, "multi_scale_memories")
    lane = 12.6
    _path(ax, [(12.2, top + 0.3), (lane, top + 0.3), (lane, y3 + 0.55), (12.2, y3 + 0.55)])
    _label(ax, lane + 0.17, (top + y3) / 2 + 0.6, f"feats[0] {shape_text(sh(feats[0]))}", rotation=90)

    # ---- row 4: the decoder ("dec 3.x") -----------------------------------------------------------------
    y4, h4 = 0.15, 1.6
    _box(ax, 0.15, y4, 2.3, h4, "dec 3.2 queries", f"query_feat {shape_text(sh(HD + 'query_feat'))}\n"
         f"query_embed {shape_text(sh(HD + 'query_embed'))}\n(Q, C) repeated over B", COLOURS["decoder"])
    _box(ax, 3.15, y4, 4.6, h4, f"dec 3.1 masked-attention decoder ×{n_dec}",
         f"layer i: cross-attn to level i % {L}, self-attn, FFN\nattn_mask (B·nH, Q, H_l·W_l):\n"
         + ", ".join(shape_text(sh(HD + f"attn_mask.{i}")) for i in range(L)), COLOURS["decoder"])
    _arrow(ax, (2.45, y4 + 0.7), (3.15, y4 + 0.7))
    _label(ax, 2.8, y4 + 0.92, "(Q, B, C)")
    _arrow(ax, (3.6, y3), (3.6, y4 + h4))
    _arrow(ax, (3.3, y3), (3.3, y4 + h4))
    _label(ax, 3.2, (y3 + y4 + h4) / 2, "sine encoding of each map (key_pos):\n" +
           ", ".join(shape_text(sh(HD + f"decoder_positional_encodings.{i}")) for i in range(L)), ha="right")
    _label(ax, 3.7, (y3 + y4 + h4) / 2, "decoder_inputs (+ level_embed): " +
           ", ".join(shape_text(sh(HD + f"decoder_inputs.{i}")) for i in range(L)), ha="left")
    _box(ax, 8.75, y4, 2.3, h4, "dec 3.3 forward_head",
         f"×{1 + n_dec}: before layer 0\nand after each layer\ncls_embed, mask_embed,\neinsum",
         COLOURS["head"])
    _arrow(ax, (7.75, y4 + 1.0), (8.75, y4 + 1.0))
    _label(ax, 8.25, y4 + 1.2, "(Q, B, C)")
    _arrow(ax, (8.75, y4 + 0.35), (7.75, y4 + 0.35))
    _label(ax, 8.25, y4 + 0.55, "attn_mask")
    _arrow(ax, (9.9, y3), (9.9, y4 + h4))
    _label(ax, 10.0, (y3 + y4 + h4) / 2, "mask_features " + shape_text(sh(PD + "mask_features")), ha="left")
    _box(ax, 11.45, y4, 1.5, h4, "outputs", f"cls_pred\n{shape_text(sh(HD + 'cls_pred.0'))}\n"
         f"mask_pred\n{shape_text(sh(HD + 'mask_pred.0'))}\n×{1 + n_dec}", COLOURS["out"])
    _arrow(ax, (11.05, y4 + 0.7), (11.45, y4 + 0.7))
    return figure


def save_diagram(trace, path, dpi: int = 200, lang: str = "en"):
    """Write the diagram to `path` (.svg, .pdf or .png, from the suffix), the same bytes every
    run for the same trace (no creation date; fixed SVG ids)."""
    import matplotlib

    import logging

    fmt = str(path).rsplit(".", 1)[-1].lower()
    figure = architecture_diagram(trace, lang=lang)
    metadata = {"svg": {"Date": None}, "pdf": {"CreationDate": None, "ModDate": None}}.get(fmt)
    fonts = logging.getLogger("matplotlib.font_manager")
    level = fonts.level
    fonts.setLevel(logging.ERROR)        # a CJK font without a bold face: its regular face is used
    try:
        with matplotlib.rc_context({"svg.hashsalt": "m2f-teach", "svg.fonttype": "path"}):
            figure.savefig(path, format=fmt, dpi=dpi, metadata=metadata)
    finally:
        fonts.setLevel(level)
