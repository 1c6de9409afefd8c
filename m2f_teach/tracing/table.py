"""Annotated shape tables: every traced tensor with its step, shapes and how they arise.

    t = trace_shapes(M2FConfig.seed())
    print(t.table().to_markdown())          # or to_html / to_csv / to_json / to_latex
    t.table().select(columns=["step", "name", "shape"], steps=["3.4"], short_names=True, lang="zh")

Columns: the seed's step, the name, the symbolic shape in glossary letters, the concrete shape,
how the numbers arise, and a short note (`dtype` and `count` on request). With `collapse=True`
repeated layers and predictions with the same shape share one row (`encoder.layers.{0–5}` ×6).
`select` picks and orders columns, keeps the rows of some steps or names, shortens names to
what identifies them, and chooses the language of step labels and notes (`en`, `zh`, `both`).
For slides and documents see `to_latex(slides=..., standalone=...)` (`table_latex.py`) and
`to_html(standalone=True)`.
"""
from __future__ import annotations

import csv
import fnmatch
import html
import io
import json
import re
import warnings
from dataclasses import dataclass, field

from .annotations import annotate
from .annotations_zh import HEADERS_ZH, TITLE_ZH, derivation_zh, note_zh, step_zh

COLUMNS = ("step", "name", "symbolic", "shape", "derivation", "note")     # the default, in order
ALL_COLUMNS = COLUMNS + ("dtype", "count")
HEADERS = {"step": "step", "name": "name", "symbolic": "symbolic", "shape": "shape",
           "derivation": "how the numbers arise", "note": "note", "dtype": "dtype", "count": "×"}
LANGUAGES = ("en", "zh", "both")


@dataclass
class Row:
    step: str
    name: str
    symbolic: str
    shape: tuple
    derivation: str
    note: str
    dtype: str = ""
    count: int = 1
    names: list[str] = field(default_factory=list)
    step_zh: str = ""
    note_zh: str = ""

    @property
    def shape_text(self) -> str:
        if isinstance(self.shape, list):
            return ", ".join("(" + ", ".join(map(str, s)) + ")" for s in self.shape)
        return "(" + ", ".join(map(str, self.shape)) + ("," if len(self.shape) == 1 else "") + ")"

    def as_dict(self) -> dict:
        shape = [list(s) for s in self.shape] if isinstance(self.shape, list) else list(self.shape)
        return {"name": self.name, "shape": shape, "symbolic": self.symbolic, "step": self.step,
                "note": self.note, "derivation": self.derivation, "dtype": self.dtype,
                "count": self.count, "names": self.names}


def _group_name(names: list[str]) -> str:
    """`[a.layers.0.x, a.layers.1.x, ...]` → `a.layers.{0–5}.x`."""
    if len(names) == 1:
        return names[0]
    split = [n.split(".") for n in names]
    out = []
    for position in range(len(split[0])):
        values = [s[position] for s in split]
        distinct = list(dict.fromkeys(values))
        if len(distinct) == 1:
            out.append(distinct[0])
            continue
        ints = [int(v) for v in distinct]
        if len(ints) > 2 and ints == list(range(ints[0], ints[0] + len(ints))):
            out.append(f"{{{ints[0]}–{ints[-1]}}}")
        else:
            out.append("{" + ",".join(distinct) + "}")
    return ".".join(out)


def _common_derivation(derivations: list[str], names: list[str]) -> str:
    if len(set(derivations)) == 1:
        return derivations[0]
    parts = [d.split("; ") for d in derivations]
    common = [p for p in parts[0] if all(p in other for other in parts[1:])]
    indices = [re.findall(r"\.(\d+)(?=\.|$)", n) for n in names]
    which = sorted({int(i[-1]) for i in indices if i}) if all(indices) else []
    varying = [p for p in parts[0] if p not in common]
    if varying and which:
        # e.g. "layer 0 attends to level i % L = 0 % 3 = 0" → "i ∈ {0, 3, 6}: level 0"
        level = re.search(r"level (?:i % L = |\w+ % L = )?[\d ]*%?[^=]*=\s*(\d+)$", varying[-1])
        common.append(f"i ∈ {{{', '.join(map(str, which))}}}" + (f" → level {level.group(1)}" if level else ""))
    return "; ".join(common)


