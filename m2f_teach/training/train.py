"""The training loop: `train(args)`, what `python -m m2f_teach train` runs (flags: `options.py`,
the subcommand: `cli.py`, saved state and `--resume`: `run_state.py`).

    from m2f_teach.training.options import add_arguments
    from m2f_teach.training.train import train
    info = train(add_arguments(argparse.ArgumentParser()).parse_args(["--steps", "100"]))

Each step draws a fresh batch of synthetic shapes (sample index = step · B + i, data seed
`--seed`), runs the model, the criterion over all ten predictions, and AdamW (mmdet's
settings: weight decay 0.05, none on embeddings and norms; gradients clipped to norm 1.0 here,
0.01 in mmdet; the learning rate drops ×0.1 at 90 % and 95 % of the steps). Every `--val-every`
steps the held-out scores on validation images are computed. The end writes the safetensors
checkpoint, a json with the config, command, time, loss history and scores, and a loss plot,
each whole (`files.atomic_write`). `train(args, on_log=f)` calls `f(history)` after each log and
validation (the notebooks' live plot). Ctrl-C or SIGTERM saves after the step in progress. A run
whose predictions turn NaN stops before the matching, naming the step, with its history in
OUT.json (`diverged`) and OUT.png (`save_diverged`).

Seeded: the same command on the same device and torch version gives the same weights on CPU.
"""
from __future__ import annotations

import json
import math
import platform
import signal
import sys
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..data.shapes import CLASS_NAMES, TEST_SEED, VAL_SEED, ShapesDataset, collate
from ..files import atomic_write
from ..model import Mask2Former
from .options import add_arguments  # noqa: F401 - notebooks and tests build their flags with it
from .options import (STUDY, check_arguments, parse_lr_mult, pick_device, resolve_recipe, training_config,
                      with_defaults)
from .run_state import load_init_weights, load_state, resume_from, rng_states, save_state, state_path


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


def lr_factor(step, steps, warmup, schedule="step"):
    """Linear warm-up, then mmdet's MultiStepLR (×0.1 at 90 % and ×0.01 at 95 % of the steps) or,
    with `schedule="cosine"`, a half cosine from 1 down to 0 at `steps`."""
    factor = min(1.0, (step + 1) / warmup) if warmup else 1.0
    if schedule == "cosine":
        done = max(0, step - warmup) / max(1, steps - warmup)
        return factor * 0.5 * (1 + math.cos(math.pi * min(1.0, done)))
    return factor * (0.1 ** sum(step >= int(m * steps) for m in (0.9, 0.95)))


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
    atomic_write(out, lambda tmp: save_file(state_dict, str(tmp), metadata=metadata))
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
