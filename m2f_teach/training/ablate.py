"""The ablations of `python -m m2f_teach ablate` (`training/cli.py`): train each ablation with the lecture recipe, side by side.

    python -m m2f_teach ablate                                  # all variants, seeds 0 1 2
    python -m m2f_teach ablate --variants faithful fpn_only     # some of them
    python -m m2f_teach ablate --seeds 0                        # one seed each (a quick look)
    python -m m2f_teach ablate --collect                        # only gather finished runs

Each variant is `python -m m2f_teach train --recipe lecture` plus one switch (off = the
experiment; the faithful model has every switch on), trained once per seed (`--seed`: other
init, other training data). Its checkpoints and train jsons go to `--out-dir` (`NAME.json` for
seed 0, `NAME.seedS.json` for the others); then the curves, held-out scores and times of every
finished variant are gathered into one small json (`--json`), with the mean and standard
deviation of the held-out scores over its seeds: a difference between two variants means
something only where it is larger than about two standard deviations. A variant whose loss
turns NaN (the all-blocked reset switched off) is recorded with the step it stopped at
instead of failing the whole command.

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
    "no_reset": ["--reset-all-blocked", "false"],
    "no_masked_attention": ["--masked-attention", "false"],
    "points_1": ["--num-points", "1"],
    "encoder_6": ["--num-encoder-layers", "6"],         # the seed's 6 (the lecture recipe has 3)
    "fpn_only": ["--deformable-encoder", "false"],
    "full_mask_loss": ["--point-loss", "false"],
}
SEEDS = (0, 1, 2)
SCORES = ("class_acc", "miou", "detected")
FORMAT = "m2f-teach-ablations/2"
RESULTS_NAME = "ablations.json"


def run_name(variant: str, seed: int) -> str:
    """The file stem of one run: `NAME` for seed 0, `NAME.seedS` for the others."""
    return variant if seed == 0 else f"{variant}.seed{seed}"


def train_flags(variant: str, out_dir: Path, args, seed: int = 0) -> list[str]:
    """The `train` command line of one variant and seed."""
    flags = ["--recipe", "lecture", *VARIANTS[variant], "--seed", str(seed), "--device", args.device,
             "--out", str(out_dir / f"{run_name(variant, seed)}.safetensors")]
    for name in ("workers", "steps", "val_images", "test_images"):
        if getattr(args, name, None) is not None:
            flags += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    if args.no_progress:
        flags.append("--no-progress")
    return flags


def train_variant(variant: str, out_dir: Path, args, seed: int = 0) -> dict:
    """Train one variant with one seed in this process; a NaN loss is written down as where it stopped."""
    from .options import add_arguments
    from .train import train
    flags = train_flags(variant, out_dir, args, seed)
    train_args = add_arguments(argparse.ArgumentParser()).parse_args(flags)
    train_args.command_line = flags                     # what the train json records as its command
    seen = {}
    name = run_name(variant, seed)
    print(f"== {name}: python -m m2f_teach train {' '.join(flags)}", flush=True)
    try:
        return train(train_args, on_log=lambda history: seen.update(history=history))
    except FloatingPointError as err:            # the loss turned NaN or infinite
        stopped = dict(variant=variant, seed=seed, flags=flags, diverged=str(err), history=seen.get("history"))
        text = json.dumps(stopped, indent=1) + "\n"
        atomic_write(out_dir / f"{name}.diverged.json", lambda tmp: tmp.write_text(text))
        print(f"{name}: {err}; recorded in {out_dir / (name + '.diverged.json')}")
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


def seed_summary(seed: int, info: dict) -> dict:
    """One seed's line of a variant: held-out scores, steps and time, or where it diverged."""
    if "diverged" in info:
        return dict(seed=seed, diverged=info["diverged"])
    return dict(seed=seed, steps_done=info["steps_done"], train_seconds=info["train_seconds"], test=info["test"])


def mean_and_std(values: list[float]) -> tuple[float, float]:
    """The mean and the sample standard deviation (n − 1; 0 for one value), rounded to 4 digits."""
    mean = sum(values) / len(values)
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1) if len(values) > 1 else 0.0
    return round(mean, 4), round(var ** 0.5, 4)


def collect(out_dir: Path, seeds=SEEDS) -> dict:
    """Every finished variant in `out_dir`, in `VARIANTS` order: the first finished seed's curves
    and scores (as one run), every seed's scores, and their mean and standard deviation."""
    from .options import RECIPES
    runs = {}
    for variant in VARIANTS:
        found = []
        for seed in seeds:
            stem = run_name(variant, seed)
            done, stopped = out_dir / f"{stem}.json", out_dir / f"{stem}.diverged.json"
            info = read_run(done) if done.is_file() else {}
            if info.get("test") is not None:
                found.append((seed, summary_from(variant, info, done), info))
            elif stopped.is_file():                  # (a NAME.json without test scores: not finished)
                found.append((seed, summary_from(variant, read_run(stopped), stopped), read_run(stopped)))
        if not found:
            continue
        run = dict(found[0][1], seed=found[0][0], seeds=[seed_summary(seed, info) for seed, _, info in found])
        finished = [s["test"] for s in run["seeds"] if "test" in s]
        if finished:
            for key in SCORES:
                run[f"{key}_mean"], run[f"{key}_std"] = mean_and_std([t[key] for t in finished])
        runs[variant] = run
    if not runs:
        raise FileNotFoundError(f"--out-dir {out_dir}: no finished variant (expected NAME.json from "
                                f"`python -m m2f_teach ablate`; names: {', '.join(VARIANTS)})")
    return dict(format=FORMAT, recipe=RECIPES["lecture"], command="python -m m2f_teach ablate",
                seeds=list(seeds), runs=runs)


def clear_differences(results: dict, key: str = "class_acc", against: str = "faithful") -> dict:
    """Variant → its mean minus `against`'s, for the variants whose difference exceeds two
    standard deviations of the seeds (the larger of the two variants' deviations)."""
    runs = results["runs"]
    base = runs[against]
    out = {}
    for name, run in runs.items():
        if name == against or f"{key}_mean" not in run or len(run["seeds"]) < 2:
            continue
        diff = run[f"{key}_mean"] - base[f"{key}_mean"]
        if abs(diff) > 2 * max(run[f"{key}_std"], base[f"{key}_std"]):
            out[name] = round(diff, 4)
    return out


def shipped_results() -> dict:
    """The measured ablations that ship with the package (`m2f_teach/results/ablations.json`)."""
    from ..results import ablation_runs
    return ablation_runs()
