"""`python -m m2f_teach lab`: open the notebooks in JupyterLab, or print the seed's table.

Where a web browser can be opened, JupyterLab starts on `notebooks/`. On a machine with no
browser (a server, CI) it prints what to do instead, first thing: the command that serves
JupyterLab for a browser elsewhere, written so that it runs as printed (the `jupyter` of this
Python's environment, `.venv/bin/jupyter`; `--allow-root` where the command runs as root, which
JupyterLab refuses without it), where to find the token URL, the notebook to start with, and the
one command that prints the seed's shape table (`lab --table` prints it here).
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


def jupyter_command() -> str | None:
    """The `jupyter` beside this Python (the venv's), else the one on PATH, else None."""
    beside = Path(sys.executable).parent / "jupyter"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("jupyter")


def _shown(path: str | Path) -> str:
    """A path as short as it can be printed: relative to the working folder when inside it."""
    path = Path(path).absolute()
    try:
        relative = path.relative_to(Path.cwd())
    except ValueError:
        return str(path)
    return str(relative) if relative.parts and relative.parts[0] != ".." else str(path)


def lab_command(notebooks: Path, jupyter: str, browser: bool, port: int = 8888) -> list[str]:
    cmd = [jupyter, "lab"]
    if not browser:
        cmd += ["--no-browser", "--ip", "127.0.0.1", "--port", str(port)]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")           # JupyterLab refuses to run as root without it
    return cmd + [_shown(notebooks) + os.sep]


def run_lab(args) -> int:
    notebooks = notebooks_dir()
    jupyter = jupyter_command()
    if not args.table and has_browser() and jupyter:
        cmd = lab_command(notebooks, jupyter, browser=True)
        print("starting:", " ".join(cmd), file=sys.stderr)
        return subprocess.call(cmd)
    if args.table:
        from .model.config import M2FConfig
        from .tracing import trace_shapes
        sys.stdout.write(trace_shapes(M2FConfig.seed()).table().to_markdown())
        return 0
    python = _shown(sys.executable)
    table = f"  {python} -m m2f_teach table        (the same: make table)"
    if jupyter is None:
        print("JupyterLab is not installed here: `make lab` (or pip install -e '.[lab]') installs it.\n\n"
              f"The seed's shape table, every tensor of the note step by step:\n{table}")
        return 0
    cmd = lab_command(notebooks, _shown(jupyter), browser=False)
    print(f"No web browser here. To read the notebooks from a browser on another machine, run here:\n"
          f"  {' '.join(cmd)}\n"
          f"then, on the machine with the browser:  ssh -N -L 8888:127.0.0.1:8888 USER@THIS-HOST\n"
          f"and open the address JupyterLab prints with its token: "
          f"http://127.0.0.1:8888/lab?token=...\n\n"
          f"Start with {_shown(notebooks / '00_overview.ipynb')}.\n"
          f"The seed's shape table, every tensor of the note step by step:\n{table}")
    return 0


def add_parser(sub):
    parser = sub.add_parser("lab", help="open the notebooks in JupyterLab (where there is no browser: "
                                        "print how to open them from another machine)")
    parser.add_argument("--table", action="store_true", help="print the seed's shape table, do not start JupyterLab")
    parser.set_defaults(func=lambda args: sys.exit(run_lab(args)))
