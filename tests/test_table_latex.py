"""LaTeX for slides and documents: frames that fit 16:9, documents that compile.

The compile tests run pdflatex where it is installed (Debian: texlive-latex-recommended and
texlive-latex-extra; `.ci/run` installs them) and fail on any overfull box in the log. Without
pdflatex they are skipped, except in CI (`CI` set), where a missing pdflatex is a failure.
"""
import os
import re
import shutil
import subprocess

import pytest

from m2f_teach import M2FConfig
from m2f_teach.__main__ import main
from m2f_teach.tracing import trace_shapes
from m2f_teach.tracing.table_latex import derivation_latex

PDFLATEX = shutil.which("pdflatex")


def need_pdflatex():
    if PDFLATEX:
        return
    reason = ("pdflatex is not installed (apt-get install texlive-latex-recommended "
              "texlive-latex-extra)")
    if os.environ.get("CI"):
        pytest.fail(f"LaTeX compile tests cannot run in CI: {reason}", pytrace=False)
    pytest.skip(reason)


def compile_latex(tex: str, folder, name="doc") -> str:
    """Compile with pdflatex; return the log. Fails on an error or an overfull box."""
    (folder / f"{name}.tex").write_text(tex, encoding="utf-8")
    result = subprocess.run([PDFLATEX, "-interaction=nonstopmode", "-halt-on-error", f"{name}.tex"],
                            cwd=folder, capture_output=True, text=True, errors="replace", timeout=300)
    log = (folder / f"{name}.log").read_text(errors="replace")
    assert result.returncode == 0, log[-3000:]
    overfull = re.findall(r"Overfull \\[hv]box.*", log)
    assert not overfull, f"{name}: {overfull[:5]}"
    assert (folder / f"{name}.pdf").stat().st_size > 0
    return log


def test_derivations_are_math_and_words_are_text():
    assert derivation_latex("S = 32·32 + 64·64 = 5120") == r"$S = 32\cdot 32 + 64\cdot 64 = 5120$"
    assert derivation_latex("K = 80 classes + 1 = 81") == r"$K = 80$ classes $+ 1 = 81$"
    assert derivation_latex("from Linear(C, 192): nH·L·P·2 = 8·3·4·2") == (
        r"from Linear$(C,\allowbreak{} 192)$: $\mathit{nH}\cdot L\cdot P\cdot 2 = 8\cdot 3\cdot 4\cdot 2$")
    assert derivation_latex("level 0: H_l, W_l = H/32, W/32 = 32, 32; values [0, 1024]") == (
        r"level 0: $H_{l},\allowbreak{} W_{l} = H/32,\allowbreak{} W/32 = 32,\allowbreak{} 32$; values [0, 1024]")


def test_slides_split_into_numbered_frames(seed_trace):
    tex = seed_trace.table().to_latex(slides=True)
    frames = re.findall(r"\\begin\{frame\}\[t\]\{Mask2Former shapes \((\d+)/(\d+)\)\}", tex)
    assert len(frames) > 1 and [int(k) for k, _ in frames] == list(range(1, len(frames) + 1))
    assert tex.count(r"\end{frame}") == len(frames) == tex.count(r"\begin{tabular}{@{}")
    assert r"\framesubtitle{B=2, H$\times$W=1024$\times$1024" in tex
    assert tex.count(r"\toprule") == len(frames)          # the header repeats on every frame
    assert r"\mbox{\texttt{(2, 21504, 8, 3, 4, 2)}}" in tex    # a shape never breaks
    body_rows = sum(1 for line in tex.splitlines() if line.endswith(r"\\") and not line.startswith(r"\multi")
                    and not line.startswith(r"\textbf"))
    assert body_rows == len(seed_trace.table())            # every row once
    assert tex.count(r"\scriptsize") == len(frames)
    assert "documentclass" not in tex


def test_cli_slides_default_to_latex(capsys, tmp_path):
    target = tmp_path / "shapes.tex"
    main(["table", "--preset", "small", "--slides", "--standalone", "--short-names", "-o", str(target)])
    tex = target.read_text()
    assert tex.startswith("% Mask2Former shapes at B=2, H×W=128×128")
    assert r"\documentclass[aspectratio=169]{beamer}" in tex and tex.rstrip().endswith(r"\end{document}")
    assert r"\texttt{sampling\_\allowbreak{}offsets $\times$6}" in tex


def test_a_range_in_a_name_is_an_en_dash_not_two_hyphens(seed_trace):
    tex = seed_trace.table().select(steps=["dec 3.3"], short_names=True).to_latex(slides=True)
    assert r"\texttt{cls\_\allowbreak{}pred.\allowbreak{}\{0{\normalfont\textendash}9\} $\times$10}" in tex
    assert "--" not in tex.replace("---", "")


