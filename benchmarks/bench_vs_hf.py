"""Forward time of m2f-teach against HF transformers on the same converted weights.

    python benchmarks/bench_vs_hf.py                  # the seed: R50, 2×3×1024×1024, CPU
    python benchmarks/bench_vs_hf.py --repeats 3 --device cuda
    python benchmarks/bench_vs_hf.py --size 256 384 --batch 1 --repeats 2    # quick

Builds a random-init HF `Mask2FormerForUniversalSegmentation` (offline), converts it with
`from_hf`, then times the two forward passes alternately (ours, HF, ours, HF, ...) after one
warm-up each, so that load on a shared machine hits both alike. Prints each time, the ratio
ours/HF of the medians, and the max abs diff of the class and mask logits of all 10
predictions.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from m2f_teach.convert import from_hf  # noqa: E402
from m2f_teach.convert.hf_reference import (hf_predictions, hf_resnet_config, random_hf_model,  # noqa: E402
                                            seed_hf_config)


def sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device):
    sync(device)
    t = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - t, out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", nargs=2, type=int, default=(1024, 1024), metavar=("H", "W"))
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1, help="timed runs of each, alternating")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--small", action="store_true", help="the small test model instead of the seed R50")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device
    hf = random_hf_model(hf_resnet_config() if args.small else seed_hf_config(), seed=0).to(device)
    ours = from_hf(hf, image_size=tuple(args.size)).to(device)
    images = torch.randn(args.batch, 3, *args.size, generator=torch.Generator().manual_seed(0)).to(device)
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"images {tuple(images.shape)}")

    def run_ours():
        return ours(images)

    def run_hf():
        return hf_predictions(hf, images)

    times = {"ours": [], "hf": []}
    with torch.inference_mode():
        _, (cls_o, mask_o) = timed(run_ours, device)       # warm-up
        _, (cls_h, mask_h) = timed(run_hf, device)
        diff = max(float((a - b).abs().max()) for a, b in zip(cls_o + mask_o, cls_h + mask_h))
        for i in range(args.repeats):
            for name, fn in (("ours", run_ours), ("hf", run_hf)):
                t, _ = timed(fn, device)
                times[name].append(t)
                print(f"run {i}: {name:4s} {t:8.3f} s", flush=True)
    ours_t, hf_t = statistics.median(times["ours"]), statistics.median(times["hf"])
    print(f"median ours {ours_t:.3f} s, HF {hf_t:.3f} s, ratio ours/HF = {ours_t / hf_t:.3f}")
    print(f"max abs diff of cls and mask logits (10 predictions): {diff:.2e}")


if __name__ == "__main__":
    main()
