"""`python -m m2f_teach train` and `python -m m2f_teach ablate`.

    python -m m2f_teach train --out artifacts/shapes_small.safetensors
    python -m m2f_teach train --recipe lecture --out artifacts/lecture.safetensors   # 30 min, 2 CPU cores

Each step draws a fresh batch of synthetic shapes (sample index = step · B + i, data seed
`--seed`), runs the model, the criterion over all ten predictions, and AdamW (mmdet's
settings: weight decay 0.05, none on embeddings and norms; gradients clipped to norm 1.0 here,
0.01 in mmdet; the learning rate drops ×0.1 at 90 % and 95 % of the steps). Every `--val-every` steps the
held-out scores on validation images are computed. The end writes the safetensors checkpoint,
a json with the config, command, time, loss history and scores, and a loss plot.

`--recipe lecture` trains a model that learns the shapes in half an hour on 2 CPU cores: the
shipped checkpoint's with 3 encoder and 6 decoder layers and 10 queries, 2-6 objects per
training image and the class loss ×7/2 (`RECIPES`; given flags win). `--recipe shipped-30min`
is the shipped checkpoint's model for the 1150 steps that fit the same half hour. The model
flags (`--image-size`, `--num-queries`, `--num-points`, `--num-encoder-layers`,
`--num-decoder-layers`, the ablation switches `--masked-attention false`,
`--reset-all-blocked false`, `--deformable-encoder false`, and `--point-loss false` for the
loss) change `M2FConfig.shapes()`; the checkpoint stores the config, so
`load_checkpoint(OUT)` rebuilds the model in one line. `train(args, on_log=f)` calls `f(history)`
after each log and validation (the notebooks' live plot).

Longer training in pieces: `--init` starts from a checkpoint this command wrote (fresh optimizer
and schedule; give a new `--seed` for fresh data), `--max-seconds` stops on a time limit, and
`--stop-after N` stops after N steps while the schedule still follows `--steps`, which repeats a
time-limited run on any machine. `make weights` chains the four runs of the shipped checkpoint.

Never loses a run: `--out` is checked before the first step; `--save-every N` writes the
checkpoint, json and plot every N steps, and so does Ctrl-C or SIGTERM (after the step in
progress; a second Ctrl-C stops at once). Each save also writes `OUT.state.pt` (weights,
optimizer, schedule, step, history and random-number states; read back with
`torch.load(weights_only=True)`, so nothing in it is executed): `--resume OUT.state.pt` with
the same training flags continues where it stopped, and a resumed CPU run gives bitwise the
same weights as one that was never interrupted. Files are written to a temporary name and
renamed, so a checkpoint is never half-written.

Seeded: the same command on the same device and torch version gives the same weights on CPU.
"""
from __future__ import annotations

import argparse
import json
import signal
from pathlib import Path

from ..files import atomic_write
from . import ablate
from .options import add_arguments


def add_parser(subparsers):
    """Register the `train` and `ablate` subcommands on an argparse `subparsers`."""
    parser = subparsers.add_parser("train", help="train a small Mask2Former on synthetic shapes",
                                   description=__doc__.split("\n\n", 1)[1],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    parser.set_defaults(func=run_train)
    add_ablate_parser(subparsers)
    return parser


def run_train(args) -> int:
    """`train`: exit status 0, or 128 + the signal after Ctrl-C/SIGTERM (the files saved)."""
    from .train import train
    info = train(args)
    if "interrupted" in info:
        return 128 + signal.Signals[info["interrupted"]].value
    return 0


def add_ablate_parser(subparsers):
    """Register `ablate`: each ablation trained with the lecture recipe, gathered in one json."""
    parser = subparsers.add_parser("ablate", help="train every ablation with the lecture recipe and "
                                                  "gather the curves", description=ablate.__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", choices=list(ablate.VARIANTS), default=list(ablate.VARIANTS),
                        metavar="NAME", help=f"which to train (default all: {', '.join(ablate.VARIANTS)})")
    parser.add_argument("--seeds", nargs="+", type=int, default=list(ablate.SEEDS), metavar="S",
                        help="train each variant once per seed (other init, other data; default "
                             f"{' '.join(map(str, ablate.SEEDS))}): the scores' mean and standard deviation")
    parser.add_argument("--out-dir", default="artifacts/ablations",
                        help="each variant's checkpoint and train json (default artifacts/ablations)")
    parser.add_argument("--json", default=None, help="the gathered results (default OUT_DIR/ablations.json)")
    parser.add_argument("--collect", action="store_true", help="train nothing; gather what OUT_DIR holds")
    parser.add_argument("--no-collect", action="store_true", help="train only; gather later with --collect")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto")
    parser.add_argument("--workers", type=int, default=None, help="train's --workers")
    parser.add_argument("--steps", type=int, default=None,
                        help="override the recipe's steps (a quick look; the shipped results use the recipe)")
    parser.add_argument("--val-images", type=int, default=None, help="train's --val-images (default 32)")
    parser.add_argument("--test-images", type=int, default=None, help="train's --test-images (default 100)")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    parser.set_defaults(func=run_ablate)
    return parser


def run_ablate(args) -> int:
    """`ablate`: train the variants asked for, then gather every finished one into one json."""
    out_dir = Path(args.out_dir)
    if args.collect and args.no_collect:
        raise ValueError("--collect and --no-collect: give one")
    if any(seed < 0 for seed in args.seeds) or len(set(args.seeds)) < len(args.seeds):
        raise ValueError(f"--seeds {' '.join(map(str, args.seeds))}: expected different integers ≥ 0")
    if not args.collect:
        out_dir.mkdir(parents=True, exist_ok=True)
        for variant in args.variants:
            for seed in args.seeds:
                ablate.train_variant(variant, out_dir, args, seed)
    if args.no_collect:
        return 0
    results = ablate.collect(out_dir, args.seeds)
    path = Path(args.json) if args.json else out_dir / ablate.RESULTS_NAME
    text = json.dumps(results, indent=1) + "\n"
    atomic_write(path, lambda tmp: tmp.write_text(text))
    print(f"wrote {path}: {', '.join(results['runs'])}")
    for variant, r in results["runs"].items():
        scores = ("stopped: " + r["diverged"] if "class_acc_mean" not in r else
                  f"class acc {r['class_acc_mean']:.3f} ± {r['class_acc_std']:.3f}, "
                  f"mIoU {r['miou_mean']:.3f} ± {r['miou_std']:.3f} over {len(r['seeds'])} seed(s)")
        print(f"  {variant:20s} {scores}")
    return 0
