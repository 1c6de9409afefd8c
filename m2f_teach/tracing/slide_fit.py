"""Measure a table's rows with pdflatex and pack them into beamer frames that are full.

    sizes = measure(preamble, body)              # {key: (width, height, depth)} in pt, from pdflatex
    frames = pack(heights, available, header)    # rows → frames, each filled as far as it goes

A row's height depends on TeX's line breaking in each column, which an estimate only
approaches. So `table_latex.latex_slides` typesets every row once, alone, in the frame's own
font, columns and title (`measure`), reads each box's height and depth from the log, and fills
frames greedily with those heights (`pack`): a frame takes rows while the header, the rules
and the rows fit the space below the title, which is measured in the same run with
`\\pdfsavepos`. Rows in a `tabular` stack without glue between them, so a frame's table is as
tall as its header plus the sum of its rows (`tests/test_table_latex.py` checks this against
the compiled slides). Without pdflatex the caller falls back to an estimate.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile

PT_PER_SP = 1 / 65536
LOG_LINE = re.compile(r"^MTF (\S+) (-?[\d.]+)pt ?(-?[\d.]+)pt ?(-?[\d.]+)pt$", re.M)
POSITION = re.compile(r"^MTF (\S+) (-?\d+)$", re.M)


def have_pdflatex() -> bool:
    return shutil.which("pdflatex") is not None


def box(key: str, content: str) -> str:
    """LaTeX that sets `content` in an hbox and writes `MTF key width height depth` to the log."""
    return (rf"\setbox0\hbox{{{content}}}\immediate\write16{{MTF {key} \the\wd0\space\the\ht0\space"
            r"\the\dp0}%")


def mark(key: str) -> str:
    r"""LaTeX that writes `MTF key y` (the vertical position on the page, in sp) at shipout."""
    return rf"\pdfsavepos\write16{{MTF {key} \the\pdflastypos}}%"


def measure(document: str) -> tuple[dict[str, tuple[float, float, float]], dict[str, float]]:
    """Compile `document` (holding `box` and `mark` lines) once; return the boxes' (width,
    height, depth) and the marks' positions, in pt. Raises `RuntimeError` with the log's
    first error when pdflatex fails."""
    with tempfile.TemporaryDirectory(prefix="m2f-measure-") as folder:
        with open(os.path.join(folder, "m.tex"), "w", encoding="utf-8") as f:
            f.write(document)
        env = dict(os.environ, max_print_line="100000")   # one log line per measurement
        result = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "m.tex"],
                                cwd=folder, capture_output=True, text=True, errors="replace",
                                timeout=300, env=env)
        log_path = os.path.join(folder, "m.log")
        log = open(log_path, encoding="utf-8", errors="replace").read() if os.path.exists(log_path) else ""
    if result.returncode != 0:
        error = next((line for line in log.splitlines() if line.startswith("!")), result.stdout[-300:])
        raise RuntimeError(f"pdflatex could not typeset the slides to measure them: {error}")
    boxes = {k: (float(w), float(h), float(d)) for k, w, h, d in LOG_LINE.findall(log)}
    marks = {k: int(y) * PT_PER_SP for k, y in POSITION.findall(log)}
    return boxes, marks


def pack(heights: list[float], available: float, header: float, most: int | None = None) -> list[list[int]]:
    """Row indices in frames: each frame takes rows while `header` plus its rows' heights fit
    `available` (and, with `most`, while it has fewer than `most` rows). A row taller than a
    whole frame gets a frame to itself."""
    frames: list[list[int]] = []
    current: list[int] = []
    used = header
    for i, height in enumerate(heights):
        full = used + height > available + 0.01 or (most is not None and len(current) >= most)
        if current and full:
            frames.append(current)
            current, used = [], header
        current.append(i)
        used += height
    if current or not frames:
        frames.append(current)
    return frames
