"""`python -m m2f_teach export [--weights FILE] --format onnx|pt2 [--image-size H W] -o FILE`.

Exports the shipped checkpoint (or converted weights) with a dynamic batch at one image size
(default: the weights' configured size, 128×128 for the shipped checkpoint), with the metadata
`predict --onnx FILE` reads (class names, thing/stuff split, mean/std, test scale, input size,
padding rule), then checks the file: ONNX in onnxruntime, `.pt2` through `torch.export.load`,
each against the PyTorch model on a batch of 3 random images (another batch size than the one
exported with), and prints the largest absolute and relative differences (relative: over each
output's largest magnitude; `--tolerance`, default 1e-4), the time and the file size.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

from ..cli_args import check_output_path
from ..files import atomic_write

TOLERANCE = 1e-4


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the `export` subcommand to an `argparse` subparsers object."""
    from ..predict.preprocess import MAX_INPUT_PIXELS
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
    parser.add_argument("--tolerance", type=float, default=TOLERANCE,
                        help=f"largest relative difference the check accepts (default {TOLERANCE:g})")
    parser.add_argument("--max-input-pixels", type=int, default=MAX_INPUT_PIXELS,
                        help=f"refuse an --image-size above this many pixels (default {MAX_INPUT_PIXELS}; 0: no limit)")
    parser.set_defaults(func=run)
    return parser


def run(args) -> int:
    """Carry out `export` for parsed `args`: exit status 0, or 1 when the written file differs from
    the model (errors raise: `__main__` turns them into one line)."""
    from ..predict.api import Predictor
    from . import check_onnx, check_program, export_onnx, export_program
    from .metadata import describe
    from .program import check_image_size, example_images, save_program
    if args.format not in ("onnx", "pt2"):
        raise ValueError(f"--format {args.format}: expected onnx or pt2")
    check_output_path(args.output, "-o", suffixes=(args.format,))
    if not (math.isfinite(args.tolerance) and args.tolerance > 0):
        raise ValueError(f"--tolerance {args.tolerance}: expected a positive number")
    if args.max_input_pixels < 0:
        raise ValueError(f"--max-input-pixels {args.max_input_pixels}: expected 0 (no limit) or more")
    if args.image_size is not None:                 # before loading anything
        check_image_size(args.image_size, args.max_input_pixels)
    predictor = Predictor.from_weights(args.weights)
    model = predictor.model
    check_images = example_images(model, args.image_size, 3, args.max_input_pixels)
    H, W = check_images.shape[-2:]
    metadata = describe(predictor, (H, W))
    start = time.perf_counter()
    if args.format == "onnx":
        atomic_write(args.output, lambda tmp: export_onnx(model, tmp, (H, W), dynamo=args.dynamo,
                                                          metadata=metadata))
    else:
        program = export_program(model, (H, W))
        atomic_write(args.output, lambda tmp: save_program(program, tmp, metadata))
    seconds = time.perf_counter() - start
    print(f"wrote {args.output}: {Path(args.output).stat().st_size / 2**20:.1f} MiB in {seconds:.0f} s, "
          f"images (B, 3, {H}, {W}), B dynamic")
    if not args.no_check:
        check = check_onnx if args.format == "onnx" else check_program
        absolute = check(args.output, model, check_images)
        relative = check(args.output, model, check_images, relative=True)
        where = "onnxruntime" if args.format == "onnx" else "torch.export.load"
        print(f"check: {where} vs PyTorch on a batch of 3: max abs difference {absolute:.1e}, "
              f"relative {relative:.1e}")
        if relative > args.tolerance:
            print(f"check failed: the exported file differs from the model by {relative:.1e} of the outputs' "
                  f"magnitude (> --tolerance {args.tolerance:g})", file=sys.stderr)
            return 1
    return 0
