"""`python -m m2f_teach lab`: open the notebooks in JupyterLab, or print the seed's table.

Where a web browser can be opened, JupyterLab starts on `notebooks/`. On a machine with no
browser (a server, CI) the seed configuration's shape table is printed instead, with the
command that serves JupyterLab for a browser elsewhere.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import webbrowser
from pathlib import Path


def has_browser() -> bool:
    if os.environ.get("CI"):
        return False
    try:
        browser = webbrowser.get()
    except webbrowser.Error:
        return False
    # text-mode fallbacks do not count as a browser for JupyterLab
    return type(browser).__name__ not in ("GenericBrowser",) or bool(os.environ.get("BROWSER"))


def notebooks_dir() -> Path:
    here = Path(__file__).resolve().parent.parent / "notebooks"
    return here if here.is_dir() else Path.cwd()


def run_lab(args) -> int:
    notebooks = notebooks_dir()
    if not args.table and has_browser() and shutil.which("jupyter"):
        cmd = ["jupyter", "lab", str(notebooks)]
        print("starting:", " ".join(cmd), file=sys.stderr)
        return subprocess.call(cmd)
    from .model.config import M2FConfig
    from .tracing import trace_shapes
    sys.stdout.write(trace_shapes(M2FConfig.seed()).table().to_markdown())
    print(f"\nNo web browser here. To read the notebooks from a browser on another machine:\n"
          f"  jupyter lab --no-browser --ip 127.0.0.1 {notebooks.name}/\n"
          f"and forward the port it prints (ssh -L 8888:127.0.0.1:8888 ...).", file=sys.stderr)
    return 0


def add_parser(sub):
    parser = sub.add_parser("lab", help="open the notebooks in JupyterLab (or print the seed's table "
                                        "where there is no browser)")
    parser.add_argument("--table", action="store_true", help="print the seed's shape table, do not start JupyterLab")
    parser.set_defaults(func=lambda args: sys.exit(run_lab(args)))
