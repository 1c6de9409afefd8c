"""The shape table in LaTeX: a `tabular` to paste, a document, or 16:9 beamer frames.

    latex_fragment(table)                    # tabular + booktabs, as wide as its content
    latex_document(table)                    # article, landscape A4, longtable: compiles as is
    latex_slides(table)                      # \\begin{frame}...\\end{frame} × as many as needed
    latex_slides(table, standalone=True, font_size="small", rows_per_frame=4)

Names break after their dots and underscores; a shape (and a symbolic shape) never breaks: its
column is as wide as the widest one. Each derivation is set in math mode
(`$S = 32 \\cdot 32 + \\dots$`) with its words as text. On slides (`slide_plan`), where the
columns do not fit one line at the chosen size, the derivation and the note share a second,
indented line as wide as the frame. `Layout` picks the widths of the other columns so the rows
take the fewest estimated lines; then every row is typeset with pdflatex and measured
(`slide_fit.py`), and the rows go onto as few frames as hold them, the emptiest frame before
the last as full as it can be, its rows spread down to the bottom. Without pdflatex the
estimate packs the frames. `tests/test_table_latex.py` compiles the slides and reads the PDF
back. Chinese (`lang="zh"` or `"both"`) needs the CJKutf8 package (Debian: latex-cjk-common and
latex-cjk-chinese-arphic-gbsn00lp).
"""
from __future__ import annotations

import re

MONOSPACE = ("name", "symbolic", "shape", "dtype")
NO_WRAP = ("symbolic", "shape", "dtype", "count")   # a shape is never broken across lines

# beamer 16:9 at its default 11 pt: the text is 140 mm (398 pt) wide, and a table below a frame
# title and subtitle has about 190 pt. Slides use \scriptsize (8 pt on 9.5 pt lines) unless asked
# for another size; frames are filled by measuring each row with pdflatex (`slide_fit.py`) and
# by the estimate below where pdflatex is missing.
SLIDE_WIDTH_PT = 398.0
SLIDE_HEIGHT_PT = 180.0
FONT_SIZES = {"tiny": (6.0, 7.0), "scriptsize": (8.0, 9.5), "footnotesize": (9.0, 11.0),
              "small": (10.0, 12.0), "normalsize": (11.0, 13.6)}       # size, line distance (pt)
DEFAULT_FONT_SIZE = "scriptsize"
LANDSCAPE_WIDTH_PT = 756.0  # A4 landscape less 1.5 cm margins, at \scriptsize
EM = {"text": 0.48, "mono": 0.531, "wide": 1.0}           # average advance; CJK is 1 em
TABCOLSEP_PT = 3.0
SLACK = {"derivation": 1.1}  # estimated / ideal width: math spacing, fewer breaks in math
# what a derivation says about the tracing tool rather than the network: kept out of slides
TOOL_REMARKS = ("computed only when a trace keeps it (a plain forward never does)",
                "仅在追踪保留它时才计算（普通前向传播不计算）")

GLOSSARY = {"B", "C", "S", "S_q", "nH", "L", "P", "D", "Q", "K", "H", "W", "H_l", "W_l", "Hm",
            "Wm", "C_m", "C_in", "N", "i", "j", "l", "x", "y", "h", "w"}
MATH_CHARS = {"·": r"\cdot ", "×": r"\times ", "→": r"\rightarrow ", "∈": r"\in ", "%": r"\bmod ",
              "{": r"\{", "}": r"\}", "–": "-", "²": "^2", "≥": r"\geq ", "−": "-", "#": r"\#",
              "&": r"\&", ",": r",\allowbreak{}", "_": r"\_", "√": r"\surd ", "ᵀ": r"^{\top}",
              "∞": r"\infty "}
