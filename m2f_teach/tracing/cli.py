"""`python -m m2f_teach table | summary | diagram`: a configuration's shapes, from the command line.

    python -m m2f_teach table                                   # the seed's annotated table (markdown)
    python -m m2f_teach table --columns step,name,shape --steps 3.4 --short-names --lang zh
    python -m m2f_teach table --only '*.encoder.layers.*' --format html --standalone -o enc.html
    python -m m2f_teach table --slides --standalone --short-names -o shapes.tex   # beamer, 16:9
    python -m m2f_teach summary --depth 2
    python -m m2f_teach diagram --preset small -o arch.svg      # .svg, .pdf or .png

All three run on the `meta` device (shapes, no weights) and take the configuration options
(`--preset`, `--image-size`, `--num-queries`, ...). Only what a command uses is imported:
`table` needs torch and the model; `diagram` adds matplotlib; `summary` adds torchinfo.
"""
from __future__ import annotations

import sys
import warnings
from pathlib import Path

from ..cli_args import add_config_arguments, check_output_path, config_from_args, positive_int, write_output
from ..files import atomic_write

FORMATS = ("md", "html", "csv", "json", "latex")
DIAGRAM_FORMATS = ("svg", "pdf", "png")


def _columns(text: str) -> list[str]:
    import argparse
    columns = [c.strip() for c in text.split(",") if c.strip()]
    if not columns:
        raise argparse.ArgumentTypeError(f"expected column names separated by commas (e.g. step,name,shape), "
                                         f"got {text!r}")
    return columns


# what an --output name says about the format; another suffix leaves --format (or md) to decide
SUFFIX_FORMATS = {".md": "md", ".markdown": "md", ".html": "html", ".htm": "html", ".csv": "csv",
                  ".json": "json", ".tex": "latex"}


def table_format(args) -> str:
    """`--format`, else what `--output`'s suffix says, else latex with --slides, else md; a
    `--format` that contradicts the suffix (markdown into t.html) is refused."""
    suffix = Path(args.output).suffix.lower() if args.output else ""
    implied = SUFFIX_FORMATS.get(suffix)
    if args.format and implied and args.format != implied:
        raise ValueError(f"--output {args.output} is a {suffix} file but --format {args.format}: "
                         f"drop --format (the suffix picks {implied}) or name the file for {args.format}")
    return args.format or implied or ("latex" if args.slides else "md")


# ---- table ------------------------------------------------------------------------------------------
def run_table(args):
    fmt = table_format(args)
    if args.output:
        check_output_path(args.output)              # before the trace: a typo fails at once
    from .shape_only import trace_shapes
    config = config_from_args(args)
    collapse = args.collapse if args.collapse is not None else fmt not in ("csv", "json")
    table = trace_shapes(config, record_modules=args.modules).table(collapse=collapse,
                                                                    include_modules=args.modules)
    if args.columns or args.steps or args.only or args.short_names or args.lang != "en":
        table = table.select(columns=args.columns, steps=args.steps, only=args.only,
                             short_names=args.short_names or None, lang=args.lang)
    with warnings.catch_warnings(record=True) as notes:       # e.g. no pdflatex to measure rows with
        warnings.simplefilter("always", UserWarning)
        text = table.render(fmt, slides=args.slides, standalone=args.standalone,
                            font_size=args.font_size, rows_per_frame=args.rows_per_frame)
    for note in notes:
        if issubclass(note.category, UserWarning):
            print(f"note: {note.message}", file=sys.stderr)
    write_output(text, args.output)


