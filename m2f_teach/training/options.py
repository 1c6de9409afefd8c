"""The `train` command's flags: their defaults, the recipes that set them, and the checks a run
makes before its first step.

`add_arguments(parser)` defines every flag; a flag left unset (None) takes `--recipe`'s value,
else `BASE`'s (`resolve_recipe`). `with_defaults(args)` completes a namespace built by hand (the
notebooks'), `check_arguments(args)` names the first value the loop cannot use, and
`training_config(args)` is the model the flags describe: `M2FConfig.shapes()` with their changes.
"""
from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

import torch

from ..cli_args import check_output_path, parse_bool
from ..data.shapes import TRAIN_SEED
from ..model import M2FConfig

# the study's loss, data and learning-rate flags at Mask2Former's values (as the shipped checkpoint)
STUDY = dict(cls_weight=2.0, no_object_weight=0.1, train_objects=(1, 4), lr_mult=(), mask_points=None)
# the defaults of the flags a recipe sets; `--recipe NAME` replaces them with RECIPES[NAME]'s
# (a flag given on the command line still wins)
BASE = dict(steps=2376, batch_size=16, lr=1e-3, warmup=50, schedule="step", val_every=594,
            workers=min(4, os.cpu_count() or 1), image_size=None, num_queries=None,
            num_encoder_layers=None, num_decoder_layers=None, **STUDY)
RECIPES = {
    # a Mask2Former that learns within a lecture: ≥ 0.9 held-out class accuracy and mIoU in ≤ 30
    # minutes on 2 CPU cores (results/lecture.json: 0.972 and 0.904 in 29.0 minutes). Against the shipped checkpoint's recipe: 3
    # encoder and 6 decoder layers (a step costs about half), 10 queries and 2-6 objects per
    # training image (a third of the queries meet an object, not an eighth), the class loss ×7/2
    # and lr 1.5e-3, and the data drawn in the training process (on 2 cores a worker process
    # slows the step more than it saves). Notebook 09 and results/lecture_study.json: why.
    "lecture": dict(steps=3200, batch_size=16, lr=1.5e-3, warmup=50, schedule="step", val_every=640,
                    workers=0, image_size=(128, 128), num_queries=10, num_encoder_layers=3,
                    num_decoder_layers=6, train_objects=(2, 6), cls_weight=7.0),
    # the shipped checkpoint's model (6 + 9 layers, 20 queries) and Mask2Former's losses for the
    # 1150 steps that fit 30 CPU minutes: held-out class accuracy 0.60, mIoU 0.88. The earlier
    # lecture recipe: the study's rounds 1-3 and the shipped ablations ran it
    "shipped-30min": dict(steps=1150, batch_size=16, lr=1e-3, warmup=50, schedule="step", val_every=230,
                          workers=2, image_size=(128, 128), num_queries=20),
}
# the ablation switches: M2FConfig fields (None = the preset's value)
CONFIG_FLAGS = ("num_points", "num_encoder_layers", "num_decoder_layers", "reset_all_blocked",
                "masked_attention", "deformable_encoder")