TEXT_CHARS = (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#"),
              ("{", r"\{"), ("}", r"\}"), ("^", r"\^{}"), ("~", r"\~{}"), ("$", r"\$"),
              ("×", r"$\times$"), ("·", r"$\cdot$"), ("→", r"$\rightarrow$"), ("∈", r"$\in$"),
              ("–", "--"), ("²", r"$^2$"), ("≥", r"$\geq$"), ("≤", r"$\leq$"), ("<", r"$<$"),
              (">", r"$>$"), ("−", r"$-$"), ("√", r"$\surd$"), ("ᵀ", r"$^{\top}$"), ("∞", r"$\infty$"))
OPERATORS = set("=·×+-/%∈→²≥<>−^")
TOKENS = re.compile(r"(?P<cjk>[\u2e80-\u9fff\u3000-\u303f\uff00-\uffef]+)|(?P<word>[A-Za-z]+(?:_[A-Za-z0-9]+)?)"
                    r"|(?P<space>\s+)|(?P<other>.)")


def esc(text: str) -> str:
    """Plain text → LaTeX text (symbols as inline math)."""
    for a, b in TEXT_CHARS:
        text = text.replace(a, b)
    return text


def _math_symbol(word: str) -> str:
    base, _, sub = word.partition("_")
    base = base if len(base) == 1 else r"\mathit{" + base + "}"
    if sub:
        return base + "_{" + (sub if len(sub) == 1 else r"\mathrm{" + sub + "}") + "}"
    return base


def derivation_latex(text: str) -> str:
    """`"level 0: H_l = H/32 = 32; S = 32·32 + 64·64 = 5120"` → words as text, formulas in math.

    A run of words that are not glossary letters stays text (so lines can break there); a run
    of letters, numbers and operators that holds a letter or an operator becomes `$...$`."""
    runs: list[tuple[bool, list[tuple[str, str]]]] = []       # (is_text, tokens)
    for m in TOKENS.finditer(text):
        kind, value = m.lastgroup, m.group()
        is_text = (kind == "word" and value not in GLOSSARY and len(value) > 1) or kind == "cjk"
        if kind == "space" and runs:
            runs[-1][1].append((kind, value))
            continue
        if kind == "other" and value in ";:":
            is_text = True                                   # "; " and ": " between parts are prose
        if runs and runs[-1][0] == is_text:
            runs[-1][1].append((kind, value))
        else:
            runs.append((is_text, [(kind, value)]))
    out = []
    for is_text, tokens in runs:
        raw = "".join(v for _, v in tokens)
        mathy = any((k == "word") or (k == "other" and v in OPERATORS) for k, v in tokens)
        if is_text or not mathy:
            out.append(esc(raw))
            continue
        body = "".join(_math_symbol(v) if k == "word" else (" " if k == "space" else MATH_CHARS.get(v, v))
                       for k, v in tokens).strip()
        trailing = " " if raw.endswith(" ") else ""
        leading = " " if raw.startswith(" ") else ""
        out.append(f"{leading}${body}${trailing}")
    return "".join(out)


def _name_latex(name: str) -> str:
    """A dotted name in monospace that may break after each `.`, `_` and `,`."""
    text = esc(name).replace(".", r".\allowbreak{}").replace(r"\_", r"\_\allowbreak{}")
    return r"\texttt{" + _mono_dashes(text.replace(",", r",\allowbreak{}")) + "}"


def _mono_dashes(text: str) -> str:
    """`--` is two hyphens in a typewriter font: set an en-dash (`{0–9}`) in the text font."""
    return text.replace("--", r"{\normalfont\textendash}")


def _unbroken(text: str) -> str:
    """A shape in monospace on one line; a list of shapes may break between its shapes."""
    parts = re.split(r"(?<=\)), (?=\()", text)
    return r",\allowbreak{} ".join(r"\mbox{\texttt{" + _mono_dashes(esc(p)).replace(r"\_", r"\char95{}") + "}}"
                                   for p in parts)


