"""Cold start of `python -m m2f_teach table` against `python -c "import torch"`.

A student's first command pays for importing torch; everything after that should be small.
This runs both as fresh processes, alternating, for several rounds (so that a busy machine
slows both alike), and prints the median of each and the median of the per-round ratios
(target: table ≤ 1.5 × import torch). Then, in this process, the warm shape-only trace of the
seed configuration (target ≤ 0.1 s), and whether the table's process imported the compiler
(`torch._dynamo`), sympy, scipy or matplotlib (it should import none of them).

    python benchmarks/bench_cold_start.py [--rounds 5] [--warm 7]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

TABLE = [sys.executable, "-m", "m2f_teach", "table"]
IMPORT_TORCH = [sys.executable, "-c", "import torch"]
HEAVY = ("torch._dynamo", "sympy", "scipy", "matplotlib", "transformers")


def wall(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def heavy_imports_of_table() -> list[str]:
    """The heavy modules a `table` process has loaded when it ends."""
    code = ("import runpy, sys\n"
            "sys.argv = ['m2f_teach', 'table']\n"
            "try:\n    runpy.run_module('m2f_teach', run_name='__main__')\n"
            "finally:\n"
            f"    print(' '.join(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return result.stderr.split()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="alternating cold runs of each command")
    parser.add_argument("--warm", type=int, default=7, help="warm traces to take the median of")
    args = parser.parse_args()

    wall(IMPORT_TORCH)                         # the first run warms the file cache for both
    torch_s, table_s = [], []
    for _ in range(args.rounds):
        torch_s.append(wall(IMPORT_TORCH))
        table_s.append(wall(TABLE))
    ratios = [b / a for a, b in zip(torch_s, table_s)]
    print(f"cold, {args.rounds} alternating rounds on {os.cpu_count()} CPU(s): "
          f"import torch median {statistics.median(torch_s):.2f} s, "
          f"`python -m m2f_teach table` median {statistics.median(table_s):.2f} s")
    print(f"table / import torch: median ratio {statistics.median(ratios):.2f} (target ≤ 1.5; "
          f"rounds: {', '.join(f'{r:.2f}' for r in ratios)})")
    heavy = heavy_imports_of_table()
    print(f"heavy modules the table's process imported: {', '.join(heavy) if heavy else 'none'}")

    from m2f_teach import M2FConfig
    from m2f_teach.tracing import trace_shapes
    trace_shapes(M2FConfig.seed())             # builds and caches the meta model
    warm = []
    for _ in range(args.warm):
        start = time.perf_counter()
        trace_shapes(M2FConfig.seed())
        warm.append(time.perf_counter() - start)
    print(f"warm shape-only trace of the seed: median {statistics.median(warm):.3f} s over {args.warm} "
          f"(target ≤ 0.1 s; min {min(warm):.3f} s)")


if __name__ == "__main__":
    main()
