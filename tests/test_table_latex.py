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
    assert tex.count(r"\end{frame}") == len(frames) == tex.count(r"\begin{tabularx}{\linewidth}")
    assert r"\framesubtitle{B=2, H$\times$W=1024$\times$1024" in tex
    assert tex.count(r"\toprule") == len(frames)          # the header repeats on every frame
    assert r"\texttt{(2, 21504, 8, 3, 4, 2)}" in tex
    body_rows = sum(1 for line in tex.splitlines() if line.endswith(r"\\")) - len(frames)
    assert body_rows == len(seed_trace.table())            # every row once
    assert "documentclass" not in tex


def test_cli_slides_default_to_latex(capsys, tmp_path):
    target = tmp_path / "shapes.tex"
    main(["table", "--preset", "small", "--slides", "--standalone", "--short-names", "-o", str(target)])
    tex = target.read_text()
    assert tex.startswith("% Mask2Former shapes at B=2, H×W=128×128")
    assert r"\documentclass[aspectratio=169]{beamer}" in tex and tex.rstrip().endswith(r"\end{document}")
    assert r"\texttt{sampling\_\allowbreak{}offsets $\times$6}" in tex


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