def test_slides_leave_out_remarks_about_the_tracer(seed_trace):
    table = seed_trace.table()
    assert "a plain forward never does" in table.to_markdown()
    assert "plain forward" not in table.to_latex(slides=True)
    assert "普通前向" not in table.select(lang="zh").to_latex(slides=True)


def test_chinese_derivations_translate_their_words(seed_trace):
    zh = seed_trace.table().select(lang="zh", steps=["1", "dec 3.3"])
    text = zh.to_markdown()
    assert "步长 4; 通道数 = 4 × 瓶颈宽度" in text and "K = 80 个类别 + 1 = 81" in text
    assert "stride" not in text and "classes" not in text
    both = seed_trace.table().select(lang="both", steps=["1"]).to_markdown()
    assert "stride（步长） 4" in both
    assert derivation_latex("层级 0: H_l = 32") == r"层级 0: $H_{l} = 32$"


def test_slides_without_pdflatex_are_packed_by_an_estimate_and_say_so(seed_trace, monkeypatch):
    from m2f_teach.tracing import slide_fit
    monkeypatch.setattr(slide_fit, "have_pdflatex", lambda: False)
    with pytest.warns(UserWarning, match="pdflatex is not installed"):
        tex = seed_trace.table().select(steps=["3.4"], short_names=True).to_latex(slides=True)
    assert tex.count(r"\begin{frame}") >= 1 and r"\mbox{\texttt{(2, 21504, 8, 3, 4, 2)}}" in tex


def test_font_size_and_rows_per_frame(seed_trace):
    table = seed_trace.table().select(short_names=True)
    tex = table.to_latex(slides=True, font_size="footnotesize", rows_per_frame=3)
    frames = tex.split(r"\begin{frame}")[1:]
    assert all(r"\footnotesize" in f for f in frames)
    assert all(f.count(r"\addlinespace") <= 3 for f in frames) and len(frames) >= len(table) / 3
    with pytest.raises(ValueError, match="font size 'huge'"):
        table.to_latex(slides=True, font_size="huge")


def test_chinese_latex_uses_cjk(seed_trace):
    tex = seed_trace.table().select(lang="zh", steps=["1"]).to_latex(slides=True, standalone=True)
    assert r"\usepackage{CJKutf8}" in tex and r"\begin{CJK}{UTF8}{gbsn}" in tex
    assert "主干网络" in tex and tex.index(r"\end{CJK}") < tex.index(r"\end{document}")


@pytest.mark.parametrize("preset, options", [
    ("seed", {}),
    ("seed", {"short_names": True, "steps": ["3.3", "3.4"]}),
    ("seed", {"columns": ["step", "name", "shape", "derivation"], "short_names": True}),
    ("small", {"columns": ["name", "symbolic", "shape", "note", "dtype", "count"]}),
])
def test_slides_compile_without_overfull_boxes(tmp_path, preset, options):
    need_pdflatex()
    table = trace_shapes(M2FConfig.preset(preset)).table().select(**options)
    compile_latex(table.to_latex(slides=True, standalone=True), tmp_path, "slides")


def test_document_compiles_without_overfull_boxes(tmp_path, seed_trace):
    need_pdflatex()
    log = compile_latex(seed_trace.table().to_latex(standalone=True), tmp_path, "table")
    assert "Output written on table.pdf" in log


def test_chinese_slides_compile_where_cjk_is_installed(tmp_path, seed_trace):
    need_pdflatex()
    has_cjk = subprocess.run(["kpsewhich", "CJKutf8.sty"], capture_output=True, text=True).stdout.strip()
    if not has_cjk:
        pytest.skip("CJKutf8 is not installed (Debian: latex-cjk-common and latex-cjk-chinese-arphic-gbsn00lp)")
    table = seed_trace.table().select(lang="zh", short_names=True)
    compile_latex(table.to_latex(slides=True, standalone=True), tmp_path, "slides_zh")