def add_table_parser(sub):
    from .table import ALL_COLUMNS, COLUMNS, LANGUAGES
    from .table_latex import FONT_SIZES
    table = sub.add_parser("table", help="annotated shape table of a configuration (meta device: "
                                         "shapes without weights)",
                           description="The annotated shape table: each traced tensor's seed step, "
                                       "name, symbolic and concrete shape, how the numbers arise "
                                       "and a note.")
    add_config_arguments(table)
    table.add_argument("--format", choices=FORMATS, default=None, help="md (default), html, csv, json "
                       "or latex (the default with --slides); with --output, its suffix picks it "
                       "(.md, .html, .csv, .json, .tex)")
    table.add_argument("--output", "-o", help="write to this file instead of standard output")
    table.add_argument("--collapse", dest="collapse", action="store_true", default=None,
                       help="one row for repeated layers with the same shape (default for md/html/latex)")
    table.add_argument("--no-collapse", dest="collapse", action="store_false",
                       help="one row per traced tensor (default for csv/json)")
    table.add_argument("--modules", action="store_true", help="also list every module call")
    pick = table.add_argument_group("what to show")
    pick.add_argument("--columns", type=_columns, metavar="A,B,...",
                      help=f"columns in this order, from {','.join(ALL_COLUMNS)} "
                           f"(default {','.join(COLUMNS)})")
    pick.add_argument("--steps", nargs="+", metavar="STEP",
                      help="rows of these seed steps: 3.4, 3 (every 3.x), 'dec 3.3' (the decoder's)")
    pick.add_argument("--only", nargs="+", metavar="GLOB",
                      help="rows whose name matches: '*.encoder.layers.*', or a part of a name")
    pick.add_argument("--short-names", action="store_true",
                      help="drop the module path where the rest of the name is unique")
    pick.add_argument("--lang", choices=LANGUAGES, default="en",
                      help="language of step labels, notes and headers (zh: Chinese; both)")
    docs = table.add_argument_group("slides and documents")
    docs.add_argument("--slides", action="store_true",
                      help="LaTeX beamer frames that fit 16:9, as many as the rows need")
    docs.add_argument("--standalone", action="store_true",
                      help="a complete document: LaTeX that compiles with pdflatex, or an HTML page")
    docs.add_argument("--font-size", choices=FONT_SIZES, default=None,
                      help="the slides' font size (default scriptsize); frames are filled to their height")
    docs.add_argument("--rows-per-frame", type=positive_int, metavar="N", default=None,
                      help="at most N rows on a slide (fewer where N do not fit)")
    table.set_defaults(func=run_table)


# ---- summary ----------------------------------------------------------------------------------------
def run_summary(args):
    if args.depth < 0:
        raise ValueError(f"--depth {args.depth}: expected an integer ≥ 0 (0: the model alone, 1: its parts, ...)")
    if args.output:
        check_output_path(args.output)
    from .summary import model_summary
    write_output(model_summary(config_from_args(args), depth=args.depth), args.output)


def add_summary_parser(sub):
    summary = sub.add_parser("summary", help="torchinfo summary of the model at a configuration")
    add_config_arguments(summary)
    summary.add_argument("--depth", type=int, default=3, help="module nesting depth to show (≥ 0)")
    summary.add_argument("--output", "-o", help="write to this file instead of standard output")
    summary.set_defaults(func=run_summary)


# ---- diagram ----------------------------------------------------------------------------------------
DPI_RANGE = (10, 600)       # 600 dpi: the 13 × 8.6 inch page is 7800 × 5160 pixels, 160 MB while drawn


def run_diagram(args):
    low, high = DPI_RANGE
    if not low <= args.dpi <= high:
        raise ValueError(f"--dpi {args.dpi}: expected {low} to {high} (the page is 13 × 8.6 inches: "
                         f"{high} dpi gives {13 * high} × {round(8.6 * high)} pixels)")
    target = check_output_path(args.output, suffixes=DIAGRAM_FORMATS)
    from ..viz.diagram import cjk_font, save_diagram
    if args.lang == "zh":
        cjk_font()                              # before the trace: a missing font fails at once
    from .shape_only import trace_shapes
    config = config_from_args(args)
    if not config.deformable_encoder:
        raise ValueError("--deformable-encoder false: the diagram draws the deformable encoder, which this "
                         "ablation removes; `python -m m2f_teach table --deformable-encoder false` shows its shapes")
    figure_trace = trace_shapes(config)
    atomic_write(target, lambda tmp: save_diagram(figure_trace, tmp, dpi=args.dpi, lang=args.lang))
    print(f"wrote {args.output}", file=sys.stderr)


def add_diagram_parser(sub):
    diagram = sub.add_parser("diagram", help="the architecture on one page with live shapes "
                                             "(svg, pdf or png)")
    add_config_arguments(diagram)
    diagram.add_argument("--output", "-o", required=True, metavar="FILE",
                         help="arch.svg, arch.pdf or arch.png (the suffix picks the format)")
    diagram.add_argument("--dpi", type=int, default=200,
                         help=f"resolution of a png, {DPI_RANGE[0]} to {DPI_RANGE[1]} (default 200)")
    diagram.add_argument("--lang", choices=("en", "zh"), default="en",
                         help="language of the words (zh: Chinese, needs a font with Chinese glyphs)")
    diagram.set_defaults(func=run_diagram)


def add_parser(sub):
    """Register `table`, `summary` and `diagram` on an argparse `subparsers`."""
    add_table_parser(sub)
    add_summary_parser(sub)
    add_diagram_parser(sub)
