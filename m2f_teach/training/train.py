"""The training loop and `python -m m2f_teach train` (also `python -m m2f_teach.training.train`).

    python -m m2f_teach train --out artifacts/shapes_small.safetensors
    python -m m2f_teach train --recipe lecture --out artifacts/lecture.safetensors   # 30 min, 2 CPU cores

Each step draws a fresh batch of synthetic shapes (sample index = step · B + i, data seed
`--seed`), runs the model, the criterion over all ten predictions, and AdamW (mmdet's
settings: weight decay 0.05, none on embeddings and norms; gradients clipped to norm 1.0 here,
0.01 in mmdet; the learning rate drops ×0.1 at 90 % and 95 % of the steps). Every `--val-every` steps the
held-out scores on validation images are computed. The end writes the safetensors checkpoint,
a json with the config, command, time, loss history and scores, and a loss plot.

`--recipe lecture` is the shipped checkpoint's model trained for as long as fits in half an hour
on 2 CPU cores (`RECIPES`; given flags win). The model flags (`--image-size`, `--num-queries`,
`--num-points`, `--num-encoder-layers`, the ablation switches `--masked-attention false`,
`--reset-all-blocked false`, `--deformable-encoder false`, and `--point-loss false` for the
loss) change `M2FConfig.shapes()` (the study's `--cls-weight`, `--no-object-weight`,
`--train-objects`, `--mask-points` and `--lr-mult` change the losses, the training images and the
learning rate per module; README, Training); the checkpoint stores the config, so
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
renamed, so a checkpoint is never half-written. A run whose predictions turn NaN stops before the
matching, naming the step, with its history in OUT.json (`diverged`) and OUT.png. `--out` inside
the installed package (its shipped checkpoint) needs `--allow-package-write`.

Seeded: the same command on the same device and torch version gives the same weights on CPU.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import signal
import sys
import tempfile
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..data.shapes import CLASS_NAMES, TEST_SEED, TRAIN_SEED, VAL_SEED, ShapesDataset, collate
from ..model import M2FConfig, Mask2Former


def add_parser(subparsers):
    """Register the `train` subcommand on an argparse `subparsers`."""
    parser = subparsers.add_parser("train", help="train a small Mask2Former on synthetic shapes",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    parser.set_defaults(func=run)
    return parser


# the study's loss, data and learning-rate flags at Mask2Former's values (as the shipped checkpoint)
STUDY = dict(cls_weight=2.0, no_object_weight=0.1, train_objects=(1, 4), lr_mult=(), mask_points=None)
# the defaults of the flags a recipe sets; `--recipe NAME` replaces them with RECIPES[NAME]'s
# (a flag given on the command line still wins)
BASE = dict(steps=2376, batch_size=16, lr=1e-3, warmup=50, schedule="step", val_every=594,
            image_size=None, num_queries=None, **STUDY)
RECIPES = {
    # the most that fits in ≤ 30 minutes on 2 CPU cores at the shipped checkpoint's size (128×128,
    # 20 queries): README, notebook 09 and results/lecture.json hold its measured scores
    "lecture": dict(steps=1150, batch_size=16, lr=1e-3, warmup=50, schedule="step", val_every=230,
                    image_size=(128, 128), num_queries=20),
}
# the ablation switches: M2FConfig fields (None = the preset's value)
CONFIG_FLAGS = ("num_points", "num_encoder_layers", "reset_all_blocked", "masked_attention",
                "deformable_encoder")


def add_arguments(parser):
    from ..__main__ import parse_bool
    parser.add_argument("--recipe", choices=sorted(RECIPES), default=None,
                        help="a tested set of the flags below: 'lecture' is the shipped checkpoint's model trained "
                             f"for as long as fits in 30 minutes on 2 CPU cores ({RECIPES['lecture']})")
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
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                        help="processes drawing the shapes (0 = in the main process); the batches "
                             "are the same for any number")
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


def param_groups(model, weight_decay, lr=None, lr_mult=()):
    """AdamW groups: mmdet's decay_mult 0 for query_embed, query_feat, level_embed and norms;
    with `lr_mult` ((prefix, factor), ...) the parameters under a prefix get their own groups
    with learning rate `lr` × factor."""
    if lr_mult:
        return multiplied_groups(model, weight_decay, lr, lr_mult)
    no_decay_names = ("query_embed", "query_feat", "level_embed", "level_encoding")
    decay, no_decay = [], []
    norm_params = {id(p) for m in model.modules()
                   if isinstance(m, (torch.nn.LayerNorm, torch.nn.GroupNorm, torch.nn.BatchNorm2d))
                   for p in m.parameters()}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if id(p) in norm_params or any(n in name for n in no_decay_names):
            no_decay.append(p)
        else:
            decay.append(p)
    return [dict(params=decay, weight_decay=weight_decay), dict(params=no_decay, weight_decay=0.0)]


def multiplied_groups(model, weight_decay, lr, lr_mult):
    """`param_groups` split further by the first prefix of `lr_mult` each parameter's name starts with."""
    names = {id(p): n for n, p in model.named_parameters()}
    for prefix, _ in lr_mult:
        if not any(n.startswith(prefix) for n in names.values()):
            raise ValueError(f"--lr-mult {prefix}: no parameter name starts with it (e.g. "
                             f"panoptic_head.cls_embed, panoptic_head.transformer_decoder, backbone)")
    groups = []
    for group in param_groups(model, weight_decay):
        split = {}
        for p in group["params"]:
            factor = next((f for prefix, f in lr_mult if names[id(p)].startswith(prefix)), 1.0)
            split.setdefault(factor, []).append(p)
        groups += [dict(params=ps, weight_decay=group["weight_decay"], lr=lr * f) for f, ps in split.items()]
    return groups


COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def training_forward(model, mode=None):
    """The callable each step runs on the images: the model itself, or with `mode` (one of
    `COMPILE_MODES`) the model through `torch.compile`, which computes the same function with
    fused kernels. Validation and the checkpoint use `model` itself."""
    return torch.compile(model, mode=mode) if mode else model


def make_optimizer(model, lr, weight_decay, device, lr_mult=()) -> torch.optim.AdamW:
    """AdamW over `param_groups`, as one fused kernel per step where torch has one for `device`.

    The fused form computes AdamW's update for all parameters at once instead of a handful of
    operations per parameter (on a GPU, a few launches instead of ~1,000); same formula.
    """
    device = torch.device(device)
    fused = device.type in ("cuda", "cpu")
    return torch.optim.AdamW(param_groups(model, weight_decay, lr, lr_mult), lr=lr, eps=1e-8, fused=fused)


SCHEDULES = ("step", "cosine")


def lr_factor(step, steps, warmup, schedule="step"):
    """Linear warm-up, then mmdet's MultiStepLR (×0.1 at 90 % and ×0.01 at 95 % of the steps) or,
    with `schedule="cosine"`, a half cosine from 1 down to 0 at `steps`."""
    factor = min(1.0, (step + 1) / warmup) if warmup else 1.0
    if schedule == "cosine":
        done = max(0, step - warmup) / max(1, steps - warmup)
        return factor * 0.5 * (1 + math.cos(math.pi * min(1.0, done)))
    return factor * (0.1 ** sum(step >= int(m * steps) for m in (0.9, 0.95)))


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


# flags that decide the updates: a resumed run must repeat them
RESUME_FLAGS = ("steps", "batch_size", "lr", "weight_decay", "clip", "warmup", "seed", "schedule",
                "image_size", "num_queries", "point_loss") + CONFIG_FLAGS + tuple(STUDY)


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
    check_output(Path(args.out), allow_package_write=args.allow_package_write)


def check_output(out: Path, allow_package_write: bool = False):
    """Fail now, not after the run, if `out` (and the json, plot and state beside it) cannot be
    written, or lies inside the installed package (its shipped checkpoint) without the flag."""
    package = Path(__file__).resolve().parents[1]
    if not allow_package_write and out.resolve().is_relative_to(package):
        raise ValueError(f"--out {out}: inside the installed package {package}, whose shipped checkpoint "
                         f"every notebook loads; write elsewhere (e.g. artifacts/{out.name}), or pass "
                         f"--allow-package-write to replace what ships")
    if out.is_dir():
        raise ValueError(f"--out {out}: is a directory; expected a .safetensors file name")
    if out.suffix != ".safetensors":
        raise ValueError(f"--out {out}: expected a file name ending in .safetensors")
    existing = out.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent                   # the folders in between are made at the first save
    if not existing.is_dir():
        raise ValueError(f"--out {out}: cannot write there: {existing} is a file, not a folder")
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=f".{out.stem}.", suffix=".check"):
            pass
    except OSError as err:
        raise ValueError(f"--out {out}: cannot write in {existing} ({err.strerror or err})") from None


