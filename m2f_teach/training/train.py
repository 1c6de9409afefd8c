"""The training loop and `python -m m2f_teach train` (also `python -m m2f_teach.training.train`).

    python -m m2f_teach train --out artifacts/shapes_small.safetensors

Each step draws a fresh batch of synthetic shapes (sample index = step · B + i, data seed
`--seed`), runs the model, the criterion over all ten predictions, and AdamW (mmdet's
settings: weight decay 0.05, none on embeddings and norms; gradients clipped to norm 1.0 here,
0.01 in mmdet; the learning rate drops ×0.1 at 90 % and 95 % of the steps). Every `--val-every` steps the
held-out scores on validation images are computed. The end writes the safetensors checkpoint,
a json with the config, command, time, loss history and scores, and a loss plot.

Longer training in pieces: `--init` starts from a checkpoint this command wrote (fresh optimizer
and schedule; give a new `--seed` for fresh data), `--max-seconds` stops on a time limit, and
`--stop-after N` stops after N steps while the schedule still follows `--steps`, which repeats a
time-limited run on any machine. `make weights` chains the four runs of the shipped checkpoint.

Seeded: the same command on the same device and torch version gives the same weights on CPU.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from ..data.shapes import ShapesDataset, collate
from ..model import Mask2Former
from ..model import M2FConfig
from ..data.shapes import TEST_SEED, TRAIN_SEED, VAL_SEED


def add_parser(subparsers):
    """Register the `train` subcommand on an argparse `subparsers`."""
    parser = subparsers.add_parser("train", help="train a small Mask2Former on synthetic shapes",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def add_arguments(parser):
    parser.add_argument("--steps", type=int, default=2376, help="optimizer steps (default 2376)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=0.05)
    parser.add_argument("--clip", type=float, default=1.0, help="max gradient norm (mmdet: 0.01; 0 = off)")
    parser.add_argument("--warmup", type=int, default=50, help="linear warm-up steps")
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
    parser.add_argument("--val-every", type=int, default=594)
    parser.add_argument("--val-images", type=int, default=32)
    parser.add_argument("--test-images", type=int, default=100, help="held-out images scored at the end")
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("--init", default=None,
                        help="start from these weights (a .safetensors this command wrote) instead "
                             "of a random init: to train on where a run stopped")
    parser.add_argument("--out", default="artifacts/shapes_small.safetensors",
                        help="checkpoint path; the json and the loss plot go beside it")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    return parser


def param_groups(model, weight_decay):
    """AdamW groups: mmdet's decay_mult 0 for query_embed, query_feat, level_embed and norms."""
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


def lr_factor(step, steps, warmup):
    """Linear warm-up, then mmdet's MultiStepLR: ×0.1 at 90 % and ×0.01 at 95 % of the steps."""
    factor = min(1.0, (step + 1) / warmup) if warmup else 1.0
    return factor * (0.1 ** sum(step >= int(m * steps) for m in (0.9, 0.95)))


def pick_device(name):
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def check_arguments(args):
    """Clear errors for values the loop cannot use, before anything is built."""
    for name in ("steps", "batch_size", "val_every", "val_images", "test_images", "log_every"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} {getattr(args, name)}: expected a positive integer")
    if not 0 <= args.stop_after <= args.steps:
        raise ValueError(f"--stop-after {args.stop_after}: expected 0 (never) to --steps {args.steps}")
    if args.init and not Path(args.init).is_file():
        raise FileNotFoundError(f"--init {args.init}: no such file (a .safetensors written by train)")