def slide_text(table, row, column: str) -> str:
    """A cell's text on a slide: a derivation without the remarks about the tracing tool."""
    text = table.cell(row, column)
    if column == "derivation":
        text = "; ".join(part for part in text.split("; ") if not part.startswith(TOOL_REMARKS))
    return text


def cell_latex(table, row, column: str, text: str | None = None) -> str:
    text = table.cell(row, column) if text is None else text
    if column == "derivation":
        return derivation_latex(text)
    if column == "name":
        return _name_latex(text)
    if column in NO_WRAP:
        return _unbroken(text)
    if column in MONOSPACE:
        return r"\texttt{" + _mono_dashes(esc(text)) + "}"
    if column == "step":                          # forward_head may break after its underscore
        return esc(text).replace(r"\_", r"\_\allowbreak{}")
    # notes name code (`level_encoding.weight[l]`, `head/level/point`): let lines break inside
    # those words too
    text = re.sub(r"(?<=\w)([./])(?=\w)", r"\1\\allowbreak{}", esc(text))
    return text.replace(r"\_", r"\_\allowbreak{}")


def _advance(text: str, column: str, size: float = 8.0) -> float:
    """Width in points of `text` on one line at font `size` (CJK characters are 1 em)."""
    wide = sum(1 for ch in text if ord(ch) > 0x2E80)
    return size * ((len(text) - wide) * EM["mono" if column in MONOSPACE else "text"] + wide * EM["wide"])


def _pieces(text: str, column: str) -> list[str]:
    """The parts of a cell between the places where LaTeX may break a line (after a space, a
    dot or underscore of a name, and after any Chinese character; a shape only between shapes)."""
    if column in NO_WRAP:
        return re.split(r"(?<=\)), (?=\()", text)
    breaks = {"name": r"(?<=[ ._,])", "note": r"(?<=[ ._,/-])", "step": r"(?<=[ _])"}.get(column, r"(?<= )")
    return re.split(breaks + r"|(?<=[\u2e80-\u9fff\u3000-\u303f\uff00-\uffef])", text)   # CJK: anywhere


def _piece_widths(text: str, column: str, size: float) -> list[float]:
    slack = SLACK.get(column, 1.0 if column in MONOSPACE else 1.08)
    return [_advance(p, column, size) * slack for p in _pieces(text, column) if p]


def _wrap(widths: list[float], line: float) -> int:
    """Lines that pieces of these widths fill, greedily, at this line width."""
    lines, used = 1, 0.0
    for advance in widths:
        if used and used + advance > line:
            lines, used = lines + 1, 0.0
        while advance > line:                     # a piece longer than a line (overfull in TeX)
            lines, advance = lines + 1, advance - line
        used += advance
    return lines


