"""Plain-forward time before/after a change to the model, alternating the two in one run.

"Before" is the `m2f_teach/model` package of a git commit (default: the commit where the
decoder's attention recording was added, `--base`), unpacked with `git archive` into a
temporary folder and imported under the name `m2f_teach_base`; "after" is the working tree's.
Both models get the same weights and the same images; their outputs must be bit-identical, and
the script times them in alternation (after, before, after, before, ...) so that a machine that
is busier at some moments slows both alike. It reports the median over the pairs of after/before.

It does the same for a traced forward that keeps no values (after: the decoder's attention
weights are not computed, only their shapes recorded), and times a trace that keeps the attention
weights, to show what recording them costs when it is asked for.

    python benchmarks/bench_forward.py [--base COMMIT] [--preset shapes] [--pairs 30] [--threads 1]

Target: median ratio after/before ≤ 1.02.
"""
from __future__ import annotations

import argparse
import importlib
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
import types

import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
BASE_COMMIT = "96d1a67"   # the model before the decoder's attention weights were recorded


def import_base_model(commit: str, folder: pathlib.Path):
    """`m2f_teach` as of `commit`, imported as the package `m2f_teach_base`; returns its model
    and tracing subpackages."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "m2f_teach/model", "m2f_teach/tracing"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    package = types.ModuleType("m2f_teach_base")
    package.__path__ = [str(folder / "m2f_teach")]
    sys.modules["m2f_teach_base"] = package
    return importlib.import_module("m2f_teach_base.model"), importlib.import_module("m2f_teach_base.tracing")


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default=BASE_COMMIT, help="commit of the 'before' model")
    parser.add_argument("--preset", default="shapes", choices=["shapes", "small", "seed"])
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--pairs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from m2f_teach import M2FConfig, Mask2Former
    from m2f_teach.tracing import trace

    with tempfile.TemporaryDirectory() as folder:
        base, base_tracing = import_base_model(args.base, pathlib.Path(folder))
        config = M2FConfig.preset(args.preset, batch_size=args.batch_size)
        torch.manual_seed(0)
        after = Mask2Former(config).eval()
        before = base.Mask2Former(base.M2FConfig.preset(args.preset, batch_size=args.batch_size)).eval()
        before.load_state_dict(after.state_dict())
        images = torch.randn(config.batch_size, 3, *config.image_size, generator=torch.Generator().manual_seed(1))

        def run(model):
            with torch.no_grad():
                return model(images)

        out_after, out_before = run(after), run(before)
        identical = all(torch.equal(a, b) for a, b in zip(out_after[0] + out_after[1], out_before[0] + out_before[1]))

        def alternate(run_after, run_before):
            times_after, times_before, ratios = [], [], []
            for i in range(args.pairs):
                first, second = (run_after, run_before) if i % 2 == 0 else (run_before, run_after)
                t_first, t_second = timed(first), timed(second)
                t_after, t_before = (t_first, t_second) if i % 2 == 0 else (t_second, t_first)
                times_after.append(t_after)
                times_before.append(t_before)
                ratios.append(t_after / t_before)
            return times_after, times_before, ratios

        times_after, times_before, ratios = alternate(lambda: run(after), lambda: run(before))
        traced_after, traced_before, traced_ratios = alternate(
            lambda: trace(after, images, record_modules=False),
            lambda: base_tracing.trace(before, images, record_modules=False))
        kept = [timed(lambda: trace(after, images, record_modules=False, keep=["*_attn.attn_*"]))
                for _ in range(5)]
        # the only work a plain forward adds: one `tap.recording` check per attention call
        tap = after.panoptic_head.transformer_decoder.layers[0].cross_attn.tap
        check_s = min(timeit.repeat(lambda: tap.recording, number=100_000, repeat=5)) / 100_000
        checks = 2 * config.num_decoder_layers

    median = statistics.median
    print(f"plain forward, preset {args.preset}, batch {config.batch_size}, {config.image_size[0]}×"
          f"{config.image_size[1]}, {args.threads} thread(s), {args.pairs} alternating pairs")
    print(f"  outputs before/after bit-identical: {identical}")
    print(f"  before ({args.base}): median {median(times_before) * 1000:.1f} ms")
    print(f"  after (working tree): median {median(times_after) * 1000:.1f} ms")
    print(f"  after/before: median ratio {median(ratios):.3f} "
          f"(quartiles {statistics.quantiles(ratios, n=4)[0]:.3f}–{statistics.quantiles(ratios, n=4)[2]:.3f}); "
          f"target ≤ 1.02")
    print(f"traced forward keeping no values (shape-only records): after/before median ratio "
          f"{median(traced_ratios):.3f} (before {median(traced_before) * 1000:.1f} ms, "
          f"after {median(traced_after) * 1000:.1f} ms)")
    print(f"traced forward keeping the decoder's attention (computed): median {median(kept) * 1000:.1f} ms "
          f"= {median(kept) / median(times_after):.2f} × plain")
    print(f"added work per plain forward: {checks} `tap.recording` checks × {check_s * 1e9:.0f} ns = "
          f"{checks * check_s * 1e6:.1f} µs = {checks * check_s / median(times_before):.1e} of the forward")
    if not identical:
        sys.exit("outputs differ between before and after")


if __name__ == "__main__":
    main()
