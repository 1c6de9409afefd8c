"""Widget update latency: how long one control move takes, from the new value to the new picture.

    python benchmarks/bench_widgets.py [--repeats 20]

Each explorer answers from a cached trace (no model run): the time measured is `Explorer.set`,
which updates the artists, blits them over the cached background and encodes the JPEG the
`ipywidgets.Image` shows. Printed: the median and the slowest over `--repeats` moves, per widget,
at the sizes the notebooks use (seed architecture at 256×256 for notebooks 1–5, the checkpoint's
configuration for 4, 6, 7). The target is under 100 ms.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from m2f_teach import M2FConfig, Mask2Former, viz
from m2f_teach.tracing import trace


def moves(explorer, name, values, repeats):
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        explorer.set(**{name: values[i % len(values)]})
        times.append(time.perf_counter() - start)
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()

    torch.manual_seed(0)
    seed_256 = M2FConfig.seed(batch_size=1, image_size=(256, 256))
    photo_trace = trace(Mask2Former(seed_256).eval(), viz.normalise(viz.sample_photo((256, 256))), keep=["*"])
    from m2f_teach.pretrained import load_model
    model, weights = load_model(verbose=False)
    sample = viz.shapes_image(0, model.config.image_size)
    shapes_trace = trace(model, viz.normalise(sample["image"]), keep=["*"])
    pd = "panoptic_head.pixel_decoder."

    cases = [
        ("01 feature_browser", viz.feature_browser(photo_trace), "channel", list(range(20))),
        ("02 positional_browser", viz.positional_browser(photo_trace), "channel", list(range(0, 256, 13))),
        ("03 reference_browser", viz.reference_browser(photo_trace), "level", [1, 2, 0]),
        ("04 deformable_explorer", viz.deformable_explorer(shapes_trace), "x", [0, 1, 2, 3]),
        ("04 deformable_explorer (seed 256)", viz.deformable_explorer(photo_trace), "x", [0, 1, 2, 3]),
        ("05 feature_browser (memories)", viz.feature_browser(photo_trace, pd + "multi_scale_memories.{}"),
         "channel", list(range(20))),
        ("06 attention_mask_explorer", viz.attention_mask_explorer(shapes_trace), "query",
         list(range(shapes_trace.config.num_queries))),
        ("07 prediction_explorer", viz.prediction_explorer(shapes_trace), "threshold", [0, 10, 20, 30, 40]),
    ]
    print(f"weights for 04/06/07: {weights}; {args.repeats} moves per widget; torch threads {torch.get_num_threads()}")
    print(f"{'widget':<36} {'control':<10} {'median ms':>10} {'max ms':>8}")
    medians = []
    for label, explorer, name, values in cases:
        moves(explorer, name, values, 2)                       # warm-up (first-draw caches)
        times = moves(explorer, name, values, args.repeats)
        medians.append(statistics.median(times))
        print(f"{label:<36} {name:<10} {1000 * medians[-1]:>10.1f} {1000 * max(times):>8.1f}")
    print(f"{'all widgets':<36} {'':<10} {1000 * statistics.median(medians):>10.1f} "
          f"(median of medians; worst median {1000 * max(medians):.1f} ms)")


if __name__ == "__main__":
    main()
