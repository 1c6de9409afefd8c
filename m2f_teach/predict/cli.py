"""`python -m m2f_teach predict IMAGE... [--weights FILE | --onnx FILE] [--task instance|semantic|panoptic]
[--score-threshold X] [--min-probability X] [--device cpu|cuda] [-o overlay.png] [--json results.json]`.

With no `--weights`, the shipped checkpoint and the shapes' class names (all five are things);
with a file written by `python -m m2f_teach convert`, the class names and thing/stuff split
stored at conversion (give `--num-things N` when it stored none and you want panoptic); with
`--onnx FILE`, a file written by `python -m m2f_teach export --format onnx`, run in onnxruntime
with the names, scale and input size it carries.
Images of any mode are taken (grayscale, RGBA and palette converted, 16-bit scaled: one `note:`
line says so). Every value and output path is checked before the model runs: nothing is
written unless the whole run can succeed. Masks in the json are COCO RLE:
`pycocotools.mask.decode(mask)` or `m2f_teach.predict.rle.decode(mask)` gives the `(h, w)`
array; instances also carry `box` `[x0, y0, x1, y1]`.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

from ..cli_args import check_output_path
from ..files import atomic_write
from .tasks import TASKS

OVERLAY_SUFFIXES = (".png", ".jpg", ".jpeg")


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the `predict` subcommand to an `argparse` subparsers object."""
    from .api import SHAPES_MIN_PROBABILITY
    from .preprocess import MAX_INPUT_PIXELS
    parser = subparsers.add_parser(
        "predict", help="instance, semantic or panoptic results for image files",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files (any size ≥ 32 pixels)")
    parser.add_argument("--weights", help="a .safetensors file from `convert` (default: the shipped checkpoint)")
    parser.add_argument("--onnx", metavar="FILE", help="run an ONNX file from `export` (onnxruntime) instead")
    parser.add_argument("--task", default="instance", metavar="TASK",
                        help=f"{', '.join(TASKS)} (default instance; the tasks: predict/tasks.py)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    parser.add_argument("--score-threshold", type=float, default=0.5,
                        help="instance: keep results scoring at least this, 0..1 (default 0.5)")
    parser.add_argument("--object-mask-threshold", type=float, default=0.8,
                        help="panoptic: keep queries whose class probability exceeds this, 0..1 (default 0.8, mmdet's)")
    parser.add_argument("--overlap-threshold", type=float, default=0.8,
                        help="panoptic: drop a query keeping at most this share of its own mask, 0..1 (default 0.8)")
    parser.add_argument("--min-probability", type=float,
                        help=f"semantic: a pixel whose best class sum is below this gets no class, 0..1 (default "
                             f"{SHAPES_MIN_PROBABILITY} for the shipped checkpoint, which has no background "
                             f"class; 0 for converted weights: every pixel gets a class)")
    parser.add_argument("--num-things", type=int, help="classes 0..N-1 are things, the rest stuff "
                        "(default: what the weights store)")
    parser.add_argument("--resize", nargs=2, type=int, metavar=("LONG", "SHORT"),
                        help="fit images in LONG×SHORT keeping the ratio (default: 128 128 for the "
                             "shipped checkpoint, 1333 800 for converted weights)")
    parser.add_argument("--no-resize", action="store_true", help="run each image at its own size")
    parser.add_argument("--max-input-pixels", type=int, default=MAX_INPUT_PIXELS,
                        help=f"refuse to run the model on more pixels than this (default {MAX_INPUT_PIXELS}, "
                             f"4096×2048; 0: no limit)")
    parser.add_argument("--background", default="black", help="black (default) or white: what transparent "
                        "pixels are composited on")
    parser.add_argument("--to-rgb", action="store_true", help=argparse.SUPPRESS)   # conversions are automatic now
    parser.add_argument("-o", "--overlay", help="write an overlay picture (.png or .jpg; with several images, "
                        "one file each named after its image: NAME_IMAGE.png)")
    parser.add_argument("--json", help="write the results as json (masks as COCO RLE)")
    parser.set_defaults(func=run)
    return parser


def overlay_paths(path: str, images: list[str]) -> list[Path]:
    """`-o NAME.png`: one image → NAME.png; several → NAME_STEM.png after each image's file name
    (NAME_STEM_2.png, ... where two images share a stem)."""
    path = Path(path)
    if len(images) == 1:
        return [path]
    out, seen = [], {}
    for image in images:
        stem = Path(image).stem
        seen[stem] = seen.get(stem, 0) + 1
        suffix = f"_{seen[stem]}" if seen[stem] > 1 else ""
        out.append(path.with_name(f"{path.stem}_{stem}{suffix}{path.suffix}"))
    return out


def check_writable(flag: str, path: Path) -> None:
    check_output_path(path, flag)          # a folder, a missing folder, a folder we cannot write in
    if path.exists() and not os.access(path, os.W_OK):
        raise ValueError(f"{flag} {path}: cannot write there")


def check_args(args) -> None:
    """Every value and output path, before anything is loaded or run (one clear line each)."""
    from .api import check_fraction
    from .preprocess import BACKGROUNDS, MIN_SIDE
    if args.task not in TASKS:
        raise ValueError(f"--task {args.task}: unknown task; expected one of {', '.join(TASKS)}")
    for flag in ("score_threshold", "object_mask_threshold", "overlap_threshold", "min_probability"):
        value = getattr(args, flag)
        if value is not None:
            check_fraction(value, "--" + flag.replace("_", "-"))
    if args.resize is not None and min(args.resize) < MIN_SIDE:
        raise ValueError(f"--resize {args.resize[0]} {args.resize[1]}: expected two sizes of at least {MIN_SIDE}")
    if args.max_input_pixels < 0:
        raise ValueError(f"--max-input-pixels {args.max_input_pixels}: expected 0 (no limit) or more")
    if args.num_things is not None and args.num_things < 0:
        raise ValueError(f"--num-things {args.num_things}: expected 0 or more")
    if args.background not in BACKGROUNDS:
        raise ValueError(f"--background {args.background}: expected black or white")
    if args.weights and args.onnx:
        raise ValueError("--weights and --onnx: give one of them")
    if args.onnx and not Path(args.onnx).is_file():
        raise FileNotFoundError(f"--onnx {args.onnx}: no such file")
    inputs = {Path(p).resolve() for p in args.images}
    outputs = []
    if args.overlay:
        if Path(args.overlay).suffix.lower() not in OVERLAY_SUFFIXES:
            raise ValueError(f"--overlay {args.overlay}: expected a .png or .jpg file name")
        outputs += [("--overlay", p) for p in overlay_paths(args.overlay, args.images)]
    if args.json:
        outputs.append(("--json", Path(args.json)))
    for flag, path in outputs:
        check_writable(flag, path)
        if path.resolve() in inputs:
            raise ValueError(f"{flag} {path}: is one of the input images; choose another name")


def load_predictor(args):
    from .api import Predictor
    if args.onnx:
        from .onnx_file import onnx_predictor
        if args.device != "cpu":
            raise ValueError(f"--device {args.device}: --onnx runs on the CPU (onnxruntime)")
        predictor = onnx_predictor(args.onnx)
    else:
        predictor = Predictor.from_weights(args.weights, args.device)
    if args.num_things is not None:
        if args.num_things > len(predictor.class_names):
            raise ValueError(f"--num-things {args.num_things}: expected 0..{len(predictor.class_names)}")
        predictor.num_things = args.num_things
    if args.no_resize:
        predictor.scale = None
    elif args.resize:
        predictor.scale = tuple(args.resize)
    predictor.max_input_pixels = args.max_input_pixels
    return predictor


def run(args) -> int:
    """Carry out `predict` for parsed `args`; returns the exit status (errors raise: `__main__`
    turns them into one line)."""
    from .api import to_json
    from .overlay import draw
    from .preprocess import InputNote, as_image_tensor, load_image
    check_args(args)                       # before the model runs: a typo fails at once
    images = [load_image(path) for path in args.images]              # reads and checks each file
    predictor = load_predictor(args)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", InputNote)
        results = predictor(images, task=args.task, score_threshold=args.score_threshold,
                            object_mask_threshold=args.object_mask_threshold,
                            overlap_threshold=args.overlap_threshold, min_probability=args.min_probability,
                            names=list(args.images), background=args.background)
    for note in caught:
        if issubclass(note.category, InputNote):
            print(f"note: {note.message}", file=sys.stderr)
        else:
            warnings.warn_explicit(note.message, note.category, note.filename, note.lineno)
    for r in results:
        listed = TASKS[r["task"]].listed
        described = ", ".join(f"{x['name']}" + (f" {x['score']:.2f}" if "score" in x else "") for x in r[listed])
        print(f"{r['name']}: {len(r[listed])} {listed}" + (f": {described}" if described else ""))
    if args.json:
        text = json.dumps(to_json(results), indent=1) + "\n"
        atomic_write(args.json, lambda tmp: tmp.write_text(text, encoding="utf-8"))
        print(f"wrote {args.json}")
    if args.overlay:
        from PIL import Image
        for image, result, path in zip(images, results, overlay_paths(args.overlay, args.images)):
            rgb = as_image_tensor(image, result["name"], args.background).round().byte().permute(1, 2, 0).numpy()
            picture = Image.fromarray(draw(rgb, result))
            atomic_write(path, lambda tmp: picture.save(tmp, format="PNG" if path.suffix.lower() == ".png"
                                                        else "JPEG"))
            print(f"wrote {path}")
    return 0
