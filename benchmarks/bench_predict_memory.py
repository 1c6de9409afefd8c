"""Peak memory of `python -m m2f_teach predict` on one large photo: a 12-Mpixel image (4000×3000),
a model with 100 queries (`M2FConfig.small(num_queries=100)`, random weights saved as converted
weights: 80 classes, images fitted into mmdet's 1333×800), each task in a fresh process.

Peak RSS is each child process's own `ru_maxrss` (`os.wait4`, one child at a time). `--tree DIR` runs another checkout of the package (e.g. an export of main) on the
same image and weights: before/after in one run. Each run is capped at `--cap-gb` of address
space (12 GB), so a run that would take the machine's memory fails alone (exit status shown).
Goal: ≤ 2 GB for every task.

    python benchmarks/bench_predict_memory.py [--tree /tmp/main_tree] [--cases 0 2] [--size 3000 4000]
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

CASES = (("instance", []), ("instance", ["--score-threshold", "0"]), ("semantic", []), ("panoptic", []))


def make_inputs(folder: Path, size: tuple[int, int]) -> tuple[Path, Path]:
    """A shapes image scaled to `size` (PNG) and a 100-query random model (.safetensors)."""
    from PIL import Image

    from m2f_teach import M2FConfig, Mask2Former
    from m2f_teach.convert import save_checkpoint
    from m2f_teach.data import TEST_SEED, draw_sample
    image = Image.fromarray(draw_sample(0, TEST_SEED, (192, 256))["image"]).resize(size[::-1], Image.BILINEAR)
    image_path = folder / "photo.png"
    image.save(image_path)
    torch.manual_seed(0)
    weights = save_checkpoint(Mask2Former(M2FConfig.small(num_queries=100)).eval(),
                              folder / "q100.safetensors", num_things=80)
    return image_path, weights


def peak_rss(tree: str, args: list[str], cap_gb: float) -> tuple[int, float]:
    """Run `python -m m2f_teach ARGS` in `tree` (`-m` puts the working folder first on the path):
    (exit status, peak RSS in GB)."""
    env = dict(os.environ, PYTHONPATH=tree)
    cap = int(cap_gb * 2**30)

    def limit():                                   # a run past the cap fails alone, not the machine
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    child = subprocess.Popen([sys.executable, "-m", "m2f_teach", *args], env=env, preexec_fn=limit, cwd=tree,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    err = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)                  # this child's own peak, kB on Linux
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        print(err.strip().splitlines()[-1] if err.strip() else "(no message)")
    return child.returncode, usage.ru_maxrss / 2**20


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", action="append", default=[], help="another checkout to measure too")
    parser.add_argument("--cap-gb", type=float, default=12.0,
                        help="address-space cap of each run (RLIMIT_AS; default 12): past it a run fails")
    parser.add_argument("--only-trees", action="store_true", help="measure only the --tree checkouts")
    parser.add_argument("--cases", nargs="+", type=int, default=list(range(len(CASES))),
                        help="which rows of CASES to run (default: all)")
    parser.add_argument("--size", nargs=2, type=int, default=(3000, 4000), metavar=("H", "W"))
    args = parser.parse_args()
    here = str(Path(__file__).resolve().parents[1])
    with tempfile.TemporaryDirectory() as folder:
        image, weights = make_inputs(Path(folder), tuple(args.size))
        print(f"image {args.size[0]}×{args.size[1]} ({args.size[0] * args.size[1] / 1e6:.0f} Mpixels), "
              f"100 queries, 80 classes")
        print("| tree | task | flags | peak RSS (GB) |\n|---|---|---|---|")
        for tree in [*args.tree] + ([] if args.only_trees else [here]):
            for task, flags in [CASES[i] for i in args.cases]:
                status, gb = peak_rss(tree, ["predict", str(image), "--weights", str(weights), "--task", task,
                                             "--json", str(Path(folder) / "r.json"), *flags], args.cap_gb)
                shown = f"{gb:.2f}" if status == 0 else f"{gb:.2f} (exit {status})"
                print(f"| {tree} | {task} | {' '.join(flags) or '(defaults)'} | {shown} |", flush=True)


if __name__ == "__main__":
    main()
