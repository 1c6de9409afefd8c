"""The shape table in LaTeX: a `tabular` to paste, a document, or 16:9 beamer frames.

    latex_fragment(table)                    # tabular + booktabs, as wide as its content
    latex_document(table)                    # article, landscape A4, longtable: compiles as is
    latex_slides(table)                      # \\begin{frame}...\\end{frame} × as many as needed
    latex_slides(table, standalone=True)     # a beamer document (aspectratio=169) around them

Slides and documents wrap every column to a share of the line width: names break after their
dots and underscores, shapes and symbolic shapes are monospace, and each derivation is set in
math mode (`$S = 32 \\cdot 32 + \\dots$`) with its words as text. `Layout` picks the column
widths that make the rows take the fewest lines (each cell's lines estimated by filling its
breakable pieces into the column), and a frame takes rows while their estimated height fits, so
no frame overflows; `tests/test_table_latex.py` compiles the slides with pdflatex and checks the
log for overfull boxes. Chinese (`lang="zh"` or `"both"`) needs the CJKutf8 package
(Debian: latex-cjk-common and latex-cjk-chinese-arphic-gbsn00lp).
"""
from __future__ import annotations

import re

MONOSPACE = ("name", "symbolic", "shape", "dtype")

# beamer 16:9 at its default 11 pt: the text is 140 mm (398 pt) wide, and a table below a frame
# title and subtitle has about 180 pt (18 lines of \scriptsize). Slides use \scriptsize (8 pt on
# 9.5 pt lines), or \tiny (6 pt on 7 pt lines) when \scriptsize would need more than
# MAX_SCRIPTSIZE_FRAMES frames.
SLIDE_WIDTH_PT = 398.0
SLIDE_HEIGHT_PT = 180.0
FONTS = {"scriptsize": (8.0, 9.5), "tiny": (6.0, 7.0)}       # size, line distance (pt)
MAX_SCRIPTSIZE_FRAMES = 8
LANDSCAPE_WIDTH_PT = 756.0  # A4 landscape less 1.5 cm margins, at \scriptsize
EM = {"text": 0.48, "mono": 0.525, "wide": 1.0}           # average advance; CJK is 1 em
TABCOLSEP_PT = 3.0
SLACK = {"derivation": 1.1}  # estimated / ideal width: math spacing, fewer breaks in math

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
TOKENS = re.compile(r"(?P<word>[A-Za-z]+(?:_[A-Za-z0-9]+)?)|(?P<space>\s+)|(?P<other>.)")


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
        is_text = kind == "word" and value not in GLOSSARY and len(value) > 1
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
    return r"\texttt{" + text.replace(",", r",\allowbreak{}") + "}"


def cell_latex(table, row, column: str) -> str:
    text = table.cell(row, column)
    if column == "derivation":
        return derivation_latex(text)
    if column == "name":
        return _name_latex(text)
    if column in MONOSPACE:
        return r"\texttt{" + esc(text) + "}"
    # notes name code (`level_encoding.weight[l]`): let lines break inside those words too
    return re.sub(r"(?<=\w)\.(?=\w)", r".\\allowbreak{}", esc(text)).replace(r"\_", r"\_\allowbreak{}")


def _advance(text: str, column: str, size: float = 8.0) -> float:
    """Width in points of `text` on one line at font `size` (CJK characters are 1 em)."""
    wide = sum(1 for ch in text if ord(ch) > 0x2E80)
    return size * ((len(text) - wide) * EM["mono" if column in MONOSPACE else "text"] + wide * EM["wide"])


def _pieces(text: str, column: str) -> list[str]:
    """The parts of a cell between the places where LaTeX may break a line (after a space, a
    dot or underscore of a name, and after any Chinese character)."""
    breaks = r"(?<=[ ._,])" if column in ("name", "note", "step") else r"(?<= )"
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
    of the row's tallest cell); no column gets narrower than its longest unbreakable piece."""

    def __init__(self, table, width: float, size: float = 8.0, line: float = 9.5):
        columns = table.columns
        self.size, self.line = size, line
        # CJK glyphs sit a little higher and deeper than Latin ones, so a frame of Chinese rows
        # runs a fraction of a point taller than the line count says: keep one line spare
        self.spare_lines = 1 if _chinese(table) else 0
        usable = width - 2 * TABCOLSEP_PT * (len(columns) - 1)
        texts = [[table.cell(r, c) for r in table.rows] + [table.header(c)] for c in columns]
        pieces = [[_piece_widths(t, c, size) for t in texts[i]] for i, c in enumerate(columns)]
        for i in range(len(columns)):            # the header is bold: wider
            pieces[i][-1] = [w * 1.12 for w in pieces[i][-1]]
        least = [max(max(p, default=0) for p in pieces[i]) + 2 for i in range(len(columns))]
        if sum(least) >= usable:                  # cannot fit without overfull lines: share evenly
            widths = [usable / len(columns)] * len(columns)
        else:
            widths = self._search(pieces, least, usable)
        self.shares = [w / usable for w in widths]
        self.widths = widths
        self.row_lines = [max(_wrap(pieces[i][r], widths[i]) for i in range(len(columns)))
                          for r in range(len(table.rows))]
        self.header_lines = max(_wrap(pieces[i][-1], widths[i]) for i in range(len(columns)))

    @staticmethod
    def _search(pieces, least, usable, step: float = 4.0) -> list[float]:
        n = len(pieces)
        grid = [[least[i] + k * step for k in range(int((usable - least[i]) / step) + 1)] for i in range(n)]
        lines = [[[_wrap(p, w) for p in pieces[i]] for w in grid[i]] for i in range(n)]
        rows = len(pieces[0])

        def height(ks):
            return sum(max(lines[i][ks[i]][r] for i in range(n)) for r in range(rows))

        average = [sum(map(sum, pieces[i])) / rows + 10 for i in range(n)]
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
        return [w + (usable - sum(widths)) / n for w in widths]   # hand out the remainder

    def frames(self, rows) -> list[list]:
        """`rows` split into frames whose estimated height fits a 16:9 frame."""
        budget = int(SLIDE_HEIGHT_PT / self.line) - self.header_lines - self.spare_lines
        frames, current, used = [], [], 0
        for row, need in zip(rows, self.row_lines):
            if current and used + need > budget:
                frames.append(current)
                current, used = [], 0
            current.append(row)
            used += need
        if current or not frames:
            frames.append(current)
        return frames