class ShapeTable:
    """Rows of a trace's tensors, ready to print in several formats."""

    def __init__(self, rows: list[Row], title: str = "", columns=COLUMNS, lang: str = "en",
                 short_names: dict | None = None):
        self.rows = rows
        self.title = title
        self.columns = tuple(columns)
        self.lang = lang
        self.short_names = short_names      # full name → shortest unique name, when shortened

    @classmethod
    def from_trace(cls, trace, collapse: bool = True, include_modules: bool = False) -> "ShapeTable":
        config = trace.config
        symbols = config.symbols() if config is not None else {}
        spatial = list(config.spatial_shapes) if config is not None else []
        rows = []
        for record in trace.records:
            if record.kind == "module":
                if include_modules:
                    rows.append(Row("module call", record.name, "", record.shape, "",
                                    record.module_type, record.dtype, names=[record.name],
                                    step_zh=step_zh("module call"), note_zh=record.module_type))
                continue
            step, note, how = annotate(record, symbols, spatial)
            rows.append(Row(step, record.name, record.symbolic, record.shape, how, note,
                            record.dtype, names=[record.name], step_zh=step_zh(step),
                            note_zh=note_zh(record.name, note)))
        if collapse:
            rows = cls._collapse(rows)
        title = ""
        if config is not None:
            s = symbols
            title = (f"Mask2Former shapes at B={s['B']}, H×W={s['H']}×{s['W']}, C={s['C']}, "
                     f"nH={s['nH']}, L={s['L']}, P={s['P']}, Q={s['Q']}, K={s['K']}, S={s['S']}")
        return cls(rows, title)

    @staticmethod
    def _collapse(rows: list[Row]) -> list[Row]:
        groups: dict[tuple, list[Row]] = {}
        for row in rows:
            pattern = re.sub(r"\.\d+(?=\.|$)", ".#", row.name)
            key = (pattern, row.symbolic, str(row.shape), row.step)
            groups.setdefault(key, []).append(row)
        out = []
        for members in groups.values():
            if len(members) == 1:
                out.append(members[0])
                continue
            names = [m.name for m in members]
            first = members[0]
            out.append(Row(first.step, _group_name(names), first.symbolic, first.shape,
                           _common_derivation([m.derivation for m in members], names), first.note,
                           first.dtype, count=len(members), names=names, step_zh=first.step_zh,
                           note_zh=first.note_zh))
        return out

    # ---- choosing what to show ----------------------------------------------------------------
    def steps(self) -> list[str]:
        """The step labels of this table, in order of first appearance."""
        return list(dict.fromkeys(row.step for row in self.rows))

    def select(self, columns=None, steps=None, only=None, short_names: bool | None = None,
               lang: str | None = None) -> "ShapeTable":
        """A new table with some columns, some rows, short names or another language.

        * `columns`: names from `ALL_COLUMNS`, in the order to show them.
        * `steps`: seed steps; `"3.4"` keeps "3.4 deformable attention", `"3"` every 3.x step,
          `"dec 3.3"` the decoder's forward_head (the decoder's steps are numbered "dec 3.x").
        * `only`: name globs (`"*.encoder.layers.*"`); a pattern without `*?[` matches as a
          substring. A row stays if one of its names (or its shown name) matches.
        * `short_names`: drop the module path as far as the rest still names one row.
        * `lang`: `en`, `zh` or `both` for the step labels, notes, headers and title.
        Rows must match both `steps` and `only` where both are given.
        """
        table = ShapeTable(self.rows, self.title, self.columns, self.lang, self.short_names)
        if columns is not None:
            columns = list(columns)
            unknown = [c for c in columns if c not in ALL_COLUMNS]
            if unknown or not columns or len(set(columns)) != len(columns):
                raise ValueError(f"columns {','.join(columns)}: expected distinct names from "
                                 f"{', '.join(ALL_COLUMNS)}" + (f" ({unknown[0]!r} is not one)" if unknown else ""))
            table.columns = tuple(columns)
        if lang is not None:
            if lang not in LANGUAGES:
                raise ValueError(f"language {lang!r}: expected one of {', '.join(LANGUAGES)}")
            table.lang = lang
        if short_names is not None:
            table.short_names = shortest_unique_names([r.name for r in self.rows]) if short_names else None
        rows = self.rows
        if steps:
            known = [step_number(s) for s in self.steps()]
            for wanted in steps:
                if not any(_step_matches(s, wanted) for s in self.steps()):
                    raise ValueError(f"step {wanted!r} is not in this table; its steps are "
                                     + ", ".join(dict.fromkeys(k for k in known if k)))
            rows = [r for r in rows if any(_step_matches(r.step, wanted) for wanted in steps)]
        if only:
            kept = [r for r in rows if any(_name_matches(r, table.shown_name(r), p) for p in only)]
            if not kept:
                raise ValueError(f"no row's name matches {' or '.join(repr(p) for p in only)}"
                                 + (f" among the steps {', '.join(steps)}" if steps else "")
                                 + "; names look like panoptic_head.pixel_decoder.memory (globs: *.memory)")
            rows = kept
        table.rows = list(rows)
        return table

    def shown_name(self, row: Row) -> str:
        if self.short_names:
            return self.short_names.get(row.name, row.name)
        return row.name

    def _step(self, row: Row) -> str:
        number = step_number(row.step)
        chinese = row.step_zh
        if self.lang == "both" and number and chinese.startswith(number + " "):
            chinese = chinese[len(number) + 1:]          # "3.4 deformable attention / 可变形注意力"
        return _in_language(row.step, chinese, self.lang)

    def _derivation(self, row: Row) -> str:
        if self.lang == "en":
            return row.derivation
        return derivation_zh(row.derivation, both=self.lang == "both")

    def _note(self, row: Row) -> str:
        return _in_language(row.note, row.note_zh, self.lang)

    def header(self, column: str) -> str:
        return _in_language(HEADERS[column], HEADERS_ZH.get(column, ""), self.lang)

    def shown_title(self) -> str:
        if not self.title or self.lang == "en":
            return self.title
        zh = self.title.replace("Mask2Former shapes at ", TITLE_ZH + "：")
        return zh if self.lang == "zh" else f"{self.title} / {zh}"

    def __len__(self):
        return len(self.rows)

    # ---- formats ------------------------------------------------------------------------------
    def cell(self, row: Row, column: str) -> str:
        """The text of one cell (the name with ` ×n` where n rows share it)."""
        if column == "name":
            return self.shown_name(row) + (f" ×{row.count}" if row.count > 1 and "count" not in self.columns else "")
        return {"step": self._step, "note": self._note, "derivation": self._derivation}.get(column, lambda r: {
            "symbolic": r.symbolic, "shape": r.shape_text, "derivation": r.derivation,
            "dtype": r.dtype, "count": str(r.count)}[column])(row)

    def _cells(self, row: Row) -> list[str]:
        return [self.cell(row, c) for c in self.columns]

    def to_markdown(self) -> str:
        header = [self.header(c) for c in self.columns]
        lines = []
        if self.title:
            lines += [f"**{self.shown_title()}**", ""]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join("---" for _ in header) + "|")
        for row in self.rows:
            cells = [c.replace("|", "\\|") for c in self._cells(row)]
            cells = [f"`{c}`" if col == "name" else c for c, col in zip(cells, self.columns)]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"

    def to_html(self, standalone: bool = False) -> str:
        """The table as an HTML fragment, or with `standalone` a complete page (charset, CSS,
        a header row that stays in view while scrolling)."""
        head = "".join(f"<th style='text-align:left'>{html.escape(self.header(c))}</th>" for c in self.columns)
        body = []
        for row in self.rows:
            cells = [html.escape(c) for c in self._cells(row)]
            cells = [f"<code>{c}</code>" if col == "name" else c for c, col in zip(cells, self.columns)]
            body.append("<tr>" + "".join(f"<td style='text-align:left'>{c}</td>" for c in cells) + "</tr>")
        title = html.escape(self.shown_title())
        caption = f"<caption style='text-align:left'><b>{title}</b></caption>" if self.title else ""
        table = (f"<table class='m2f-shape-table'>{caption}<thead><tr>{head}</tr></thead>"
                 f"<tbody>{''.join(body)}</tbody></table>")
        if not standalone:
            return table
        lang = {"en": "en", "zh": "zh-Hans", "both": "en"}[self.lang]
        return (f"<!DOCTYPE html>\n<html lang=\"{lang}\">\n<head>\n<meta charset=\"utf-8\">\n"
                f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                f"<title>{title or 'Mask2Former shapes'}</title>\n<style>\n{PAGE_CSS}</style>\n</head>\n"
                f"<body>\n{table}\n</body>\n</html>\n")

    def to_csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        extra = [] if "count" in self.columns else ["count"]
        writer.writerow([self.header(c) for c in self.columns] + extra)
        for row in self.rows:
            cells = [self.shown_name(row) if c == "name" else self.cell(row, c) for c in self.columns]
            writer.writerow(cells + ([row.count] if extra else []))
        return buffer.getvalue()

    def to_json(self) -> str:
        """Every row as a dict; with chosen columns, only those (and `count`, `names`)."""
        rows = []
        for row in self.rows:
            item = row.as_dict()
            if self.short_names:
                item["name"] = self.shown_name(row)
            if self.lang == "zh":
                item["step"], item["note"] = row.step_zh or row.step, row.note_zh or row.note
            elif self.lang == "both":
                item["step_zh"], item["note_zh"] = row.step_zh or row.step, row.note_zh or row.note
            if self.columns != COLUMNS:
                keep = set(self.columns) | {"count", "names"} | {f"{c}_zh" for c in self.columns}
                item = {k: v for k, v in item.items() if k in keep}
            rows.append(item)
        return json.dumps(rows, indent=1, ensure_ascii=False) + "\n"

    def to_latex(self, slides: bool = False, standalone: bool = False, font_size: str | None = None,
                 rows_per_frame: int | None = None) -> str:
        """A LaTeX `tabular` (needs booktabs); `slides`: 16:9 beamer frames, each filled with as
        many rows as fit (measured with pdflatex where it is installed); `standalone`: a complete
        document that compiles with pdflatex. For slides, `font_size` (`tiny`, `scriptsize`,
        the default, `footnotesize`, `small`, `normalsize`) and `rows_per_frame` (at most this
        many rows on a frame)."""
        from .table_latex import DEFAULT_FONT_SIZE, latex_document, latex_fragment, latex_slides, slide_plan
        if slides:
            plan = slide_plan(self, font_size or DEFAULT_FONT_SIZE, rows_per_frame)
            if plan.note:
                warnings.warn(plan.note, stacklevel=2)
            return latex_slides(self, standalone=standalone, plan=plan)
        return latex_document(self) if standalone else latex_fragment(self)

    def render(self, fmt: str = "md", slides: bool = False, standalone: bool = False,
               font_size: str | None = None, rows_per_frame: int | None = None) -> str:
        """The table in `fmt` (md, html, csv, json, latex); `slides` (with `font_size` and
        `rows_per_frame`) is for latex only, `standalone` (a complete document) for latex and html."""
        fmt = {"markdown": "md", "tex": "latex"}.get(fmt, fmt)
        formats = {"md": self.to_markdown, "html": self.to_html, "csv": self.to_csv,
                   "json": self.to_json, "latex": self.to_latex}
        if fmt not in formats:
            raise ValueError(f"unknown table format {fmt!r}; expected one of md, html, csv, json, latex")
        if slides and fmt != "latex":
            raise ValueError(f"--slides makes LaTeX beamer frames; it does not apply to format {fmt!r}")
        if (font_size or rows_per_frame) and not slides:
            raise ValueError("--font-size and --rows-per-frame shape --slides; add --slides")
        if standalone and fmt not in ("latex", "html"):
            raise ValueError(f"--standalone makes a complete LaTeX or HTML document; format {fmt!r} has none")
        if fmt == "latex":
            return self.to_latex(slides=slides, standalone=standalone, font_size=font_size,
                                 rows_per_frame=rows_per_frame)
        return self.to_html(standalone=standalone) if fmt == "html" else formats[fmt]()

    def __str__(self):
        return self.to_markdown()

    def __repr__(self):
        return self.to_markdown()

    def _repr_html_(self):
        return self.to_html()

    def _repr_markdown_(self):
        return self.to_markdown()