# the learning-rate schedules after the warm-up (`train.lr_factor`) and the `--compile` modes
SCHEDULES = ("step", "cosine")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def add_arguments(parser):
    parser.add_argument("--recipe", choices=sorted(RECIPES), default=None,
                        help="a tested set of the flags below: 'lecture' learns the shapes (≥ 0.9 held-out class "
                             "accuracy and mIoU) in 30 minutes on 2 CPU cores; 'shipped-30min' is the shipped "
                             "checkpoint's model for the steps that fit 30 CPU minutes")
    parser.add_argument("--steps", type=int, default=None, help=f"optimizer steps (default {BASE['steps']})")
    parser.add_argument("--batch-size", type=int, default=None, help=f"images a step (default {BASE['batch_size']})")
    parser.add_argument("--lr", type=float, default=None, help=f"AdamW learning rate (default {BASE['lr']})")
    parser.add_argument("--weight-decay", type=float, default=0.05)
    parser.add_argument("--clip", type=float, default=1.0, help="max gradient norm (mmdet: 0.01; 0 = off)")
    parser.add_argument("--warmup", type=int, default=None, help=f"linear warm-up steps (default {BASE['warmup']})")
    parser.add_argument("--schedule", choices=SCHEDULES, default=None,
                        help="after the warm-up: 'step' (mmdet's, the default: ×0.1 at 90 %% and 95 %% of "
                             "--steps) or 'cosine' (down to 0 at --steps)")
    parser.add_argument("--seed", type=int, default=TRAIN_SEED, help="model init and training-data seed")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0 = torch's default)")
    parser.add_argument("--workers", type=int, default=None,
                        help=f"processes drawing the shapes (0 = in the main process; default "
                             f"{BASE['workers']}); the batches are the same for any number")
    parser.add_argument("--max-seconds", type=float, default=0,
                        help="stop early and save once training has taken this long (0 = never)")
    parser.add_argument("--stop-after", type=int, default=0,
                        help="stop and save after this many steps; the learning-rate schedule still "
                             "follows --steps (repeats a run that --max-seconds stopped; 0 = never)")
    parser.add_argument("--val-every", type=int, default=None, help=f"validate every this many steps "
                                                                    f"(default {BASE['val_every']})")
    parser.add_argument("--val-images", type=int, default=32)
    parser.add_argument("--test-images", type=int, default=100, help="held-out images scored at the end")
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("--init", default=None,
                        help="start from these weights (a .safetensors this command wrote) instead "
                             "of a random init: to train on where a run stopped")
    parser.add_argument("--out", default="artifacts/shapes_small.safetensors",
                        help="checkpoint path; the json and the loss plot go beside it")
    parser.add_argument("--allow-package-write", action="store_true",
                        help="let --out point inside the installed m2f_teach package (to ship a new "
                             "checkpoint over m2f_teach/weights/; refused otherwise)")
    parser.add_argument("--save-every", type=int, default=0,
                        help="also write the checkpoint, json, plot and OUT.state.pt every this many "
                             "steps (0 = only at the end, on an early stop and on Ctrl-C/SIGTERM)")
    parser.add_argument("--resume", default=None, metavar="STATE",
                        help="continue the run whose OUT.state.pt this is (same --steps, --batch-size, "
                             "--lr, --weight-decay, --clip, --warmup, --seed and model flags): optimizer, "
                             "schedule, step, data position and random states as they were")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    parser.add_argument("--compile", nargs="?", const="default", default=None, metavar="MODE",
                        choices=COMPILE_MODES,
                        help="run the training forward and backward through torch.compile; MODE "
                             "'reduce-overhead' also replays them as CUDA graphs (on a GPU the step "
                             "is bound by kernel launches). The first steps compile (a minute or more)")
    model = parser.add_argument_group("model (default: M2FConfig.shapes(); the ablation switches are "
                                      "on = faithful)")
    model.add_argument("--image-size", type=int, nargs=2, metavar=("H", "W"), default=None,
                       help="training and held-out image size, multiples of 32 (default 128 128)")
    model.add_argument("--num-queries", type=int, default=None, metavar="Q", help="queries (default 20)")
    model.add_argument("--num-points", type=int, default=None, metavar="P",
                       help="sampling points per head and level (default 4)")
    model.add_argument("--num-encoder-layers", type=int, default=None, metavar="N",
                       help="deformable-attention encoder layers (default 6)")
    model.add_argument("--num-decoder-layers", type=int, default=None, metavar="N",
                       help="masked-attention decoder layers, cycling over the levels (default 9)")
    for name, meaning in (("reset-all-blocked", "false: no all-blocked-row reset (NaN rows)"),
                          ("masked-attention", "false: plain cross-attention (no Eq. 2)"),
                          ("deformable-encoder", "false: FPN-only pixel decoder, no encoder layers")):
        model.add_argument(f"--{name}", type=parse_bool, default=None, metavar="BOOL", help=meaning)
    model.add_argument("--point-loss", type=parse_bool, default=True, metavar="BOOL",
                       help="false: mask losses on every pixel instead of the sampled points")
    add_study_arguments(parser)
    return parser


def add_study_arguments(parser):
    """The loss, data and learning-rate flags of the lecture study (defaults: the shipped recipe's)."""
    study = parser.add_argument_group("loss, training data and learning rate per module (default: Mask2Former's)")
    study.add_argument("--cls-weight", type=float, default=None, metavar="W",
                       help=f"class loss weight; the matching cost keeps 2 (default {STUDY['cls_weight']})")
    study.add_argument("--no-object-weight", type=float, default=None, metavar="W",
                       help=f"weight of the no-object class in the class loss (default {STUDY['no_object_weight']})")
    study.add_argument("--train-objects", type=int, nargs=2, default=None, metavar=("MIN", "MAX"),
                       help="objects tried per training image (default 1 4; the held-out images keep 1 4)")
    study.add_argument("--mask-points", type=int, default=None, metavar="P",
                       help="points sampled per mask for the matching and the mask losses (default: "
                            "mmdet's 12544 scaled by the image area, 196 at 128×128)")
    study.add_argument("--lr-mult", action="append", default=None, metavar="PREFIX=F",
                       help="learning rate × F for the parameters whose name starts with PREFIX, e.g. "
                            "panoptic_head.cls_embed=5 (repeatable; the first matching prefix wins)")


