"""Measure a table's rows with pdflatex and pack them into beamer frames that are full.

    sizes = measure(preamble, body)              # {key: (width, height, depth)} in pt, from pdflatex
    frames = pack(heights, available, header)    # rows → frames, each filled as far as it goes

A row's height depends on TeX's line breaking in each column, which an estimate only
approaches. So `table_latex.latex_slides` typesets every row once, alone, in the frame's own
font, columns and title (`measure`), reads each box's height and depth from the log, and fills
frames with those heights (`pack`): as few frames as the rows need, each holding the header,
the rules and its rows within the space below the title, which is measured in the same run with
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
        log = ""
        if os.path.exists(log_path):
            with open(log_path, encoding="utf-8", errors="replace") as f:
                log = f.read()
    if result.returncode != 0:
        error = next((line for line in log.splitlines() if line.startswith("!")), result.stdout[-300:])
        raise RuntimeError(f"pdflatex could not typeset the slides to measure them: {error}")
    boxes = {k: (float(w), float(h), float(d)) for k, w, h, d in LOG_LINE.findall(log)}
    marks = {k: int(y) * PT_PER_SP for k, y in POSITION.findall(log)}
    return boxes, marks


def pack(heights: list[float], available: float, header: float, most: int | None = None,
         first: list[float] | None = None) -> list[list[int]]:
    """Row indices in frames, in order: as few frames as hold the rows (a frame holds `header`
    plus its rows within `available`, and with `most` at most that many rows; a row taller than
    a frame gets one to itself), and among those the split whose emptiest frame before the
    last is fullest, so no frame but the last ends far above the bottom. `first[k]`: row k's
    height where it opens a frame (its step written out), where that differs from `heights[k]`."""
    n = len(heights)
    if n == 0:
        return [[]]
    first = first or heights

    def used(j: int, i: int) -> float:
        return header + first[j] + sum(heights[j + 1:i])

    def fits(j: int, i: int) -> bool:
        return i - j == 1 or (used(j, i) <= available + 0.01 and (most is None or i - j <= most))

    # best[i]: (frames, -fill of the emptiest, where the last frame starts) for the first i rows
    best: list[tuple[int, float, int] | None] = [(0, -float("inf"), 0)] + [None] * n
    for i in range(1, n + 1):
        for j in range(i - 1, -1, -1):
            if not fits(j, i):
                break
            if best[j] is not None:
                count, emptiest, _ = best[j]
                fill = used(j, i) / available
                candidate = (count + 1, max(emptiest, -fill), j)
                if best[i] is None or candidate[:2] < best[i][:2]:
                    best[i] = candidate
    # the last frame's fill does not count: choose where it starts
    last = min((j for j in range(n) if fits(j, n) and best[j] is not None),
               key=lambda j: (best[j][0] + 1, best[j][1] if j else -float("inf")))
    frames, end, start = [list(range(last, n))], last, None
    while end > 0:
        start = best[end][2]
        frames.insert(0, list(range(start, end)))
        end = start
    return frames