PAGE_CSS = """body { font-family: system-ui, "Noto Sans", "PingFang SC", "Microsoft YaHei", sans-serif;
       margin: 1.5em; color: #1a1a1a; }
table.m2f-shape-table { border-collapse: collapse; font-size: 0.9em; }
table.m2f-shape-table caption { padding: 0.4em 0; font-size: 1.1em; }
table.m2f-shape-table th { position: sticky; top: 0; background: #f0f0f0;
       border-bottom: 2px solid #444; }
table.m2f-shape-table th, table.m2f-shape-table td { padding: 0.3em 0.6em; vertical-align: top; }
table.m2f-shape-table tbody tr:nth-child(even) { background: #fafafa; }
table.m2f-shape-table td { border-bottom: 1px solid #ddd; }
table.m2f-shape-table code { font-family: ui-monospace, "DejaVu Sans Mono", monospace; }
"""


def _in_language(english: str, chinese: str, lang: str) -> str:
    chinese = chinese or english
    if lang == "zh":
        return chinese
    if lang == "both" and chinese != english:
        return f"{english} / {chinese}"
    return english


def step_number(label: str) -> str:
    """`"3.4 deformable attention"` → `"3.4"`, `"dec 3.1 layer loop"` → `"dec 3.1"`."""
    words = label.split()
    if words[:1] == ["dec"] and len(words) > 1:
        return "dec " + words[1]
    return words[0] if words and words[0][0].isdigit() else ""