def train(args) -> dict:
    """Train, write the checkpoint, json and plot; return the json's contents."""
    # the losses and the scores need scipy (Hungarian matching): imported when training starts,
    # so that `python -m m2f_teach table` does not wait for them
    from .criterion import Mask2FormerCriterion, num_points_for, total_loss
    from .evaluate import evaluate, format_metrics

    check_arguments(args)
    device = pick_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    config = M2FConfig.shapes()
    model = Mask2Former(config)
    if args.init:
        from safetensors.torch import load_file
        model.load_state_dict(load_file(args.init))       # every key must fit
    model = model.to(device).train()
    criterion = Mask2FormerCriterion(config.num_classes, num_points_for(config.image_size)).to(device)
    optimizer = torch.optim.AdamW(param_groups(model, args.weight_decay), lr=args.lr, eps=1e-8)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, args.steps, args.warmup))
    train_data = ShapesDataset(args.steps * args.batch_size, seed=args.seed, image_size=config.image_size)
    # batch `step` holds samples step·B .. step·B + B − 1, whichever process draws them; the
    # loader's own generator keeps it from drawing on the global seed the matcher uses
    batches = torch.utils.data.DataLoader(
        train_data, batch_size=args.batch_size, shuffle=False, num_workers=args.workers,
        collate_fn=collate, prefetch_factor=4 if args.workers else None,
        generator=torch.Generator().manual_seed(args.seed))
    val_data = ShapesDataset(args.val_images, seed=VAL_SEED, image_size=config.image_size)

    history = dict(step=[], seconds=[], loss=[], loss_cls=[], loss_mask=[], loss_dice=[], val=[])
    start = time.time()
    bar = tqdm(batches, desc="train", total=args.steps, disable=args.no_progress, dynamic_ncols=True)
    steps_done = 0
    for step, (images, targets) in enumerate(bar):
        images = images.to(device)                                                  # (B, 3, H, W)
        targets = [{k: v.to(device) for k, v in t.items()} for t in targets]
        cls_pred_list, mask_pred_list = model(images)                               # 10 × (B, Q, K), (B, Q, Hm, Wm)
        losses = criterion(cls_pred_list, mask_pred_list, targets)
        loss = total_loss(losses)
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"loss is {loss.item()} at step {step}")
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
        steps_done = step + 1
        if steps_done in (5, 25, 100):  # the step time, early, so a log shows it (first steps include warm-up)
            tqdm.write(f"step {steps_done}: {(time.time() - start) / steps_done:.3f} s/step so far")
        out_of_time = bool(args.max_seconds) and time.time() - start > args.max_seconds
        stop_early = out_of_time or steps_done == args.stop_after
        if steps_done % args.val_every == 0 or steps_done == args.steps or stop_early:
            metrics = evaluate(model, val_data, device=device)
            history["val"].append(dict(step=steps_done, **rounded(metrics)))
            tqdm.write(f"step {steps_done}: loss {loss.item():.2f}, val {format_metrics(metrics)}")
        if stop_early:
            reason = f"--max-seconds {args.max_seconds}" if out_of_time else f"--stop-after {args.stop_after}"
            tqdm.write(f"stopped after {steps_done} of {args.steps} steps: {reason}")
            break
    train_seconds = time.time() - start

    test_data = ShapesDataset(args.test_images, seed=TEST_SEED, image_size=config.image_size)
    test_metrics = evaluate(model, test_data, device=device)
    print(f"held-out test ({args.test_images} images, seed {TEST_SEED}): {format_metrics(test_metrics)}")
    info = dict(config={k: v for k, v in vars(config).items()},
                command="python -m m2f_teach train " + " ".join(sys.argv[2:] if sys.argv[1:2] == ["train"]
                                                                  else sys.argv[1:]),
                args=vars(args) | {"func": None},
                device=str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
                torch=torch.__version__, python=platform.python_version(),
                train_seconds=round(train_seconds, 1), steps_done=steps_done,
                test=dict(images=args.test_images, seed=TEST_SEED, **rounded(test_metrics)),
                history=history)
    save(model, info, Path(args.out))
    return info


def rounded(metrics: dict) -> dict:
    """Scores rounded to 4 places for the json (lists element by element)."""
    return {k: [round(x, 4) for x in v] if isinstance(v, list) else round(v, 4) for k, v in metrics.items()}


def save(model, info, out: Path):
    """`out` (.safetensors), `out` with .json and with .png (the loss plot)."""
    from safetensors.torch import save_file

    out.parent.mkdir(parents=True, exist_ok=True)
    state_dict = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state_dict, str(out), metadata={"config": json.dumps(info["config"]),
                                              "command": info["command"]})
    out.with_suffix(".json").write_text(json.dumps(info, indent=1, default=str) + "\n")
    from ..viz.training import plot_history
    figure = plot_history(info["history"])
    figure.savefig(out.with_suffix(".png"), dpi=100)
    print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB), {out.with_suffix('.json')}, {out.with_suffix('.png')}")


def run(args):
    """Entry point of the `train` subcommand."""
    train(args)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m m2f_teach.training.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