def load_init_weights(model, path):
    """`--init`: weights a previous run wrote, every key checked; the file is named on any error."""
    from ..convert.checkpoint import read_safetensors
    from ..convert.strict import load_strict
    load_strict(model, read_safetensors(path, what="--init"), f"--init {path}")


def state_path(out: Path) -> Path:
    return out.with_suffix(".state.pt")


def save_state(path: Path, model, optimizer, scheduler, steps_done, history, args, rng_state):
    """The whole training state after `steps_done` steps, written atomically (tensors and plain
    values only, so `torch.load(weights_only=True)` reads it back)."""
    state = dict(format="m2f-teach-train-state/1", steps_done=steps_done,
                 model={k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
                 optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                 history=history, flags={k: getattr(args, k) for k in RESUME_FLAGS}, rng=rng_state)
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def rng_states(device) -> dict:
    states = dict(cpu=torch.get_rng_state())
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    return states


def load_state(path, args) -> dict:
    """A state `save_state` wrote, checked against this command's flags."""
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file gets the same clear line
        raise ValueError(f"--resume {path}: not a training state train wrote ({type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else 'unreadable'})") from None
    if not isinstance(state, dict) or state.get("format") != "m2f-teach-train-state/1":
        raise ValueError(f"--resume {path}: not a training state train wrote (no 'm2f-teach-train-state/1' format)")
    flags = STUDY | state["flags"]               # a state from before the study flags used their defaults
    differ = [f"--{k.replace('_', '-')} {flags.get(k)} (this command: {getattr(args, k)})"
              for k in RESUME_FLAGS if flags.get(k) != getattr(args, k)]
    if differ:
        raise ValueError(f"--resume {path}: the run used " + ", ".join(differ) + "; repeat its flags")
    if args.stop_after and args.stop_after <= state["steps_done"]:
        raise ValueError(f"--stop-after {args.stop_after}: the state is already at step {state['steps_done']}")
    if state["steps_done"] >= args.steps:
        raise ValueError(f"--resume {path}: the run already did all {args.steps} steps")
    return state


def atomic_write(path: Path, write):
    """`write(tmp)` to a temporary file beside `path`, then rename it onto `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~umask)       # as a plain open() would make it (mkstemp makes it 0600)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


class StopSignals:
    """While active, SIGINT and SIGTERM set `.received` (the loop saves and stops after the step
    in progress); a second one stops at once."""

    def __init__(self):
        self.received, self.previous = None, {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self.previous[sig] = signal.signal(sig, self.handle)
            except ValueError:          # not the main thread: signals cannot be caught here
                pass
        return self

    def handle(self, signum, frame):
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signum
        tqdm.write(f"{signal.Signals(signum).name}: saving after this step (again to stop at once)")

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        return False


def worker_init(worker_id):
    """Data workers leave Ctrl-C to the main process and die with it (Linux: PR_SET_PDEATHSIG)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)   # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


def with_defaults(args):
    """`args` with every flag this command knows (a namespace built by hand may lack newer ones)."""
    for key, value in vars(add_arguments(argparse.ArgumentParser()).parse_args([])).items():
        if not hasattr(args, key):
            setattr(args, key, value)
    return args


