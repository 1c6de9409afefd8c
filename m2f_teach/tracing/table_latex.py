"""The shape table in LaTeX: a `tabular` to paste, a document, or 16:9 beamer frames.

    latex_fragment(table)                    # tabular + booktabs, as wide as its content
    latex_document(table)                    # article, landscape A4, longtable: compiles as is
    latex_slides(table)                      # \\begin{frame}...\\end{frame} × as many as needed
    latex_slides(table, standalone=True)     # a beamer document (aspectratio=169) around them

Slides and documents wrap every column to a share of the line width: names break after their
dots and underscores, shapes and symbolic shapes are monospace, and each derivation is set in
math mode (`$S = 32 \\cdot 32 + \\dots$`) with its words as text. A frame takes rows while their
estimated height fits (a cell's lines from its length against its column's width), so no frame
overflows; `tests/test_table_latex.py` compiles the slides with pdflatex and checks the log for
overfull boxes. Chinese (`lang="zh"` or `"both"`) needs the CJKutf8 package
(Debian: texlive-lang-chinese).
"""
from __future__ import annotations

import math
import re

# share of the line width per column (normalised over the chosen columns)
WEIGHTS = {"step": 1.0, "name": 2.0, "symbolic": 0.95, "shape": 1.15, "derivation": 2.0,
           "note": 1.6, "dtype": 0.55, "count": 0.3}
MONOSPACE = ("name", "symbolic", "shape", "dtype")

# beamer, 16:9, default 11 pt: the text is 140 mm wide; \scriptsize is 8 pt on 9.5 pt lines
SLIDE_WIDTH_PT = 398.0
SLIDE_LINE_PT = 9.5
SLIDE_LINES = 16            # table lines under the header that fit below a frame title + subtitle
CHAR_PT = {"text": 4.1, "mono": 4.2, "wide": 8.0}      # average advance at 8 pt, CJK = 1 em
TABCOLSEP_PT = 3.0

GLOSSARY = {"B", "C", "S", "S_q", "nH", "L", "P", "D", "Q", "K", "H", "W", "H_l", "W_l", "Hm",
            "Wm", "C_m", "C_in", "N", "i", "j", "l", "x", "y", "h", "w"}
MATH_CHARS = {"·": r"\cdot ", "×": r"\times ", "→": r"\rightarrow ", "∈": r"\in ", "%": r"\bmod ",
              "{": r"\{", "}": r"\}", "–": "-", "²": "^2", "≥": r"\geq ", "−": "-", "#": r"\#",
              "&": r"\&", ",": r",\allowbreak ", "_": r"\_"}
TEXT_CHARS = (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#"),
              ("{", r"\{"), ("}", r"\}"), ("^", r"\^{}"), ("~", r"\~{}"), ("$", r"\$"),
              ("×", r"$\times$"), ("·", r"$\cdot$"), ("→", r"$\rightarrow$"), ("∈", r"$\in$"),
              ("–", "--"), ("²", r"$^2$"), ("≥", r"$\geq$"), ("≤", r"$\leq$"), ("<", r"$<$"),
              (">", r"$>$"))
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
    return esc(text)


def _shares(columns) -> list[float]:
    total = sum(WEIGHTS[c] for c in columns)
    return [WEIGHTS[c] / total for c in columns]


def _lines(text: str, column: str, width_pt: float) -> int:
    """Estimated lines of a wrapped cell (on the safe side: 20 % slack for word wrapping)."""
    wide = sum(1 for ch in text if ord(ch) > 0x2E80)
    narrow = len(text) - wide
    advance = narrow * CHAR_PT["mono" if column in MONOSPACE else "text"] + wide * CHAR_PT["wide"]
    return max(1, math.ceil(advance * 1.2 / max(width_pt, 1.0)))


def _row_lines(table, row, widths) -> int:
    return max(_lines(table.cell(row, c), c, w) for c, w in zip(table.columns, widths))


def _chinese(table) -> bool:
    return table.lang in ("zh", "both")


# ---- the paste-in tabular ---------------------------------------------------------------------------
def latex_fragment(table) -> str:
    spec = "".join("p{5cm}" if c in ("derivation", "note") else "l" for c in table.columns)
    lines = [r"% needs \usepackage{booktabs}", rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
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
def frames_of(table, lines_per_frame: int = SLIDE_LINES) -> list[list]:
    """The rows split into frames whose estimated height fits a 16:9 frame."""
    shares = _shares(table.columns)
    usable = SLIDE_WIDTH_PT - 2 * TABCOLSEP_PT * (len(table.columns) - 1)
    widths = [share * usable for share in shares]
    header = max(_lines(table.header(c), c, w) for c, w in zip(table.columns, widths))
    frames, current, used = [], [], 0
    for row in table.rows:
        need = _row_lines(table, row, widths)
        if current and used + need > lines_per_frame - (header - 1):
            frames.append(current)
            current, used = [], 0
        current.append(row)
        used += need
    if current or not frames:
        frames.append(current)
    return frames


def _frame_title(table) -> tuple[str, str]:
    title = table.shown_title()
    head, _, sizes = title.partition(" at ")
    if table.lang == "zh":
        head, _, sizes = title.partition("：")
    elif table.lang == "both":
        head, sizes = "Mask2Former shapes / 各张量形状", title.split(" at ", 1)[-1].split(" / ")[0]
    return head or "Mask2Former shapes", sizes


def latex_slides(table, standalone: bool = False) -> str:
    frames = frames_of(table)
    head, sizes = _frame_title(table)
    spec = _wrapped_spec(table.columns, _shares(table.columns))
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
        out += [r"\scriptsize", rf"\setlength{{\tabcolsep}}{{{TABCOLSEP_PT:g}pt}}",
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
    shares = _shares(table.columns)
    spec = "@{}" + "".join(rf">{{\raggedright\arraybackslash}}p{{\dimexpr {share:.3f}\linewidth-2\tabcolsep\relax}}"
                           for share in shares) + "@{}"
    lines = [r"\documentclass[a4paper,landscape]{article}", r"\usepackage[margin=1.5cm]{geometry}",
             r"\usepackage{booktabs,longtable,array}"]
    if _chinese(table):
        lines.append(r"\usepackage{CJKutf8}")
    lines += [r"\emergencystretch=1em", r"\begin{document}"]
    if _chinese(table):
        lines.append(r"\begin{CJK}{UTF8}{gbsn}")
    lines += [r"\footnotesize", rf"\begin{{longtable}}{{{spec}}}"]
    if table.title:
        lines.append(r"\caption*{\normalsize\textbf{" + esc(table.shown_title()) + r"}}\\")
    lines += [r"\toprule", _header_row(table), r"\midrule", r"\endhead", r"\bottomrule", r"\endfoot"]
    lines += [_body_row(table, row) for row in table.rows]
    lines += [r"\end{longtable}"] + ([r"\end{CJK}"] if _chinese(table) else []) + [r"\end{document}"]
    return "\n".join(lines) + "\n"
