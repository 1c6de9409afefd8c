"""Command line: `python -m m2f_teach {table,summary,...}`.

Exit status: 0 done; 1 a check found a difference (`compare`: a stage beyond the tolerance,
`export`: the written file against the model); 2 an error: a bad value or file, a failed
conversion, ended with one line naming it (`error: ...`, written here and nowhere else); 130
on Ctrl-C (`train`: 128 + the signal, after saving). `--debug`, anywhere on the line, shows the
traceback instead.

    python -m m2f_teach table                          # the seed's annotated shape table (markdown)
    python -m m2f_teach table --preset small --image-size 512 768 --format latex --output t.tex
    python -m m2f_teach table --num-queries 200 --num-points 8 --format json
    python -m m2f_teach table --slides --standalone --short-names --output shapes.tex
    python -m m2f_teach summary --depth 2
    python -m m2f_teach diagram --preset small -o arch.svg
    python -m m2f_teach convert --from hf ./mask2former-swin-tiny --output weights.safetensors
    python -m m2f_teach train --steps 100 --out artifacts/shapes.safetensors
    python -m m2f_teach train --recipe lecture --out artifacts/lecture.safetensors   # ~30 min, 2 CPU cores
    python -m m2f_teach ablate                         # each ablation with the lecture recipe
    python -m m2f_teach lab                            # JupyterLab on notebooks/ (or the table)
    python -m m2f_teach predict photo.png --task panoptic -o overlay.png --json results.json
    python -m m2f_teach export --format onnx -o m2f.onnx   # or --format pt2; checked after writing
    python -m m2f_teach compare --hf ./hf-folder [IMAGE]    # stage by stage against HF (or --mmdet)
    python -m m2f_teach site -o site/                  # the explorer page: the model in the browser
"""
from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys

# one module a room, each with `add_parser(subparsers)`; a new command goes in its room's cli.py
SUBCOMMAND_MODULES = ("m2f_teach.tracing.cli", "m2f_teach.convert.cli", "m2f_teach.training.cli",
                      "m2f_teach.lab", "m2f_teach.predict.cli", "m2f_teach.export.cli",
                      "m2f_teach.site.cli")
BAD_INPUT = 2          # the exit status of every error: a bad value or file, a failed conversion


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m m2f_teach",
                                     description="Mask2Former taught tensor by tensor.")
    sub = parser.add_subparsers(dest="command", required=True)

    for module_name in SUBCOMMAND_MODULES:   # subcommands that live beside their code
        importlib.import_module(module_name).add_parser(sub)
    return parser


def report_error(error: BaseException, status: int = BAD_INPUT):
    """End the command with one line, `error: ...`, naming what was wrong; exit `status`.

    A message's first line is its summary; further lines (a list of keys) follow indented.
    """
    message = str(error).strip() or type(error).__name__
    if isinstance(error, KeyError) and error.args:
        message = f"missing key {error.args[0]!r}"
    if not isinstance(error, (ValueError, TypeError, OSError, FloatingPointError)) or isinstance(error, KeyError):
        message = f"{type(error).__name__}: {message}"
    first, *rest = message.splitlines()
    details = "".join(f"  {line}\n" for line in rest)
    sys.stderr.write(f"error: {first}\n{details}")
    sys.exit(status)


def main(argv=None):
    """Run one subcommand; every failure is one line on standard error and a non-zero exit."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    try:
        run_command(argv, debug)
    except KeyboardInterrupt:         # also while torch and the subcommands load
        if debug:
            raise
        sys.stderr.write("interrupted\n")
        sys.exit(130)


def exit_interrupted(signum=None, frame=None):
    """Ctrl-C while torch and the subcommands load: nothing is written yet, so stop at once (a
    KeyboardInterrupt raised inside the import machinery can be swallowed and the command go on)."""
    sys.stderr.write("interrupted\n")
    sys.stderr.flush()
    os._exit(130)


def run_command(argv: list[str], debug: bool):
    try:
        previous = signal.signal(signal.SIGINT, exit_interrupted) if not debug else None
    except ValueError:                  # not the main thread: signals stay as they are
        previous = None
    try:
        parser = build_parser()
        parser.add_argument("--debug", action="store_true",
                            help="on an error, show the full traceback (also accepted after the subcommand)")
        args = parser.parse_args(argv)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    if debug:
        status = args.func(args)
    else:
        try:
            status = args.func(args)
        except Exception as error:  # noqa: BLE001 - every failure becomes one line, here only
            report_error(error)
    if status:
        sys.exit(status)


if __name__ == "__main__":
    main()
