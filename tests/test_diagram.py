"""`python -m m2f_teach diagram`: the architecture with live shapes, legible and uncluttered."""
import itertools

import pytest
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from m2f_teach import M2FConfig
from m2f_teach.__main__ import main
from m2f_teach.tracing import trace_shapes
from m2f_teach.viz.diagram import BODY_PT, LABEL_PT, architecture_diagram, cjk_font

MARGIN = 2.0   # pixels: touching is allowed, overlapping is not


def _layout(config, lang="en"):
    figure = architecture_diagram(trace_shapes(config), lang=lang)
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    ax = figure.axes[0]
    texts = [t for t in ax.texts if t.get_text()]
    extents = {t: t.get_window_extent(renderer) for t in texts}
    boxes = [p.get_window_extent(renderer) for p in ax.patches if isinstance(p, FancyBboxPatch)]
    segments = []
    for patch in ax.patches:
        if isinstance(patch, FancyArrowPatch):
            a, b = patch._posA_posB
            segments.append((tuple(ax.transData.transform(a)), tuple(ax.transData.transform(b))))
    for line in ax.lines:
        points = [tuple(p) for p in ax.transData.transform(line.get_xydata())]
        segments += list(zip(points[:-1], points[1:]))
    return figure, texts, extents, boxes, segments


def _overlap(a, b) -> bool:
    return (a.x0 < b.x1 - MARGIN and b.x0 < a.x1 - MARGIN and a.y0 < b.y1 - MARGIN and b.y0 < a.y1 - MARGIN)


def _inside(point, box, margin=MARGIN) -> bool:
    x, y = point
    return box.x0 + margin < x < box.x1 - margin and box.y0 + margin < y < box.y1 - margin


def _crosses(segment, box) -> bool:
    (x0, y0), (x1, y1) = segment
    return any(_inside((x0 + (x1 - x0) * k / 200, y0 + (y1 - y0) * k / 200), box) for k in range(201))


def _segments_cross(s, t) -> bool:
    def orient(p, q, r):
        return (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])
    if set(s) & set(t):                      # consecutive pieces of one bent arrow
        return False
    d1, d2 = orient(*t, s[0]), orient(*t, s[1])
    d3, d4 = orient(*s, t[0]), orient(*s, t[1])
    return d1 * d2 < 0 and d3 * d4 < 0


def _has_cjk_font() -> bool:
    try:
        cjk_font()
        return True
    except ValueError:
        return False


@pytest.mark.parametrize("preset, lang", [("seed", "en"), ("small", "en"), ("seed", "zh")])
def test_diagram_labels_boxes_and_arrows_do_not_collide(preset, lang):
    if lang == "zh" and not _has_cjk_font():
        pytest.skip("no font with Chinese glyphs (Debian: fonts-noto-cjk or fonts-wqy-microhei)")
    figure, texts, extents, boxes, segments = _layout(M2FConfig.preset(preset), lang)
    for a, b in itertools.combinations(texts, 2):
        assert not _overlap(extents[a], extents[b]), f"{a.get_text()!r} overlaps {b.get_text()!r}"
    labels = [t for t in texts if t.get_gid() == "arrow-label"]
    for label in labels:
        assert not any(_overlap(extents[label], box) for box in boxes), f"{label.get_text()!r} sits on a box"
    for text in (t for t in texts if t.get_gid() == "box-text"):
        e = extents[text]
        assert any(b.x0 <= e.x0 and e.x1 <= b.x1 and b.y0 <= e.y0 and e.y1 <= b.y1 for b in boxes), \
            f"{text.get_text()!r} spills out of its box"
    for segment in segments:
        assert not any(_crosses(segment, box) for box in boxes), f"an arrow at {segment} crosses a box"
        assert not any(_crosses(segment, extents[t]) for t in texts), f"an arrow at {segment} crosses a label"
    for s, t in itertools.combinations(segments, 2):
        assert not _segments_cross(s, t), f"arrows {s} and {t} cross"
    width_in = figure.get_size_inches()[0]
    assert min(BODY_PT, LABEL_PT) >= 8 and width_in <= 13.34, "legible on a 16:9 slide (13.33 in wide)"


def test_diagram_names_the_decoder_steps_as_the_table_does():
    _, texts, *_ = _layout(M2FConfig.seed())
    titles = " | ".join(t.get_text() for t in texts)
    for step in ("dec 3.1 masked-attention decoder ×9", "dec 3.2 queries", "dec 3.3 forward_head",
                 "3.3–3.4 deformable encoder ×6", "2.2 concatenate", "3.6 FPN"):
        assert step in titles


def test_diagram_shows_the_split_maps_and_the_positional_encodings_path():
    _, texts, *_ = _layout(M2FConfig.seed())
    words = " | ".join(t.get_text() for t in texts)
    assert "2×256×32×32, 2×256×64×64, 2×256×128×128" in words        # 3.5's maps
    assert "sine encoding of each map (key_pos):\n1024×2×256, 4096×2×256, 16384×2×256" in words


def test_diagram_in_chinese():
    if not _has_cjk_font():
        pytest.skip("no font with Chinese glyphs (Debian: fonts-noto-cjk or fonts-wqy-microhei)")
    _, texts, *_ = _layout(M2FConfig.seed(), "zh")
    words = " | ".join(t.get_text() for t in texts)
    assert "3.5 拆分为多尺度特征图" in words and "dec 3.1 掩码注意力解码器 ×9" in words
    assert "deformable encoder" not in words and "2×21504×8×3×4×2" in words


@pytest.mark.parametrize("suffix, magic", [("svg", b"<?xml"), ("pdf", b"%PDF"), ("png", b"\x89PNG")])
def test_cli_writes_each_format(tmp_path, capsys, suffix, magic):
    target = tmp_path / f"arch.{suffix}"
    main(["diagram", "--preset", "small", "-o", str(target), "--dpi", "50"])
    assert target.read_bytes().startswith(magic)
    assert "wrote" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == [target.name]     # no temporary file left


def test_cli_svg_is_the_same_every_run(tmp_path):
    a, b = tmp_path / "a.svg", tmp_path / "b.svg"
    main(["diagram", "--preset", "small", "-o", str(a)])
    main(["diagram", "--preset", "small", "-o", str(b)])
    assert a.read_bytes() == b.read_bytes()
