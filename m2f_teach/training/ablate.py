"""The ablations of `python -m m2f_teach ablate` (`training/cli.py`): train each ablation with the lecture recipe, side by side.

    python -m m2f_teach ablate                                  # all variants, one after another
    python -m m2f_teach ablate --variants faithful fpn_only     # some of them
    python -m m2f_teach ablate --collect                        # only gather finished runs

Each variant is `python -m m2f_teach train --recipe lecture` plus one switch (off = the
experiment; the faithful model has every switch on). Its checkpoint and train json go to
`--out-dir`; then the curves, held-out scores and times of every finished variant are gathered
into one small json (`--json`). A variant whose loss turns NaN (the all-blocked reset switched
off) is recorded with the step it stopped at instead of failing the whole command.

On 2 CPU cores a variant takes as long as the lecture recipe (about half an hour); on a GPU a
few minutes, and separate processes can each run one variant (`--variants NAME --no-collect`)
before one `--collect`. The measured results ship in the package (`shipped_results()`), so
notebook 11 plots them in seconds.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..files import atomic_write

# variant → the train flags it adds to `--recipe lecture`
VARIANTS = {
    "faithful": [],
    "faithful_seed1": ["--seed", "1"],                  # the same model, other init and data: the noise
    "no_reset": ["--reset-all-blocked", "false"],
    "no_masked_attention": ["--masked-attention", "false"],
    "points_1": ["--num-points", "1"],
    "encoder_3": ["--num-encoder-layers", "3"],
    "fpn_only": ["--deformable-encoder", "false"],
    "full_mask_loss": ["--point-loss", "false"],
}
FORMAT = "m2f-teach-ablations/1"
RESULTS_NAME = "ablations.json"


def train_flags(variant: str, out_dir: Path, args) -> list[str]:
    """The `train` command line of one variant."""
    flags = ["--recipe", "lecture", *VARIANTS[variant], "--device", args.device,
             "--out", str(out_dir / f"{variant}.safetensors")]
    for name in ("workers", "steps", "val_images", "test_images"):
        if getattr(args, name, None) is not None:
            flags += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    if args.no_progress:
        flags.append("--no-progress")
    return flags


def train_variant(variant: str, out_dir: Path, args) -> dict:
    """Train one variant in this process; a NaN loss is written down as where it stopped."""
    from .options import add_arguments
    from .train import train
    flags = train_flags(variant, out_dir, args)
    train_args = add_arguments(argparse.ArgumentParser()).parse_args(flags)
    train_args.command_line = flags                     # what the train json records as its command
    seen = {}
    print(f"== {variant}: python -m m2f_teach train {' '.join(flags)}", flush=True)
    try:
        return train(train_args, on_log=lambda history: seen.update(history=history))
    except FloatingPointError as err:            # the loss turned NaN or infinite
        stopped = dict(variant=variant, flags=flags, diverged=str(err), history=seen.get("history"))
        text = json.dumps(stopped, indent=1) + "\n"
        atomic_write(out_dir / f"{variant}.diverged.json", lambda tmp: tmp.write_text(text))
        print(f"{variant}: {err}; recorded in {out_dir / (variant + '.diverged.json')}")
        return stopped


def summary_of(variant: str, info: dict) -> dict:
    """What the notebook plots of one run: flags, time, held-out scores, loss and validation curves."""
    history = info.get("history") or dict(step=[], loss=[], val=[])
    keep = dict(step=history["step"], loss=history["loss"], val=history["val"])
    if "diverged" in info:
        return dict(flags=VARIANTS[variant], diverged=info["diverged"], history=keep)
    return dict(flags=VARIANTS[variant], steps_done=info["steps_done"], train_seconds=info["train_seconds"],
                device=info["device"], torch=info["torch"], test=info["test"], history=keep)


def read_run(path: Path) -> dict:
    """A run's json, or a `ValueError` naming the file: not JSON, or not an object."""
    try:
        info = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err}); delete it or train the variant again") from None
    if not isinstance(info, dict):
        raise ValueError(f"{path}: holds a JSON {type(info).__name__}, expected the object train writes")
    return info


def summary_from(variant: str, info: dict, path: Path) -> dict:
    """`summary_of`, naming `path` when a key it needs is missing or of the wrong kind."""
    try:
        return summary_of(variant, info)
    except KeyError as err:
        raise ValueError(f"{path}: no {err.args[0]!r} (expected the json train writes at the end of a run)") from None
    except (TypeError, AttributeError) as err:
        raise ValueError(f"{path}: not the json train writes ({err})") from None


def collect(out_dir: Path) -> dict:
    """Every finished variant in `out_dir`, in `VARIANTS` order."""
    from .options import RECIPES
    runs = {}
    for variant in VARIANTS:
        done, stopped = out_dir / f"{variant}.json", out_dir / f"{variant}.diverged.json"
        info = read_run(done) if done.is_file() else {}
        if info.get("test") is not None:
            runs[variant] = summary_from(variant, info, done)
        elif stopped.is_file():                      # (a NAME.json without test scores: not finished)
            runs[variant] = summary_from(variant, read_run(stopped), stopped)
    if not runs:
        raise FileNotFoundError(f"--out-dir {out_dir}: no finished variant (expected NAME.json from "
                                f"`python -m m2f_teach ablate`; names: {', '.join(VARIANTS)})")
    return dict(format=FORMAT, recipe=RECIPES["lecture"], command="python -m m2f_teach ablate",
                runs=runs)


def shipped_results() -> dict:
    """The measured ablations that ship with the package (`m2f_teach/results/ablations.json`)."""
    from ..results import ablation_runs
    return ablation_runs()