def train(args, on_log=None) -> dict:
    """Train, write the checkpoint, json and plot; return the json's contents (after Ctrl-C or
    SIGTERM: `{"interrupted": signal name, "steps_done": n}`, the files saved).

    `on_log(history)`, if given, is called after every logged step and every validation with
    the history so far (the notebooks' live plot, `m2f_teach.viz.training.LivePlot`).
    """
    args = resolve_recipe(with_defaults(args))
    if args.image_size is not None:
        args.image_size = tuple(args.image_size)
    args.train_objects, args.lr_mult = tuple(args.train_objects), parse_lr_mult(args.lr_mult)
    # the losses and the scores need scipy (Hungarian matching): imported when training starts,
    # so that `python -m m2f_teach table` does not wait for them
    from .criterion import Mask2FormerCriterion, num_points_for, total_loss
    from .evaluate import evaluate, format_metrics
    device = pick_device(args.device)
    check_arguments(args)
    state = load_state(args.resume, args) if args.resume else None
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    config = training_config(args)
    model = Mask2Former(config)
    if args.init:
        load_init_weights(model, args.init)
    model = model.to(device).train()
    criterion = Mask2FormerCriterion(config.num_classes, args.mask_points or num_points_for(config.image_size),
                                     point_loss=args.point_loss, cls_weight=args.cls_weight,
                                     no_object_weight=args.no_object_weight,
                                     cost_cls_weight=STUDY["cls_weight"]).to(device)
    optimizer = make_optimizer(model, args.lr, args.weight_decay, device, args.lr_mult)
    forward = training_forward(model, getattr(args, "compile", None))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, args.steps, args.warmup, args.schedule))
    history = dict(step=[], seconds=[], loss=[], loss_cls=[], loss_mask=[], loss_dice=[], val=[])
    first_step, seconds_before = 0, 0.0
    if state is not None:
        first_step, seconds_before = resume_from(state, model, optimizer, scheduler, history, device)
    train_data = ShapesDataset(args.steps * args.batch_size, seed=args.seed, image_size=config.image_size,
                               min_objects=args.train_objects[0], max_objects=args.train_objects[1])
    if first_step:  # the data position: batch `step` is still samples step·B .. step·B + B − 1
        train_data = torch.utils.data.Subset(train_data, range(first_step * args.batch_size, len(train_data)))
    # batch `step` holds samples step·B .. step·B + B − 1, whichever process draws them; the
    # loader's own generator keeps it from drawing on the global seed the matcher uses
    batches = torch.utils.data.DataLoader(
        train_data, batch_size=args.batch_size, shuffle=False, num_workers=args.workers,
        collate_fn=collate, prefetch_factor=4 if args.workers else None,
        worker_init_fn=worker_init if args.workers else None,
        generator=torch.Generator().manual_seed(args.seed))
    val_data = ShapesDataset(args.val_images, seed=VAL_SEED, image_size=config.image_size)

    out = Path(args.out)
    start = time.time() - seconds_before
    bar = tqdm(batches, desc="train", total=args.steps, initial=first_step, disable=args.no_progress,
               dynamic_ncols=True)
    steps_done = first_step
    stop_reason = None
    with StopSignals() as signals:
        for step, (images, targets) in enumerate(bar, start=first_step):
            images = images.to(device)                                                  # (B, 3, H, W)
            targets = [{k: v.to(device) for k, v in t.items()} for t in targets]
            cls_pred_list, mask_pred_list = forward(images)                             # 10 × (B, Q, K), (B, Q, Hm, Wm)
            try:             # a diverged model: stop before matching, keep the history
                losses = criterion(cls_pred_list, mask_pred_list, targets)
                loss = total_loss(losses)
                if not math.isfinite(loss.item()):
                    raise FloatingPointError(f"the loss is {loss.item()}")
            except FloatingPointError as err:
                info = run_info(args, config, device, time.time() - start, steps_done, None, history)
                raise FloatingPointError(f"training diverged at step {step}: {err}; "
                                         f"{save_diverged(info | {'diverged': f'step {step}: {err}'}, out)}") from None
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if args.clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
            optimizer.step()
            scheduler.step()
            if step % args.log_every == 0 or step == args.steps - 1:
                history["step"].append(step)
                history["seconds"].append(round(time.time() - start, 2))
                history["loss"].append(round(loss.item(), 4))
                for key in ("loss_cls", "loss_mask", "loss_dice"):
                    history[key].append(round(losses[key].item(), 4))
                bar.set_postfix(loss=f"{loss.item():.2f}")
                if on_log is not None:
                    on_log(history)
            steps_done = step + 1
            rng_state = rng_states(device)   # before any evaluation, as the next step will find it
            if steps_done - first_step in (5, 25, 100):  # the step time, early, so a log shows it
                tqdm.write(f"step {steps_done}: {(time.time() - start - seconds_before) / (steps_done - first_step):.3f} "
                           f"s/step so far")
            out_of_time = bool(args.max_seconds) and time.time() - start - seconds_before > args.max_seconds
            stop_reason = (f"--max-seconds {args.max_seconds}" if out_of_time
                           else f"--stop-after {args.stop_after}" if steps_done == args.stop_after
                           else signal.Signals(signals.received).name if signals.received else None)
            if steps_done % args.val_every == 0 or steps_done == args.steps or (stop_reason and not signals.received):
                metrics = evaluate(model, val_data, device=device)
                history["val"].append(dict(step=steps_done, **rounded(metrics)))
                tqdm.write(f"step {steps_done}: loss {loss.item():.2f}, val {format_metrics(metrics)}")
                if on_log is not None:
                    on_log(history)
            periodic = args.save_every and steps_done % args.save_every == 0 and steps_done < args.steps
            if stop_reason or periodic:
                save_state(state_path(out), model, optimizer, scheduler, steps_done, history, args, rng_state)
            if periodic or signals.received:
                save(model, run_info(args, config, device, time.time() - start, steps_done, None, history), out)
            if stop_reason:
                tqdm.write(f"stopped after {steps_done} of {args.steps} steps: {stop_reason}; continue with "
                           f"--resume {state_path(out)}")
                break
        train_seconds = time.time() - start
        if signals.received:
            return dict(interrupted=signal.Signals(signals.received).name, steps_done=steps_done)

        test_data = ShapesDataset(args.test_images, seed=TEST_SEED, image_size=config.image_size)
        test_metrics = evaluate(model, test_data, device=device)
        print(f"held-out test ({args.test_images} images, seed {TEST_SEED}): {format_metrics(test_metrics)}")
        info = run_info(args, config, device, train_seconds, steps_done,
                        dict(images=args.test_images, seed=TEST_SEED, **rounded(test_metrics)), history)
        save(model, info, out)
    return info