class Layout:
    """Column widths for a table at a font size, and each row's estimated lines.

    Starting from widths in proportion to the columns' average cell, width moves in 4 pt steps
    from one column to another while that lowers the table's estimated height (the sum over rows
    of the row's tallest cell); no column gets narrower than its longest unbreakable piece, and
    a column in `fixed` (a shape column, as wide as its widest shape) keeps its width."""

    def __init__(self, table, width: float, size: float = 8.0, line: float = 9.5,
                 fixed: dict[str, float] | None = None, texts=None):
        columns = table.columns
        fixed = fixed or {}
        self.size, self.line = size, line
        # CJK glyphs sit a little higher and deeper than Latin ones, so a frame of Chinese rows
        # runs a fraction of a point taller than the line count says: keep one line spare
        self.spare_lines = 1 if _chinese(table) else 0
        self.usable = usable = width - 2 * TABCOLSEP_PT * (len(columns) - 1)
        if texts is None:
            texts = [[table.cell(r, c) for r in table.rows] for c in columns]
        texts = [list(t) + [table.header(c)] for t, c in zip(texts, columns)]
        pieces = [[_piece_widths(t, "step" if c in NO_WRAP and k == len(texts[i]) - 1 else c, size)
                   for k, t in enumerate(texts[i])] for i, c in enumerate(columns)]
        for i in range(len(columns)):            # the header is bold: wider
            pieces[i][-1] = [w * 1.12 for w in pieces[i][-1]]
        least = [fixed.get(c, max(max(p, default=0) for p in pieces[i]) + 2) for i, c in enumerate(columns)]
        self.fits = sum(least) <= usable
        if not self.fits:                         # cannot fit without overfull lines: share evenly
            widths = [usable / len(columns)] * len(columns)
        else:
            widths = self._search(pieces, least, usable, [c in fixed for c in columns])
        self.shares = [w / usable for w in widths]
        self.widths = widths
        self.row_lines = [max(_wrap(pieces[i][r], widths[i]) for i in range(len(columns)))
                          for r in range(len(table.rows))]
        self.header_lines = max(_wrap(pieces[i][-1], widths[i]) for i in range(len(columns)))

    @staticmethod
    def _search(pieces, least, usable, frozen, step: float = 4.0) -> list[float]:
        n = len(pieces)
        grid = [[least[i]] if frozen[i] else
                [least[i] + k * step for k in range(int((usable - sum(least)) / step) + 1)] for i in range(n)]
        lines = [[[_wrap(p, w) for p in pieces[i]] for w in grid[i]] for i in range(n)]
        rows = len(pieces[0])

        def height(ks):
            return sum(max(lines[i][ks[i]][r] for i in range(n)) for r in range(rows))

        average = [0 if frozen[i] else sum(map(sum, pieces[i])) / rows + 10 for i in range(n)]
        spare = usable - sum(least)
        ks = [min(int(spare * a / sum(average) / step), len(grid[i]) - 1) for i, a in enumerate(average)]
        best = height(ks)
        while True:
            moves = []
            for i in range(n):
                for j in range(n):
                    if i != j and ks[i] > 0 and ks[j] + 1 < len(grid[j]):
                        trial = list(ks)
                        trial[i] -= 1
                        trial[j] += 1
                        moves.append((height(trial), trial))
            if not moves or min(moves)[0] >= best:
                break
            best, ks = min(moves)
        widths = [grid[i][k] for i, k in enumerate(ks)]
        free = [i for i in range(n) if not frozen[i]] or list(range(n))
        extra = (usable - sum(widths)) / len(free)
        return [w + (extra if i in free else 0) for i, w in enumerate(widths)]   # hand out the remainder

    def frames(self, rows, most: int | None = None) -> list[list]:
        """`rows` split into frames whose estimated height fits a 16:9 frame."""
        from .slide_fit import pack
        budget = int(SLIDE_HEIGHT_PT / self.line) - self.header_lines - self.spare_lines
        return [[rows[i] for i in frame] for frame in pack(self.row_lines, budget, 0, most)]


def _chinese(table) -> bool:
    return table.lang in ("zh", "both")


# ---- the paste-in tabular ---------------------------------------------------------------------------
def latex_fragment(table) -> str:
    spec = "".join("p{5cm}" if c in ("derivation", "note") else "l" for c in table.columns)
    needs = r"% needs \usepackage{booktabs}" + (" and CJKutf8 (Chinese)" if _chinese(table) else "")
    lines = [needs, rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
             " & ".join(esc(table.header(c)) for c in table.columns) + r" \\", r"\midrule"]
    for row in table.rows:
        cells = [esc(table.cell(row, c)) for c in table.columns]
        cells = [r"\texttt{" + _mono_dashes(x) + "}" if c == "name" else x for x, c in zip(cells, table.columns)]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if table.title:
        lines.insert(0, f"% {table.shown_title()}")
    return "\n".join(lines) + "\n"


def _header_row(table) -> str:
    return " & ".join(r"\textbf{" + esc(table.header(c)) + "}" for c in table.columns) + r" \\"


def _body_row(table, row) -> str:
    return " & ".join(cell_latex(table, row, c) for c in table.columns) + r" \\"


