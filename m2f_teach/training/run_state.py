"""A run's state and its resumption: `--save-every`, Ctrl-C and `--resume OUT.state.pt`.

Each save writes `OUT.state.pt` beside the checkpoint: weights, optimizer, schedule, step,
history and random-number states, tensors and plain values only, so `torch.load(weights_only=True)`
reads it back and nothing in it is executed. `load_state` checks it against this command's
flags (`RESUME_FLAGS` must repeat), `resume_from` puts it back: a resumed CPU run gives bitwise
the same weights as one that was never interrupted. `--init` (`load_init_weights`) is the
lighter form: the weights alone, with a fresh optimizer and schedule.
"""
from __future__ import annotations

from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..files import atomic_write
from .options import CONFIG_FLAGS, STUDY

# flags that decide the updates: a resumed run must repeat them
RESUME_FLAGS = ("steps", "batch_size", "lr", "weight_decay", "clip", "warmup", "seed", "schedule",
                "image_size", "num_queries", "point_loss") + CONFIG_FLAGS + tuple(STUDY)


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
