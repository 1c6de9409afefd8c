"""Using the model outside the notebooks: predict time per image, and half precision.

1. `predict` time per image on CPU with the shipped checkpoint: held-out shapes images
   (128×128), one image per call and eight per call (median of `--repeats`), pre- and
   post-processing included.
2. Half precision against float32 on the same held-out batch: the largest difference of the
   last prediction's class probabilities and mask logits, and the share of mask pixels
   (logit > 0) that agree. CPU: `model.to(torch.bfloat16)` and `torch.autocast("cpu", bf16)`;
   CUDA, when there is a GPU: `.half()`, `.to(bfloat16)` and `torch.autocast("cuda", fp16/bf16)`.

    python benchmarks/bench_use.py [--repeats 5] [--threads 2]
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch

from m2f_teach.data import TEST_SEED, ShapesDataset, collate, draw_sample
from m2f_teach.predict import Predictor
from m2f_teach.pretrained import load_pretrained


def predict_time(repeats: int, per_call: int) -> float:
    predictor = Predictor.from_weights()
    images = [draw_sample(i, TEST_SEED)["image"] for i in range(per_call)]
    predictor(images[:1])                                     # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        predictor(images, task="instance")
        times.append((time.perf_counter() - start) / per_call)
    return statistics.median(times)


def differences(device: str, dtype=None, autocast=None) -> dict:
    images = collate([ShapesDataset(8, seed=TEST_SEED)[i] for i in range(8)])[0].to(device)
    model = load_pretrained(device)
    with torch.no_grad():
        ref_cls, ref_mask = (t[-1].float() for t in model(images))
        if dtype is not None:
            model, images = model.to(dtype), images.to(dtype)
        context = torch.autocast(device, dtype=autocast) if autocast else contextlib.nullcontext()
        with context:
            cls, mask = (t[-1].float() for t in model(images))
    return dict(cls_prob=float((cls.softmax(-1) - ref_cls.softmax(-1)).abs().max()),
                mask_logit=float((mask - ref_mask).abs().max()),
                mask_agree=float(((mask > 0) == (ref_mask > 0)).float().mean()))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-timing", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not args.skip_timing:
        for per_call in (1, 8):
            print(f"predict, CPU ({args.threads} threads), {per_call} image(s) per call: "
                  f"{predict_time(args.repeats, per_call) * 1000:.0f} ms per 128×128 image")
    cases = [("cpu", "bfloat16 weights", torch.bfloat16, None),
             ("cpu", "autocast bfloat16", None, torch.bfloat16)]
    if torch.cuda.is_available():
        cases += [("cuda", "float16 weights (.half())", torch.float16, None),
                  ("cuda", "bfloat16 weights", torch.bfloat16, None),
                  ("cuda", "autocast float16", None, torch.float16),
                  ("cuda", "autocast bfloat16", None, torch.bfloat16)]
    else:
        print("float16: not measured (no CUDA device; float16 runs on CUDA only)")
    for device, name, dtype, autocast in cases:
        d = differences(device, dtype, autocast)
        print(f"{device} {name:<26} vs float32: class probability max diff {d['cls_prob']:.3f}, "
              f"mask logit max diff {d['mask_logit']:.2f}, mask pixels agreeing {d['mask_agree']:.4f}")


if __name__ == "__main__":
    main()
