"""Run notebooks top to bottom in this Python's environment, as a student's "Run All" does.

`make test-lab` runs it with the environment that `make lab` builds, and nothing else, so that a
notebook needing a package the students' set-up lacks fails here rather than in a lecture. A cell
that raises stops the run with the notebook, the cell and the error; exit status 1. Outputs are
not compared (strict nbval does that in the dev environment) and the stored notebooks are not
changed. The kernel is this interpreter, whatever kernels the machine has registered.

    .venv-lab/bin/python tests/run_notebooks.py notebooks/*.ipynb
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from importlib.util import find_spec
from pathlib import Path


def python3_kernel_here(folder: Path) -> None:
    """A `python3` kernelspec that starts this interpreter, found before any other (JUPYTER_PATH)."""
    spec = folder / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (ipykernel)", "language": "python"}))
    os.environ["JUPYTER_PATH"] = str(folder)


def run(path: Path) -> str | None:
    """Execute one notebook; None when every cell ran, else what failed."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, kernel_name="python3", timeout=1800,
                            resources={"metadata": {"path": str(path.parent)}})
    try:
        client.execute()
    except CellExecutionError as error:
        failed = [i for i, cell in enumerate(notebook.cells)
                  if any(out.get("output_type") == "error" for out in cell.get("outputs", []))]
        where = f"cell {failed[0]}" if failed else "a cell"
        return f"{where}: {str(error).strip().splitlines()[-1]}"
    return None


def main(paths: list[str]) -> int:
    if not paths:
        print("usage: run_notebooks.py NOTEBOOK.ipynb [...]", file=sys.stderr)
        return 2
    missing = [name for name in ("pytest", "nbval", "mmdet", "playwright") if find_spec(name) is None]
    print(f"environment: {sys.prefix}; not installed here (dev-only): {', '.join(missing) or 'none'}")
    failures = []
    with tempfile.TemporaryDirectory() as folder:
        python3_kernel_here(Path(folder))
        for path in map(Path, sorted(paths)):
            start = time.perf_counter()
            problem = run(path)
            status = "ok" if problem is None else f"FAILED at {problem}"
            print(f"{path.name:40s} {time.perf_counter() - start:6.0f} s  {status}", flush=True)
            if problem is not None:
                failures.append(path.name)
    print(f"notebooks: {len(paths) - len(failures)} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