def resume_from(state, model, optimizer, scheduler, history, device) -> tuple[int, float]:
    """Put a `load_state` state back: weights, optimizer, schedule, history, random states."""
    from ..convert.strict import load_strict
    load_strict(model, state["model"], "--resume state")
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    history.update(state["history"])
    torch.set_rng_state(state["rng"]["cpu"])
    if device.type == "cuda" and "cuda" in state["rng"]:
        torch.cuda.set_rng_state(state["rng"]["cuda"], device)
    seconds = history["seconds"][-1] if history["seconds"] else 0.0
    tqdm.write(f"resuming at step {state['steps_done']} of {state['flags']['steps']}")
    return state["steps_done"], seconds


def run_info(args, config, device, train_seconds, steps_done, test, history) -> dict:
    """The json's contents: config, command, machine, time, held-out scores, history."""
    return dict(config={k: v for k, v in vars(config).items()},
                command="python -m m2f_teach train " + " ".join(getattr(args, "command_line", None) or (
                    sys.argv[2:] if sys.argv[1:2] == ["train"] else sys.argv[1:])),
                args=vars(args) | {"func": None},
                device=str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
                torch=torch.__version__, python=platform.python_version(),
                train_seconds=round(train_seconds, 1), steps_done=steps_done, test=test,
                history=history)


def rounded(metrics: dict) -> dict:
    """Scores rounded to 4 places for the json (lists element by element)."""
    return {k: [round(x, 4) for x in v] if isinstance(v, list) else round(v, 4) for k, v in metrics.items()}


def save(model, info, out: Path):
    """`out` (.safetensors), `out` with .json and with .png (the loss plot), each written to a
    temporary file first and renamed, so an interrupted save leaves the previous files whole."""
    from safetensors.torch import save_file

    from ..convert.checkpoint import checkpoint_metadata
    state_dict = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    # load_checkpoint(out) reads it back in one line (also predict and export --weights)
    metadata = checkpoint_metadata(model.config, CLASS_NAMES) | {"config": json.dumps(info["config"]),
                                                                 "command": info["command"]}
    atomic_write(out, lambda tmp: save_file(state_dict, tmp, metadata=metadata))
    from ..pretrained import sha256_of
    save_json_and_plot(info | {"sha256": sha256_of(out)}, out)  # the sha256 is checked at load
    print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB), {out.with_suffix('.json')}, {out.with_suffix('.png')}")


def save_json_and_plot(info, out: Path):
    """`out` with .json (`info`) and with .png (the loss plot), each written atomically."""
    text = json.dumps(info, indent=1, default=str) + "\n"
    atomic_write(out.with_suffix(".json"), lambda tmp: Path(tmp).write_text(text))
    from ..viz.training import plot_history
    figure = plot_history(info["history"])
    atomic_write(out.with_suffix(".png"), lambda tmp: figure.savefig(tmp, dpi=100, format="png"))
    import matplotlib.pyplot as plt
    plt.close(figure)


def save_diverged(info, out: Path) -> str:
    """After a NaN: the json (history, `diverged`, no test scores) and the loss plot, not the
    weights that gave the NaN; says what was written (a `--save-every` checkpoint stays as it was)."""
    save_json_and_plot(info, out)
    return (f"wrote the history to {out.with_suffix('.json')} and {out.with_suffix('.png')}, no weights; "
            f"a lower --lr or a --clip may help")


def run(args):
    """Entry point of the `train` subcommand: exit status 128 + the signal after Ctrl-C/SIGTERM."""
    info = train(args)
    if "interrupted" in info:
        return 128 + signal.Signals[info["interrupted"]].value
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m m2f_teach.training.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    sys.exit(run(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