# ---- slides ------------------------------------------------------------------------------------------
# cmtt's advance at each beamer size (pt, measured with pdflatex): every character of a shape,
# `\char95` (the underscore glyph) included, is this wide
MONO_ADVANCE_PT = {"tiny": 3.1875, "scriptsize": 4.2501, "footnotesize": 4.7250, "small": 5.2500,
                   "normalsize": 5.7487}
LONG = ("derivation", "note")        # prose columns: on a slide they may take a line of their own
RECORD_GAP_PT = 1.5                  # space after each row of a stacked table
# a frame before the last shares the height its rows leave free among their gaps (up to this
# much per row), so its table reaches the bottom of the frame
MAX_SPREAD_PT = 12.0
# beamer reports a frame overfull 3.1 pt before the bottom of its text area as `\pdfsavepos`
# finds it (the end of a frame adds that much below its last line); kept free, with a margin
FRAME_END_PT = 3.5
INDENT_PT = 10.0                     # its second line, indented
PROSE_SEPARATOR = " --- "            # between the derivation and the note on that line


class SlidePlan:
    """How a table goes onto frames.

    * `font`: the size command; `top`: the columns on a row's first line and `widths` theirs
      (pt); `below`: prose columns that share a second line as wide as the table, indented
      (empty when every column is on one line).
    * `frames`: the rows of each frame; `measured`: heights from pdflatex, not estimated;
      `heights` (pt, per frame), `header` (the table without rows) and `available` (the space
      below the frame title), when measured."""

    def __init__(self, font, top, widths, below, frames=None, measured=False):
        self.font, self.top, self.widths, self.below = font, top, widths, below
        self.frames, self.measured = frames or [], measured
        self.heights, self.header, self.available = None, None, None
        self.note = ""                   # why the heights were estimated, when they were
        self.spread = [0.0] * len(self.frames)   # pt added below each row of a frame

    def spec(self) -> str:
        """One ragged-right `p` column per width (pt), no padding at the outer edges."""
        return "@{}" + "".join(rf">{{\raggedright\arraybackslash}}p{{{w:.2f}pt}}" for w in self.widths) + "@{}"

    @property
    def prose_width(self) -> float:
        """The second line: the whole table less the indent."""
        return sum(self.widths) + 2 * TABCOLSEP_PT * (len(self.widths) - 1) - INDENT_PT

    def header_lines(self, table) -> list[str]:
        lines = [" & ".join(r"\textbf{" + esc(table.header(c)) + "}" for c in self.top) + r" \\"]
        if self.below:
            lines.append(self._second_line([r"\textbf{" + esc(table.header(c)) + "}" for c in self.below]))
        return lines

    def record(self, table, row, step: bool = True, spread: float = 0.0) -> list[str]:
        """A row's lines; `step=False` leaves its step blank (the row above has the same);
        `spread`: pt added to the gap below it."""
        lines = [" & ".join("" if c == "step" and not step else cell_latex(table, row, c, slide_text(table, row, c))
                            for c in self.top) + r" \\"]
        if self.below:
            texts = [(c, slide_text(table, row, c)) for c in self.below]
            lines.append(self._second_line([cell_latex(table, row, c, t) for c, t in texts if t]))
            lines.append(rf"\addlinespace[{RECORD_GAP_PT + spread:.2f}pt]".replace(".00pt", "pt"))
        return lines

    def _second_line(self, parts) -> str:
        return (rf"\multicolumn{{{len(self.top)}}}{{@{{\hspace{{{INDENT_PT:g}pt}}}}>{{\raggedright\arraybackslash}}"
                rf"p{{{self.prose_width:.2f}pt}}@{{}}}}{{" + PROSE_SEPARATOR.join(parts) + r"} \\")

    def table_lines(self, table, rows, spread: float = 0.0) -> list[str]:
        """A frame's table: a step is written where it changes and on the frame's first row."""
        steps = [table.cell(row, "step") for row in rows]
        body = [line for k, row in enumerate(rows)
                for line in self.record(table, row, step=k == 0 or steps[k] != steps[k - 1], spread=spread)]
        return (["\\" + self.font, rf"\setlength{{\tabcolsep}}{{{TABCOLSEP_PT:g}pt}}",
                 rf"\begin{{tabular}}{{{self.spec()}}}", r"\toprule"] + self.header_lines(table) + [r"\midrule"]
                + body + [r"\bottomrule", r"\end{tabular}"])