# ---- frames filled to their height, checked on the compiled PDF ------------------------------------
FILL = 0.85          # a frame before the last has its last ink this far down its text height
WORD = re.compile(r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">([^<]*)</word>')
PROBE = r"\begin{frame}[t]{probe}\framesubtitle{probe}\scriptsize probetop\par\vskip 0pt plus 1filll probebottom\end{frame}"


def _pages(pdf) -> list[list[tuple[float, float, str]]]:
    """Each page's words as (top, bottom, text), from `pdftotext -bbox`."""
    html = subprocess.run(["pdftotext", "-bbox", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    return [[(float(m[1]), float(m[3]), m[4]) for m in WORD.findall(page)] for page in html.split("<page ")[1:]]


def _last_dark_row(pgm) -> int:
    """The lowest pixel row of a greyscale PGM with ink on it (darker than mid-grey)."""
    import numpy as np
    data = pgm.read_bytes()
    _, width, height, _, pixels = data.split(maxsplit=4)
    image = np.frombuffer(pixels, dtype=np.uint8)[: int(width) * int(height)].reshape(int(height), int(width))
    return int(np.nonzero((image < 128).any(axis=1))[0].max()) + 1


def _table_top(words) -> float:
    """The top of the first line below the frame title and subtitle."""
    lines = sorted({round(top, 1) for top, _, _ in words})
    return lines[2]


@pytest.mark.slow
@pytest.mark.parametrize("options", [
    {"short_names": True},                                   # the whole seed table
    {"short_names": True, "steps": ["3.4"]},
    {"short_names": True, "lang": "zh"},
    {"short_names": True, "lang": "both"},
], ids=["seed", "steps-3.4", "zh", "both"])
def test_slides_fill_frames_without_overflow_or_broken_shapes(tmp_path, seed_trace, options):
    """Compiled with pdflatex: no overfull box; every shape on one line of the PDF's text; each
    frame before the last filled to 85 % of its text height (its last ink, from `pdftotext
    -bbox`, against the bottom of the text area, from a probe frame, both from the top of the
    frame, where beamer's text area starts with the title); the last frame
    could not have joined the one before it; and the measured heights the frames were packed
    by match the PDF."""
    need_pdflatex()
    if options.get("lang") and not subprocess.run(["kpsewhich", "CJKutf8.sty"], capture_output=True,
                                                   text=True).stdout.strip():
        pytest.skip("CJKutf8 is not installed (Debian: latex-cjk-common and latex-cjk-chinese-arphic-gbsn00lp)")
    from m2f_teach.tracing.table_latex import latex_slides, slide_plan
    table = seed_trace.table().select(**options)
    plan = slide_plan(table)
    assert plan.measured and plan.font == "scriptsize"
    tex = latex_slides(table, standalone=True, plan=plan)
    end = r"\end{CJK}" if r"\end{CJK}" in tex else r"\end{document}"
    compile_latex(tex.replace(end, PROBE + "\n" + end, 1), tmp_path, "slides")
    raw = subprocess.run(["pdftotext", "-raw", str(tmp_path / "slides.pdf"), "-"], capture_output=True,
                         text=True, check=True).stdout
    lines = raw.splitlines()
    for row in table.rows:
        assert any(row.shape_text in line for line in lines), f"{row.shape_text} is split across lines"
    *pages, probe = _pages(tmp_path / "slides.pdf")
    assert len(pages) == len(plan.frames)
    text_bottom = max(bottom for _, bottom, word in probe if word == "probebottom")
    ink = [max(bottom for _, bottom, _ in words) for words in pages]
    tops = [_table_top(words) for words in pages]
    # the rules and the space after the last row carry no ink: the PDF's ink runs a fixed
    # distance short of the measured table on every frame (give or take a descender), or the
    # heights would not add up
    short = [plan.header + sum(plan.heights[k]) + plan.spread[k] * (len(plan.heights[k]) - 1) - (last - top)
             for k, (top, last) in enumerate(zip(tops, ink))]
    assert max(short) - min(short) < 3.0, f"measured heights and the PDF disagree: {short}"
    # the last ink, rules included, from the pages rendered at 72 dpi (1 pixel = 1 pt)
    subprocess.run(["pdftoppm", "-r", "72", "-gray", str(tmp_path / "slides.pdf"), str(tmp_path / "page")], check=True)
    images = sorted(tmp_path.glob("page-*.pgm"))
    drawn = [_last_dark_row(image) for image in images]
    fills = [row / drawn[-1] for row in drawn[:-1]]
    for k, fill in enumerate(fills[:-1]):
        assert fill >= FILL, f"frame {k + 1} of {len(pages)} is filled to {fill:.0%}"
    if len(pages) > 1:
        last_rows = sum(plan.heights[-1])
        room = text_bottom - (ink[-2] - plan.spread[-2] * (len(plan.heights[-2]) - 1))   # before spreading
        assert last_rows > room, f"the last frame's rows ({last_rows:.1f} pt) fit below frame {len(pages) - 1} ({room:.1f} pt)"
    print(f"{len(pages)} frames, filled to " + ", ".join(f"{fill:.0%}" for fill in fills))


def test_cli_font_size_and_rows_per_frame(capsys, tmp_path):
    target = tmp_path / "big.tex"
    main(["table", "--preset", "small", "--slides", "--steps", "3.4", "--short-names",
          "--font-size", "small", "--rows-per-frame", "2", "-o", str(target)])
    frames = target.read_text().split(r"\begin{frame}")[1:]
    assert frames and all(r"\small" in f and f.count(r"\addlinespace") <= 2 for f in frames)
    for bad in (["--rows-per-frame", "0"], ["--font-size", "huge"]):
        with pytest.raises(SystemExit) as exc:
            main(["table", "--preset", "small", "--slides", *bad])
        assert exc.value.code == 2
    with pytest.raises(SystemExit):
        main(["table", "--preset", "small", "--font-size", "small"])     # without --slides
    assert "add --slides" in capsys.readouterr().err
