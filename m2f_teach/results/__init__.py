"""Measured runs that ship with the package, so the notebooks plot them in seconds.

* `lecture_run()`: `python -m m2f_teach train --recipe lecture` run for real on 2 CPU cores
  (`lecture.json`: the command, machine, time, loss history and held-out scores).
* `lecture_search()`: the earlier lecture recipe (`--recipe shipped-30min`) with one change
  each (2000 steps, 160×160 images) and a 5-minute H100 run, on NVIDIA H100 GPUs; that recipe's
  run on 2 CPU cores and its held-out confusion matrix; and the confusion matrix of the lecture
  run in `lecture.json` (`lecture_search.json`).
* `lecture_study()`: the earlier recipe with loss, data, query and layer changes (class loss
  weight, objects per training image, queries, points per mask, encoder and decoder layers,
  steps, seeds), each at the steps that fit 30 CPU minutes, trained on NVIDIA H200s, and a
  3-seed check of four ablation switches on the lecture recipe (`lecture_study.json`).
* `ablation_runs()`: `python -m m2f_teach ablate` as it ran with the earlier recipe
  (`--recipe shipped-30min`), every ablation switch with one seed (`ablations.json`).
* `gpu_numerics()`: the shipped checkpoint on CPU vs GPU, TF32 off and on (`gpu_numerics.json`,
  `benchmarks/bench_numerics.py`).
"""
from __future__ import annotations

import json
from importlib import resources

MAKE = {
    "lecture.json": "python -m m2f_teach train --recipe lecture --out artifacts/lecture.safetensors "
                    "(then copy artifacts/lecture.json here)",
    "lecture_search.json": "the train jsons of the commands it lists, gathered by hand (README, Training)",
    "lecture_study.json": "the train jsons of the runs it lists, gathered by hand (README, Training)",
    "ablations.json": "python -m m2f_teach ablate --json m2f_teach/results/ablations.json",
    "gpu_numerics.json": "python benchmarks/bench_numerics.py --json m2f_teach/results/gpu_numerics.json",
}


def _load(name: str) -> dict:
    path = resources.files("m2f_teach").joinpath("results", name)
    if not path.is_file():
        raise FileNotFoundError(f"m2f_teach/results/{name} is missing from this installation; "
                                f"make it with `{MAKE[name]}`")
    return json.loads(path.read_text())


def lecture_run() -> dict:
    return _load("lecture.json")


def lecture_search() -> dict:
    return _load("lecture_search.json")


def lecture_study() -> dict:
    return _load("lecture_study.json")


def ablation_runs() -> dict:
    return _load("ablations.json")


def gpu_numerics() -> dict:
    return _load("gpu_numerics.json")