class _Columns:
    """`table` seen with other columns (what `Layout` reads: columns, rows, header, lang)."""

    def __init__(self, table, columns):
        self.columns, self.rows, self.lang, self.header = tuple(columns), table.rows, table.lang, table.header


def _widths(table, columns, texts, font_size) -> Layout:
    size, line = FONT_SIZES[font_size]
    advance = MONO_ADVANCE_PT[font_size]
    # a shape column is as wide as its widest shape, and as its bold header where that is not
    # much wider (`symbolic / 符号形状` is 10 pt wider than any symbolic shape)
    fixed = {}
    for c in (c for c in columns if c in NO_WRAP):
        shapes = max([max(len(p) for p in _pieces(t, c)) * advance for t in texts[c]], default=0) + 0.5
        header = _advance(table.header(c), "step", size) * 1.12
        fixed[c] = header if shapes < header < shapes + 15 else shapes
    return Layout(_Columns(table, columns), SLIDE_WIDTH_PT, size, line, fixed=fixed,
                  texts=[texts[c] for c in columns])


def _stacked(table, texts, font_size) -> tuple[SlidePlan, int] | None:
    """The prose columns on a second line under the others: (plan, estimated lines)."""
    below = [c for c in table.columns if c in LONG]
    top = [c for c in table.columns if c not in LONG]
    if not below or not top:
        return None
    layout = _widths(table, top, texts, font_size)
    if not layout.fits:
        return None
    plan = SlidePlan(font_size, top, layout.widths, below)
    return plan, sum(_stacked_lines(plan, texts, layout.row_lines))


def _stacked_lines(plan, texts, top_lines) -> list[int]:
    size = FONT_SIZES[plan.font][0]
    return [top_lines[r] + _wrap(sum((_piece_widths(texts[c][r], c, size) for c in plan.below), []),
                                 plan.prose_width) for r in range(len(top_lines))]


def slide_plan(table, font_size: str = DEFAULT_FONT_SIZE, rows_per_frame: int | None = None,
               measure: bool | None = None) -> SlidePlan:
    """Choose the columns' widths at `font_size`, then fill frames: with `measure` (the default
    where pdflatex is installed) every row is typeset and measured; otherwise estimated.
    `rows_per_frame`: at most this many rows on a frame (fewer where they do not fit).

    A row keeps every column on one line where that is short enough; otherwise the prose
    columns (how the numbers arise, note) go on a second line, each as wide as several of the
    first line's columns, which is what a 16:9 frame has room for at a legible size."""
    from . import slide_fit
    if font_size not in FONT_SIZES:
        raise ValueError(f"font size {font_size!r}: expected one of {', '.join(FONT_SIZES)}")
    if rows_per_frame is not None and rows_per_frame < 1:
        raise ValueError(f"rows per frame {rows_per_frame}: expected a whole number of at least 1")
    measure = slide_fit.have_pdflatex() if measure is None else measure
    texts = {c: [slide_text(table, r, c) for r in table.rows] for c in table.columns}
    flat = _widths(table, table.columns, texts, font_size)
    candidates = []
    if flat.fits:
        candidates.append((SlidePlan(font_size, list(table.columns), flat.widths, []), sum(flat.row_lines)))
    stacked = _stacked(table, texts, font_size)
    if stacked:
        candidates.append(stacked)
    if not candidates:
        wide = ", ".join(c for c in table.columns if c in NO_WRAP)
        raise ValueError(f"font size {font_size}: the columns {','.join(table.columns)} do not fit a 16:9 "
                         f"frame's 398 pt at this size ({wide} never break); choose a smaller "
                         f"--font-size or fewer --columns")
    plan = min(candidates, key=lambda c: c[1])[0]
    if measure:
        try:
            return _measured(table, plan, rows_per_frame)
        except RuntimeError as error:      # e.g. CJKutf8 missing: the user's compile would fail too
            plan.note = f"{error}; frames packed by an estimate of each row's height instead"
    else:
        plan.note = ("pdflatex is not installed: frames packed by an estimate of each row's height "
                     "(install texlive-latex-recommended for frames filled by measurement)")
    line = FONT_SIZES[font_size][1]
    per_row = flat.row_lines if not plan.below else _stacked_lines(
        plan, texts, _widths(table, plan.top, texts, font_size).row_lines)
    budget = int(SLIDE_HEIGHT_PT / line) - (2 if plan.below else flat.header_lines) - flat.spare_lines
    plan.frames = [[table.rows[k] for k in f] for f in slide_fit.pack(per_row, budget, 0, rows_per_frame)]
    return plan


