"""Command line: `python -m m2f_teach {table,summary,...}`.

    python -m m2f_teach table                          # the seed's annotated shape table (markdown)
    python -m m2f_teach table --preset small --image-size 512 768 --format latex --output t.tex
    python -m m2f_teach table --num-queries 200 --num-points 8 --format json
    python -m m2f_teach table --slides --standalone --short-names --output shapes.tex
    python -m m2f_teach summary --depth 2
    python -m m2f_teach diagram --preset small -o arch.svg
    python -m m2f_teach convert --from hf ./mask2former-swin-tiny --output weights.safetensors
    python -m m2f_teach train --steps 100 --out artifacts/shapes.safetensors
    python -m m2f_teach lab                            # JupyterLab on notebooks/ (or the table)
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import sys
import typing

from .model.config import PRESETS, M2FConfig

SUBCOMMAND_MODULES = ("m2f_teach.tracing.cli", "m2f_teach.convert.cli", "m2f_teach.training.train",
                      "m2f_teach.lab")


def _add_config_arguments(parser: argparse.ArgumentParser):
    group = parser.add_argument_group("configuration (defaults: the preset's)")
    group.add_argument("--preset", choices=PRESETS, default="seed", help="starting configuration")
    group.add_argument("--image-size", nargs=2, type=int, metavar=("H", "W"), help="image height and width")
    hints = typing.get_type_hints(M2FConfig)
    for f in dataclasses.fields(M2FConfig):
        if f.name in ("image_size", "backbone_stages"):
            continue
        flag = "--" + f.name.replace("_", "-")
        kind = hints[f.name]
        if kind is bool:
            group.add_argument(flag, type=lambda s: s.lower() in ("1", "true", "yes"), metavar="BOOL")
        else:
            group.add_argument(flag, type=kind, metavar=f.name.upper())


def config_from_args(args) -> M2FConfig:
    changes = {}
    for f in dataclasses.fields(M2FConfig):
        value = getattr(args, f.name, None)
        if value is not None:
            changes[f.name] = tuple(value) if f.name == "image_size" else value
    return M2FConfig.preset(args.preset, **changes)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m m2f_teach",
                                     description="Mask2Former taught tensor by tensor.")
    sub = parser.add_subparsers(dest="command", required=True)

    for module_name in SUBCOMMAND_MODULES:   # subcommands that live beside their code
        importlib.import_module(module_name).add_parser(sub)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status = args.func(args)
    except (ValueError, TypeError) as e:
        parser.exit(2, f"error: {e}\n")
    if status:
        sys.exit(status)


if __name__ == "__main__":
    main()