def parse_lr_mult(items) -> tuple[tuple[str, float], ...]:
    """`["PREFIX=F", ...]` → `((PREFIX, F), ...)`, each F a finite number > 0."""
    out = []
    for item in items or ():
        if isinstance(item, (tuple, list)):
            prefix, factor = item
        else:
            prefix, sep, text = str(item).partition("=")
            try:
                factor = float(text) if sep and prefix else float("nan")
            except ValueError:
                factor = float("nan")
        if not (math.isfinite(factor) and factor > 0):
            raise ValueError(f"--lr-mult {item}: expected PREFIX=F with a parameter-name prefix and a number F > 0")
        out.append((prefix, factor))
    return tuple(out)


def resolve_recipe(args):
    """Fill the flags left unset (None) from `--recipe`'s values, else from `BASE`."""
    if args.recipe is not None and args.recipe not in RECIPES:
        raise ValueError(f"--recipe {args.recipe}: expected one of {', '.join(sorted(RECIPES))}")
    values = RECIPES[args.recipe] if args.recipe else BASE
    for key, default in BASE.items():
        if getattr(args, key, None) is None:
            setattr(args, key, values.get(key, default))
    return args


def with_defaults(args):
    """`args` with every flag this command knows (a namespace built by hand may lack newer ones)."""
    for key, value in vars(add_arguments(argparse.ArgumentParser()).parse_args([])).items():
        if not hasattr(args, key):
            setattr(args, key, value)
    return args


def check_arguments(args):
    """Clear errors for values the loop cannot use, before anything is built."""
    for name in ("steps", "batch_size", "val_every", "val_images", "test_images", "log_every"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} {getattr(args, name)}: expected a positive integer")
    for name in ("warmup", "threads", "workers", "save_every"):
        if getattr(args, name) < 0:
            raise ValueError(f"--{name.replace('_', '-')} {getattr(args, name)}: expected an integer ≥ 0")
    for name, meaning in (("lr", "the learning rate"), ("weight_decay", "AdamW's weight decay"),
                          ("clip", "the largest gradient norm, 0 = off"),
                          ("max_seconds", "a time limit, 0 = none")):
        value = getattr(args, name)
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"--{name.replace('_', '-')} {value}: expected a finite number ≥ 0 ({meaning})")
    for name in ("cls_weight", "no_object_weight"):
        value = getattr(args, name)
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"--{name.replace('_', '-')} {value}: expected a finite number > 0")
    if args.mask_points is not None and args.mask_points < 1:
        raise ValueError(f"--mask-points {args.mask_points}: expected a positive integer")
    low, high = args.train_objects
    if not 1 <= low <= high:
        raise ValueError(f"--train-objects {low} {high}: expected 1 ≤ MIN ≤ MAX")
    if not 0 <= args.stop_after <= args.steps:
        raise ValueError(f"--stop-after {args.stop_after}: expected 0 (never) to --steps {args.steps}")
    if args.init and not Path(args.init).is_file():
        raise FileNotFoundError(f"--init {args.init}: no such file (a .safetensors written by train)")
    if args.resume and args.init:
        raise ValueError(f"--resume {args.resume} and --init {args.init}: give one (the state holds the weights)")
    if args.resume and not Path(args.resume).is_file():
        raise FileNotFoundError(f"--resume {args.resume}: no such file (the .state.pt that train writes "
                                f"beside its checkpoint)")
    check_output_path(args.out, "--out", suffixes=("safetensors",), make_folders=True)
    check_package_write(Path(args.out), args.allow_package_write)


def check_package_write(out: Path, allow_package_write: bool = False):
    """`--out` inside the installed package (its shipped checkpoint) needs `--allow-package-write`."""
    package = Path(__file__).resolve().parents[1]
    if not allow_package_write and out.resolve().is_relative_to(package):
        raise ValueError(f"--out {out}: inside the installed package {package}, whose shipped checkpoint "
                         f"every notebook loads; write elsewhere (e.g. artifacts/{out.name}), or pass "
                         f"--allow-package-write to replace what ships")


def training_config(args) -> M2FConfig:
    """`M2FConfig.shapes()` with this run's image size, queries and ablation switches."""
    changes = {key: getattr(args, key) for key in ("num_queries",) + CONFIG_FLAGS
               if getattr(args, key, None) is not None}
    if args.image_size is not None:
        changes["image_size"] = tuple(args.image_size)
    try:
        return M2FConfig.shapes(**changes)
    except (TypeError, ValueError) as err:
        raise ValueError(f"model flags {changes}: {err}") from None


def pick_device(name):
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"--device {name}: expected cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: this torch sees no CUDA device (use cpu or auto)")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"--device {name}: expected cpu, cuda, cuda:N or auto")
    return device
