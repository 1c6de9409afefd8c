"""`python -m m2f_teach export [--weights FILE] --format onnx|pt2 [--image-size H W] -o FILE`.

Exports the shipped checkpoint (or converted weights) with a dynamic batch at one image size
(default: the weights' configured size, 128×128 for the shipped checkpoint), then checks the
file: ONNX in onnxruntime, `.pt2` through `torch.export.load`, each against the PyTorch model
on a batch of 3 random images (another batch size than the one exported with), and prints the
largest difference, the time and the file size.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from ..cli_args import check_output_path
from ..files import atomic_write


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the `export` subcommand to an `argparse` subparsers object."""
    parser = subparsers.add_parser(
        "export", help="export to ONNX or a torch.export program (.pt2), checked",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", help="a .safetensors file from `convert` (default: the shipped checkpoint)")
    parser.add_argument("--format", required=True, help="onnx or pt2")
    parser.add_argument("--image-size", nargs=2, type=int, metavar=("H", "W"),
                        help="the image size the file takes, multiples of 32 (default: the weights' config)")
    parser.add_argument("-o", "--output", required=True, help="the file to write (.onnx or .pt2)")
    parser.add_argument("--dynamo", action="store_true",
                        help="onnx: use the torch.export-based exporter (minutes) instead of TorchScript's")
    parser.add_argument("--no-check", action="store_true", help="skip running the file against PyTorch")
    parser.set_defaults(func=run)
    return parser


def load_weights(weights):
    if weights is None:
        from ..pretrained import load_pretrained
        return load_pretrained()
    from ..convert.checkpoint import load_checkpoint
    return load_checkpoint(weights)


def run(args) -> int:
    """Carry out `export` for parsed `args`: exit status 0, or 1 when the written file differs from
    the model (errors raise: `__main__` turns them into one line)."""
    from . import check_onnx, check_program, export_onnx, export_program
    from .program import example_images
    if args.format not in ("onnx", "pt2"):
        raise ValueError(f"--format {args.format}: expected onnx or pt2")
    check_output_path(args.output, "-o", suffixes=(args.format,))
    model = load_weights(args.weights)
    check_images = example_images(model, args.image_size, batch_size=3)
    start = time.perf_counter()
    if args.format == "onnx":
        atomic_write(args.output, lambda tmp: export_onnx(model, tmp, args.image_size, dynamo=args.dynamo))
    else:
        program = export_program(model, args.image_size)
        atomic_write(args.output, lambda tmp: torch.export.save(program, tmp))
    seconds = time.perf_counter() - start
    H, W = check_images.shape[-2:]
    print(f"wrote {args.output}: {Path(args.output).stat().st_size / 2**20:.1f} MiB in {seconds:.0f} s, "
          f"images (B, 3, {H}, {W}), B dynamic")
    if not args.no_check:
        check = check_onnx if args.format == "onnx" else check_program
        diff = check(args.output, model, check_images)
        where = "onnxruntime" if args.format == "onnx" else "torch.export.load"
        print(f"check: {where} vs PyTorch on a batch of 3: max abs difference {diff:.1e}")
        if diff > 1e-4:
            print(f"check failed: the exported file differs from the model by {diff:.1e} (> 1e-4)", file=sys.stderr)
            return 1
    return 0