def _step_matches(label: str, wanted: str) -> bool:
    number = step_number(label)
    wanted = re.sub(r"^dec\s*", "dec ", wanted.strip())      # "dec3.3" = "dec 3.3"
    return label == wanted or number == wanted or (bool(number) and number.startswith(wanted + "."))


def _name_matches(row: Row, shown: str, pattern: str) -> bool:
    if not any(ch in pattern for ch in "*?["):
        return any(pattern in n for n in [shown, *row.names])
    return any(fnmatch.fnmatchcase(n, pattern) for n in [shown, *row.names])


def shortest_unique_names(names: list[str]) -> dict[str, str]:
    """Each name from the last module whose words (indices left out) no other name ends with:
    `panoptic_head.pixel_decoder.memory` → `memory`, `backbone.feats.{0–3}` → `feats.{0–3}`,
    `panoptic_head.attn_mask.{0–9}` keeps `panoptic_head.` because a decoder layer has an
    `attn_mask` too."""
    def is_index(part: str) -> bool:
        return part[:1].isdigit() or part.startswith("{")

    words = {n: [p for p in n.split(".") if not is_index(p)] for n in names}
    out = {}
    for name in names:
        parts = name.split(".")
        starts = [i for i, p in enumerate(parts) if not is_index(p)] or [0]
        for k in range(1, len(starts) + 1):
            tail = words[name][-k:]
            shown = ".".join(parts[starts[-k]:])
            # rows that differ only in their indices (feats.0, feats.1) tell themselves apart,
            # as long as the indices that differ are part of what is shown
            # (layers.{0,3,6}.cross_attn.attn_scores needs its `layers.{0,3,6}`)
            if not any(other != name and words[other][-k:] == tail
                       and (words[other] != words[name] or other.endswith("." + shown) or other == shown)
                       for other in names):
                break
        out[name] = ".".join(parts[starts[-k]:])
    return out
