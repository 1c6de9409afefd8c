"""Tracing costs at the seed configuration (2×3×1024×1024).

1. Shape-only trace on `meta`: cold (first meta op of the process pays torch's one-time set-up)
   and warm (median of 5). Target: warm under 1 s.
2. Real forward on CPU: time and peak memory (a fresh process, so the peak is this forward's).
3. Tracer overhead: traced (shape-only hooks, nothing kept) / plain forward, alternating in one
   run, median of the pairs. Target: at most 1.05.

    python benchmarks/bench_trace.py [--repeats 3] [--preset seed|small]
"""
from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time

import torch


def peak_memory_of_forward(preset: str) -> float:
    """Peak resident memory (GiB) of a fresh process that builds the model and runs one forward."""
    code = (
        "import torch, resource\n"
        "from m2f_teach import M2FConfig, Mask2Former\n"
        f"c = M2FConfig.preset({preset!r}); torch.manual_seed(0)\n"
        "m = Mask2Former(c).eval(); x = torch.randn(c.batch_size, 3, *c.image_size)\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "with torch.no_grad(): m(x)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, base)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    peak_kib, _ = map(int, out.split())
    return peak_kib / 2**20


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--preset", default="seed")
    args = parser.parse_args()

    from m2f_teach import M2FConfig, Mask2Former
    from m2f_teach.tracing import trace, trace_shapes

    config = M2FConfig.preset(args.preset)
    start = time.perf_counter()
    trace_shapes(config)
    cold = time.perf_counter() - start
    warm = []
    for _ in range(5):
        start = time.perf_counter()
        t = trace_shapes(config)
        warm.append(time.perf_counter() - start)
    print(f"meta trace, {args.preset}: cold {cold:.2f} s (includes torch's one-time meta set-up), "
          f"warm median {statistics.median(warm) * 1000:.0f} ms over 5 "
          f"({len(t.tensors)} tensors, {len(t.calls)} module calls)")

    torch.manual_seed(0)
    model = Mask2Former(config).eval()
    images = torch.randn(config.batch_size, 3, *config.image_size)
    with torch.no_grad():
        model(images)                       # warm-up
    plain, traced = [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        with torch.no_grad():
            model(images)
        plain.append(time.perf_counter() - start)
        start = time.perf_counter()
        trace(model, images)
        traced.append(time.perf_counter() - start)
    ratios = [b / a for a, b in zip(plain, traced)]
    print(f"real forward on CPU ({torch.get_num_threads()} threads), {args.preset}: "
          f"median {statistics.median(plain):.2f} s over {args.repeats}")
    print(f"tracer overhead (traced / plain, alternating): median ratio {statistics.median(ratios):.3f} "
          f"(pairs: {', '.join(f'{r:.3f}' for r in ratios)})")
    print(f"peak memory of one forward in a fresh process: {peak_memory_of_forward(args.preset):.2f} GiB")


if __name__ == "__main__":
    main()