def _measured(table, plan, rows_per_frame) -> SlidePlan:
    """`plan` with its frames filled by heights that pdflatex measured (see `slide_fit`)."""
    from . import slide_fit
    font_size = plan.font

    def box(key, row, step=True):
        return slide_fit.box(key, rf"\begin{{tabular}}{{{plan.spec()}}}" + " ".join(plan.record(table, row, step))
                             + r"\end{tabular}")

    # a row whose step is the row above's is measured twice: with its step (first on a frame)
    # and without (below that row)
    steps = [table.cell(row, "step") for row in table.rows]
    repeats = [k for k in range(1, len(steps)) if "step" in plan.top and steps[k] == steps[k - 1]]
    boxes = [box(f"r{k}", row) for k, row in enumerate(table.rows)] + [box(f"s{k}", table.rows[k], False)
                                                                        for k in repeats]
    frame = _frame_head(table, " (1/1)") + [slide_fit.mark("top")] + plan.table_lines(table, [])
    frame += ["", slide_fit.mark("header"), r"\vskip 0pt plus 1filll", slide_fit.mark("bottom")]
    sizes, marks = slide_fit.measure(_measure_document(table, ["\\" + font_size] + boxes, frame))
    first = [sizes[f"r{k}"][1] + sizes[f"r{k}"][2] for k in range(len(table.rows))]
    heights = list(first)
    for k in repeats:
        heights[k] = sizes[f"s{k}"][1] + sizes[f"s{k}"][2]
    plan.header = marks["top"] - marks["header"]
    plan.available = marks["top"] - marks["bottom"] - FRAME_END_PT
    frames = slide_fit.pack(heights, plan.available, plan.header, rows_per_frame, first=first)
    plan.frames = [[table.rows[k] for k in f] for f in frames]
    plan.heights = [[first[f[0]]] + [heights[k] for k in f[1:]] for f in frames if f]
    if plan.below:                       # gaps between rows to spread: frames before the last
        plan.spread = [min(MAX_SPREAD_PT, int((plan.available - plan.header - sum(h)) / len(h) * 100) / 100)
                       for h in plan.heights[:-1]] + [0.0]
    plan.measured = True
    return plan


def _frame_head(table, number: str) -> list[str]:
    head, sizes = _frame_title(table)
    lines = [r"\begin{frame}[t]{" + esc(head) + number + "}"]
    if sizes:
        lines.append(r"\framesubtitle{" + esc(sizes) + "}")
    return lines