def slide_layout(table) -> tuple[str, Layout, list[list]]:
    """The font, column widths and frames of `table` as slides."""
    for font, (size, line) in FONTS.items():
        layout = Layout(table, SLIDE_WIDTH_PT, size, line)
        frames = layout.frames(table.rows)
        if len(frames) <= MAX_SCRIPTSIZE_FRAMES:
            break
    return font, layout, frames


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
        cells = [r"\texttt{" + x + "}" if c == "name" else x for x, c in zip(cells, table.columns)]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if table.title:
        lines.insert(0, f"% {table.shown_title()}")
    return "\n".join(lines) + "\n"


def _wrapped_spec(columns, shares) -> str:
    """tabularx columns: `X` with \\hsize set to each column's share, ragged right."""
    n = len(columns)
    return "@{}" + "".join(rf">{{\hsize={share * n:.3f}\hsize\raggedright\arraybackslash}}X"
                           for share in shares) + "@{}"


def _header_row(table) -> str:
    return " & ".join(r"\textbf{" + esc(table.header(c)) + "}" for c in table.columns) + r" \\"


def _body_row(table, row) -> str:
    return " & ".join(cell_latex(table, row, c) for c in table.columns) + r" \\"


# ---- slides ------------------------------------------------------------------------------------------
def _frame_title(table) -> tuple[str, str]:
    title = table.shown_title()
    head, _, sizes = title.partition(" at ")
    if table.lang == "zh":
        head, _, sizes = title.partition("：")
    elif table.lang == "both":
        head, sizes = "Mask2Former shapes / 各张量形状", title.split(" at ", 1)[-1].split(" / ")[0]
    return head or "Mask2Former shapes", sizes


def latex_slides(table, standalone: bool = False) -> str:
    font, layout, frames = slide_layout(table)
    head, sizes = _frame_title(table)
    spec = _wrapped_spec(table.columns, layout.shares)
    out = []
    if standalone:
        out += _slides_preamble(table)
    else:
        out += [r"% 16:9 beamer frames; the preamble needs \usepackage{booktabs,tabularx,array}"
                + (r" and CJKutf8 (Chinese)" if _chinese(table) else "")]
    for k, rows in enumerate(frames, 1):
        count = f" ({k}/{len(frames)})" if len(frames) > 1 else ""
        out += [r"\begin{frame}[t]{" + esc(head) + count + "}"]
        if sizes:
            out += [r"\framesubtitle{" + esc(sizes) + "}"]
        out += ["\\" + font, rf"\setlength{{\tabcolsep}}{{{TABCOLSEP_PT:g}pt}}",
                rf"\begin{{tabularx}}{{\linewidth}}{{{spec}}}", r"\toprule", _header_row(table), r"\midrule"]
        out += [_body_row(table, row) for row in rows]
        out += [r"\bottomrule", r"\end{tabularx}", r"\end{frame}", ""]
    if standalone:
        out += ([r"\end{CJK}"] if _chinese(table) else []) + [r"\end{document}"]
    return "\n".join(out).rstrip("\n") + "\n"


def _slides_preamble(table) -> list[str]:
    lines = [r"\documentclass[aspectratio=169]{beamer}",
             r"\usepackage{booktabs,tabularx,array}"]
    if _chinese(table):
        lines.append(r"\usepackage{CJKutf8}")
    lines += [r"\setbeamertemplate{navigation symbols}{}", r"\emergencystretch=1em",
              r"\begin{document}"]
    if _chinese(table):
        lines.append(r"\begin{CJK}{UTF8}{gbsn}")
    if table.title:
        lines.insert(0, f"% {table.shown_title()}")
    return lines


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
