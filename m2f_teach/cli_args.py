"""What every subcommand's parser shares: the configuration options, `parse_bool`, and the check
of an output path before any work starts.

Each room keeps its own subcommands in its `cli.py` (`tracing/cli.py`: table, summary, diagram;
`convert/cli.py`: convert, compare; `training/cli.py`: train, ablate; `predict/cli.py`;
`export/cli.py`; `lab.py`) and imports its helpers from here; `__main__.py` lists those
modules and turns any error into one line. Files are written whole by `files.atomic_write`.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import typing
from pathlib import Path

from .files import atomic_write


def add_config_arguments(parser: argparse.ArgumentParser):
    """`--preset`, `--image-size H W` and one flag per `M2FConfig` field (`--num-queries`, ...)."""
    from .model.config import PRESETS, M2FConfig     # torch loads when the parser is built, not on import
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
            group.add_argument(flag, type=parse_bool, metavar="BOOL")
        else:
            group.add_argument(flag, type=kind, metavar=f.name.upper())


def config_from_args(args):
    """The `M2FConfig` that `add_config_arguments`' flags describe (the preset, then the changes)."""
    from .model.config import M2FConfig
    changes = {}
    for f in dataclasses.fields(M2FConfig):
        value = getattr(args, f.name, None)
        if value is not None:
            changes[f.name] = tuple(value) if f.name == "image_size" else value
    return M2FConfig.preset(args.preset, **changes)


TRUE_WORDS, FALSE_WORDS = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def parse_bool(text: str) -> bool:
    """`true/yes/on/1` or `false/no/off/0` (any case); anything else is an argparse error."""
    if text.lower() in TRUE_WORDS:
        return True
    if text.lower() in FALSE_WORDS:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false (or {'/'.join(TRUE_WORDS[:3])}, "
                                     f"{'/'.join(FALSE_WORDS[:3])}), got {text!r}")


def positive_int(text: str) -> int:
    """An argparse `type`: a whole number ≥ 1, else an argparse error naming the text."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return int(text)


def check_output_path(path: str | os.PathLike, flag: str = "--output", suffixes=None,
                      make_folders: bool = False) -> Path:
    """The file to write, or a `ValueError` that names `flag` and `path`: a folder, a suffix not in
    `suffixes` (e.g. `("svg", "pdf")`), a missing folder (made at the first write where
    `make_folders`), a folder this process cannot write in. Called before the work starts, so a
    typo fails at once rather than after a long run."""
    text, target = str(path), Path(path)
    if target.is_dir() or text.endswith(("/", os.sep)):
        example = target / ("output." + suffixes[0] if suffixes else "output.txt")
        raise ValueError(f"{flag} {text}: is a folder; expected a file name inside it (e.g. {example})")
    if suffixes is not None and target.suffix.lower().lstrip(".") not in suffixes:
        raise ValueError(f"{flag} {text}: expected a file name ending in " + ", ".join("." + s for s in suffixes))
    existing = target.parent
    if make_folders:
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent               # the folders in between are made at the first write
        if not existing.is_dir():
            raise ValueError(f"{flag} {text}: cannot write there: {existing} is a file, not a folder")
    elif not existing.is_dir():
        raise ValueError(f"{flag} {text}: the folder {existing} does not exist; create it first")
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=f".{target.name}.", suffix=".check"):
            pass
    except OSError as err:
        raise ValueError(f"{flag} {text}: cannot write in {existing} ({err.strerror or err})") from None
    return target


def write_output(text: str, output: str | None, flag: str = "--output"):
    """`text` to standard output, or to the file `output` whole (`atomic_write`)."""
    if not output:
        sys.stdout.write(text)
        return
    atomic_write(check_output_path(output, flag), lambda tmp: tmp.write_text(text, encoding="utf-8"))
    print(f"wrote {output}", file=sys.stderr)