def _measure_document(table, boxes, frame) -> str:
    """A beamer document with the slides' preamble: `frame` (a frame head and its table), then
    the `box` lines that measure (inside the frame, so fonts and \\linewidth are the frame's)."""
    return "\n".join(_slides_preamble(table) + frame + boxes + [r"\end{frame}"] + _slides_end(table)) + "\n"


def _frame_title(table) -> tuple[str, str]:
    title = table.shown_title()
    head, _, sizes = title.partition(" at ")
    if table.lang == "zh":
        head, _, sizes = title.partition("：")
    elif table.lang == "both":
        head, sizes = "Mask2Former shapes / 各张量形状", title.split(" at ", 1)[-1].split(" / ")[0]
    return head or "Mask2Former shapes", sizes


def latex_slides(table, standalone: bool = False, font_size: str = DEFAULT_FONT_SIZE,
                 rows_per_frame: int | None = None, plan: SlidePlan | None = None) -> str:
    """16:9 beamer frames, each filled with as many rows as fit (see `slide_plan`)."""
    plan = plan or slide_plan(table, font_size, rows_per_frame)
    out = []
    if standalone:
        out += _slides_preamble(table)
    else:
        out += [r"% 16:9 beamer frames; the preamble needs \usepackage{booktabs,array}"
                + (r" and CJKutf8 (Chinese)" if _chinese(table) else "")]
    frames = plan.frames
    for k, rows in enumerate(frames, 1):
        count = f" ({k}/{len(frames)})" if len(frames) > 1 else ""
        spread = plan.spread[k - 1] if k - 1 < len(plan.spread) else 0.0
        out += _frame_head(table, count) + plan.table_lines(table, rows, spread) + [r"\end{frame}", ""]
    if standalone:
        out += _slides_end(table)
    return "\n".join(out).rstrip("\n") + "\n"


def _slides_preamble(table) -> list[str]:
    lines = [r"\documentclass[aspectratio=169]{beamer}",
             r"\usepackage{booktabs,array}"]
    if _chinese(table):
        lines.append(r"\usepackage{CJKutf8}")
    lines += [r"\setbeamertemplate{navigation symbols}{}", r"\emergencystretch=1em",
              r"\begin{document}"]
    if _chinese(table):
        lines.append(r"\begin{CJK}{UTF8}{gbsn}")
    if table.title:
        lines.insert(0, f"% {table.shown_title()}")
    return lines


def _slides_end(table) -> list[str]:
    return ([r"\end{CJK}"] if _chinese(table) else []) + [r"\end{document}"]


# ---- a document ------------------------------------------------------------------------------------
def latex_document(table) -> str:
    """Landscape A4 with the table as a `longtable` that breaks across pages."""
    shares = Layout(table, LANDSCAPE_WIDTH_PT).shares
    spec = "@{}" + "".join(rf">{{\raggedright\arraybackslash}}p{{\dimexpr {share:.3f}\linewidth-2\tabcolsep\relax}}"
                           for share in shares) + "@{}"
    lines = [r"\documentclass[a4paper,landscape]{article}", r"\usepackage[margin=1.5cm]{geometry}",
             r"\usepackage{booktabs,longtable,array}"]
    if _chinese(table):
        lines.append(r"\usepackage{CJKutf8}")
    lines += [r"\emergencystretch=1em", r"\begin{document}"]
    if _chinese(table):
        lines.append(r"\begin{CJK}{UTF8}{gbsn}")
    lines += [r"\scriptsize", rf"\begin{{longtable}}{{{spec}}}"]
    if table.title:
        lines.append(r"\caption*{\normalsize\textbf{" + esc(table.shown_title()) + r"}}\\")
    lines += [r"\toprule", _header_row(table), r"\midrule", r"\endhead", r"\bottomrule", r"\endfoot"]
    lines += [_body_row(table, row) for row in table.rows]
    lines += [r"\end{longtable}"] + ([r"\end{CJK}"] if _chinese(table) else []) + [r"\end{document}"]
    return "\n".join(lines) + "\n"
