"""`python -m m2f_teach site -o site/`: the explorer page, a static folder (see `build.py`).

Serve it with any static file server and open it, for example

    python -m http.server -d site 8000      # then http://127.0.0.1:8000/

It needs npm once, to vendor onnxruntime-web (pinned in web/package-lock.json); the page itself
fetches nothing from the network.
"""
from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the `site` subcommand to an `argparse` subparsers object."""
    parser = subparsers.add_parser(
        "site", help="build the explorer page: the shipped model in the browser (a static folder)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-o", "--output", default="site", help="the folder to write (default: site)")
    parser.add_argument("--no-check", action="store_true", help="skip running the ONNX file against PyTorch")
    parser.set_defaults(func=run)
    return parser


def run(args) -> int:
    """Carry out `site` for parsed `args`; returns the exit status."""
    from .build import build_site
    summary = build_site(args.output, check=not args.no_check)   # errors: one line from __main__
    check = "" if summary["max_diff"] is None else \
        f"; onnxruntime vs PyTorch: max abs difference {summary['max_diff']:.0e}"
    print(f"wrote {args.output}/: {summary['files']} files, {summary['bytes'] / 2**20:.1f} MiB "
          f"(model {summary['onnx_bytes'] / 2**20:.1f} MiB){check}")
    print(f"serve it: python -m http.server -d {args.output} 8000, then open http://127.0.0.1:8000/")
    return 0
