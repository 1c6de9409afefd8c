"""`python -m m2f_teach predict IMAGE... [--weights FILE] [--task instance|semantic|panoptic]
[--score-threshold X] [-o overlay.png] [--json results.json]`.

With no `--weights`, the shipped checkpoint and the shapes' class names (all five are things);
with a file written by `python -m m2f_teach convert`, the class names and thing/stuff split
stored at conversion (give `--num-things N` when it stored none and you want panoptic).
Masks in the json are COCO RLE: `pycocotools.mask.decode(mask)` or
`m2f_teach.predict.rle.decode(mask)` gives the `(h, w)` array.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..cli_args import check_output_path
from ..files import atomic_write
from .tasks import TASKS, get_task


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the `predict` subcommand to an `argparse` subparsers object."""
    parser = subparsers.add_parser(
        "predict", help="instance, semantic or panoptic results for image files",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files (RGB; any size ≥ 32 pixels)")
    parser.add_argument("--weights", help="a .safetensors file from `convert` (default: the shipped checkpoint)")
    parser.add_argument("--task", default="instance", metavar="TASK",
                        help=f"{', '.join(TASKS)} (default instance; the tasks: predict/tasks.py)")
    parser.add_argument("--score-threshold", type=float, default=0.5,
                        help="instance: keep results scoring at least this (default 0.5)")
    parser.add_argument("--object-mask-threshold", type=float, default=0.8,
                        help="panoptic: keep queries whose class probability exceeds this (default 0.8, mmdet's)")
    parser.add_argument("--num-things", type=int, help="classes 0..N-1 are things, the rest stuff "
                        "(default: what the weights store)")
    parser.add_argument("--resize", nargs=2, type=int, metavar=("LONG", "SHORT"),
                        help="fit images in LONG×SHORT keeping the ratio (default: 128 128 for the "
                             "shipped checkpoint, 1333 800 for converted weights)")
    parser.add_argument("--no-resize", action="store_true", help="run each image at its own size")
    parser.add_argument("--to-rgb", action="store_true", help="convert grayscale/RGBA files to RGB "
                        "instead of refusing them")
    parser.add_argument("-o", "--overlay", help="write an overlay picture (.png; with several images, "
                        "one file each: NAME_0.png, NAME_1.png, ...)")
    parser.add_argument("--json", help="write the results as json (masks as COCO RLE)")
    parser.set_defaults(func=run)
    return parser


def overlay_paths(path: str, n: int) -> list[Path]:
    path = Path(path)
    if n == 1:
        return [path]
    return [path.with_name(f"{path.stem}_{i}{path.suffix}") for i in range(n)]


def run(args) -> int:
    """Carry out `predict` for parsed `args`; returns the exit status (errors raise: `__main__`
    turns them into one line)."""
    from .api import Predictor, to_json
    from .overlay import draw
    from .preprocess import load_image
    get_task(args.task)                    # before the model runs: a typo fails at once
    if args.overlay:
        check_output_path(args.overlay, "--overlay", suffixes=("png", "jpg", "jpeg"))
    if args.json:
        check_output_path(args.json, "--json")
    predictor = Predictor.from_weights(args.weights)
    if args.num_things is not None:
        if not 0 <= args.num_things <= len(predictor.class_names):
            raise ValueError(f"--num-things {args.num_things}: expected 0..{len(predictor.class_names)}")
        predictor.num_things = args.num_things
    if args.no_resize:
        predictor.scale = None
    elif args.resize:
        predictor.scale = tuple(args.resize)
    images = [load_image(path, args.to_rgb) for path in args.images]   # reads and checks each file
    results = predictor(images, task=args.task, score_threshold=args.score_threshold,
                        object_mask_threshold=args.object_mask_threshold, names=list(args.images))
    for r in results:
        listed = TASKS[r["task"]].listed
        described = ", ".join(f"{x['name']}" + (f" {x['score']:.2f}" if "score" in x else "") for x in r[listed])
        print(f"{r['name']}: {len(r[listed])} {listed}" + (f": {described}" if described else ""))
    if args.json:
        text = json.dumps(to_json(results), indent=1) + "\n"
        atomic_write(args.json, lambda tmp: tmp.write_text(text))
        print(f"wrote {args.json}")
    if args.overlay:
        from PIL import Image
        for image, result, path in zip(images, results, overlay_paths(args.overlay, len(images))):
            picture = Image.fromarray(draw(image, result))
            atomic_write(path, lambda tmp: picture.save(tmp))
            print(f"wrote {path}")
    return 0
