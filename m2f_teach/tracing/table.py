"""Annotated shape tables: every traced tensor with its step, shapes and how they arise.

    t = trace_shapes(M2FConfig.seed())
    print(t.table().to_markdown())          # or to_html / to_csv / to_json / to_latex

Columns: the seed's step, the name, the symbolic shape in glossary letters, the concrete shape,
how the numbers arise, and a short note. With `collapse=True` repeated layers and predictions
with the same shape share one row (`encoder.layers.{0–5}` ×6).
"""
from __future__ import annotations

import csv
import html
import io
import json
import re
from dataclasses import dataclass, field

from .annotations import annotate

COLUMNS = ("step", "name", "symbolic", "shape", "derivation", "note")
HEADERS = {"step": "step", "name": "name", "symbolic": "symbolic", "shape": "shape",
           "derivation": "how the numbers arise", "note": "note", "count": "×"}


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

    def __init__(self, rows: list[Row], title: str = ""):
        self.rows = rows
        self.title = title

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
                                    record.module_type, record.dtype, names=[record.name]))
                continue
            step, note, how = annotate(record, symbols, spatial)
            rows.append(Row(step, record.name, record.symbolic, record.shape, how, note,
                            record.dtype, names=[record.name]))
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
                           first.dtype, count=len(members), names=names))
        return out

    def __len__(self):
        return len(self.rows)

    # ---- formats ------------------------------------------------------------------------------
    def _cells(self, row: Row) -> list[str]:
        name = row.name + (f" ×{row.count}" if row.count > 1 else "")
        return [row.step, name, row.symbolic, row.shape_text, row.derivation, row.note]

    def to_markdown(self) -> str:
        header = [HEADERS[c] for c in COLUMNS]
        lines = []
        if self.title:
            lines += [f"**{self.title}**", ""]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join("---" for _ in header) + "|")
        for row in self.rows:
            cells = [c.replace("|", "\\|") for c in self._cells(row)]
            cells[1] = f"`{cells[1]}`"
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"

    def to_html(self) -> str:
        head = "".join(f"<th style='text-align:left'>{html.escape(HEADERS[c])}</th>" for c in COLUMNS)
        body = []
        for row in self.rows:
            cells = [html.escape(c) for c in self._cells(row)]
            cells[1] = f"<code>{cells[1]}</code>"
            body.append("<tr>" + "".join(f"<td style='text-align:left'>{c}</td>" for c in cells) + "</tr>")
        caption = f"<caption style='text-align:left'><b>{html.escape(self.title)}</b></caption>" if self.title else ""
        return (f"<table class='m2f-shape-table'>{caption}<thead><tr>{head}</tr></thead>"
                f"<tbody>{''.join(body)}</tbody></table>")

    def to_csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow([HEADERS[c] for c in COLUMNS] + ["count"])
        for row in self.rows:
            writer.writerow(self._cells(row)[:1] + [row.name] + self._cells(row)[2:] + [row.count])
        return buffer.getvalue()

    def to_json(self) -> str:
        return json.dumps([row.as_dict() for row in self.rows], indent=1, ensure_ascii=False) + "\n"

    def to_latex(self) -> str:
        def esc(text: str) -> str:
            for a, b in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"),
                         ("#", r"\#"), ("{", r"\{"), ("}", r"\}"), ("×", r"$\times$"),
                         ("·", r"$\cdot$"), ("→", r"$\rightarrow$"), ("∈", r"$\in$"),
                         ("–", "--"), ("²", r"$^2$"), ("≥", r"$\geq$")):
                text = text.replace(a, b)
            return text

        lines = [r"% needs \usepackage{booktabs}", r"\begin{tabular}{llllp{5cm}p{5cm}}", r"\toprule",
                 " & ".join(esc(HEADERS[c]) for c in COLUMNS) + r" \\", r"\midrule"]
        for row in self.rows:
            cells = [esc(c) for c in self._cells(row)]
            cells[1] = r"\texttt{" + cells[1] + "}"
            lines.append(" & ".join(cells) + r" \\")
        lines += [r"\bottomrule", r"\end{tabular}"]
        if self.title:
            lines.insert(0, f"% {self.title}")
        return "\n".join(lines) + "\n"

    def render(self, fmt: str = "md") -> str:
        formats = {"md": self.to_markdown, "markdown": self.to_markdown, "html": self.to_html,
                   "csv": self.to_csv, "json": self.to_json, "latex": self.to_latex, "tex": self.to_latex}
        if fmt not in formats:
            raise ValueError(f"unknown table format {fmt!r}; expected one of md, html, csv, json, latex")
        return formats[fmt]()

    def __str__(self):
        return self.to_markdown()

    def __repr__(self):
        return self.to_markdown()

    def _repr_html_(self):
        return self.to_html()

    def _repr_markdown_(self):
        return self.to_markdown()
