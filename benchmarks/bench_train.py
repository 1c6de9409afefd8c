"""Training-step time of m2f-teach against HF transformers' Mask2Former, same architecture.

    python benchmarks/bench_train.py --threads 2                  # CPU, batch 16, 128×128
    python benchmarks/bench_train.py --device cuda --batch 64
    python benchmarks/bench_train.py --threads 2 --steps 3 --profile   # + our step's top profile rows
    python benchmarks/bench_train.py --threads 2 --seed-forward        # + the seed-size forward

One step = forward + losses over all ten predictions + backward + gradient clipping + AdamW,
as `python -m m2f_teach train` runs it. The two models are the shipped checkpoint's
architecture (`M2FConfig.shapes()`: ResNet 16..128, C = 64, 8 heads, 20 queries, 5 classes),
ours converted from a random-init HF `Mask2FormerForUniversalSegmentation` (offline) so both
start from the same weights; HF gets `mask_labels`/`class_labels` and the same number of points
(`train_num_points` = `num_points_for(128×128)` = 196). The batch is one batch of the project's
synthetic shapes. The steps run alternately (ours, HF, ours, HF, ...) after warm-up steps, so
that load on a shared machine hits both alike; the line `ratio ours/HF` compares the medians.

It also prints the time to draw a batch of shapes, in the main process and with `--workers`
DataLoader processes on (the throughput the training loop sees), and with `--seed-forward` the
inference forward at the seed configuration (R50, 2×3×1024×1024, `--seed-batch`) of ours and HF
with the TF32 settings and the max abs and relative differences of the class and mask logits.
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
from m2f_teach.data.shapes import ShapesDataset, collate  # noqa: E402
from m2f_teach.model import M2FConfig, Mask2Former  # noqa: E402
from m2f_teach.training.criterion import Mask2FormerCriterion, num_points_for, total_loss  # noqa: E402
from m2f_teach.training.train import make_optimizer  # noqa: E402


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device):
    sync(device)
    t = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - t, out


def build_models(device):
    """HF's model (train mode) and ours with the same weights, both for `M2FConfig.shapes()`."""
    config = M2FConfig.shapes()
    hf_config = hf_resnet_config(num_labels=config.num_classes)
    hf_config.train_num_points = num_points_for(config.image_size)
    hf = random_hf_model(hf_config, seed=0)
    ours = Mask2Former(config)
    ours.load_state_dict(from_hf(hf, image_size=config.image_size).state_dict())
    return config, hf.to(device).train(), ours.to(device).train()


def our_step(model, criterion, optimizer, clip):
    params = [p for group in optimizer.param_groups for p in group["params"]]

    def step(images, targets):
        cls_pred_list, mask_pred_list = model(images)
        loss = total_loss(criterion(cls_pred_list, mask_pred_list, targets))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, clip)
        optimizer.step()
        return loss.item()
    return step


def hf_step(model, optimizer, clip):
    def step(images, targets):
        out = model(pixel_values=images, mask_labels=[t["masks"].float() for t in targets],
                    class_labels=[t["labels"] for t in targets])
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        return out.loss.item()
    return step


def data_time(config, batch, workers, batches):
    """Seconds per batch of shapes: drawn in the main process, and through a DataLoader."""
    data = ShapesDataset(batches * batch, seed=0, image_size=config.image_size)
    t = time.perf_counter()
    collate([data[i] for i in range(batch)])
    in_process = time.perf_counter() - t
    loader = torch.utils.data.DataLoader(data, batch_size=batch, num_workers=workers, collate_fn=collate,
                                         prefetch_factor=4 if workers else None)
    it = iter(loader)
    next(it)                                              # workers started, first batch drawn
    t = time.perf_counter()
    n = sum(1 for _ in it)
    return in_process, (time.perf_counter() - t) / max(n, 1)


def profile_our_step(step, images, targets, device, rows):
    from torch.profiler import ProfilerActivity, profile
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        step(images, targets)
        sync(device)
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=key, row_limit=rows, max_name_column_width=50))
    if device.type == "cuda":
        kernels = sum(e.count for e in prof.key_averages() if e.device_type.name == "CUDA")
        print(f"CUDA kernels in one step: {kernels}")


def tf32_settings():
    return (f"TF32: matmul {torch.backends.cuda.matmul.allow_tf32}, "
            f"cudnn {torch.backends.cudnn.allow_tf32}, float32_matmul_precision "
            f"{torch.get_float32_matmul_precision()!r}")


def seed_forward(device, batch, repeats):
    """Inference forward at the seed configuration, ours vs HF, alternating."""
    hf = random_hf_model(seed_hf_config(), seed=0).to(device)
    ours = from_hf(hf, image_size=(1024, 1024)).to(device)
    images = torch.randn(batch, 3, 1024, 1024, generator=torch.Generator().manual_seed(0)).to(device)

    def run_hf():
        return hf_predictions(hf, images)

    times = {"ours": [], "hf": []}
    with torch.inference_mode():
        _, (cls_o, mask_o) = timed(lambda: ours(images), device)
        _, (cls_h, mask_h) = timed(run_hf, device)
        for _ in range(repeats):
            times["ours"].append(timed(lambda: ours(images), device)[0])
            times["hf"].append(timed(run_hf, device)[0])
    pairs = list(zip(cls_o + mask_o, cls_h + mask_h))
    abs_diff = max(float((a - b).abs().max()) for a, b in pairs)
    rel_diff = max(float((a - b).norm() / b.norm()) for a, b in pairs)
    o, h = statistics.median(times["ours"]), statistics.median(times["hf"])
    print(f"seed forward {tuple(images.shape)}: ours {o:.3f} s, HF {h:.3f} s, ratio ours/HF = {o / h:.2f}")
    print(f"  {tf32_settings()}")
    print(f"  cls and mask logits of 10 predictions: max abs diff {abs_diff:.2e}, "
          f"max relative diff ‖ours − HF‖/‖HF‖ {rel_diff:.2e}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0 = default)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=5, help="timed steps of each, alternating")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps of each first")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                        help="DataLoader processes for the data-time line (0 = skip it)")
    parser.add_argument("--no-hf", action="store_true", help="time our step only")
    parser.add_argument("--compile", nargs="?", const="default", default=None, metavar="MODE",
                        help="run our model through torch.compile (MODE: default, reduce-overhead, ...)")
    parser.add_argument("--profile", type=int, nargs="?", const=15, default=0, metavar="ROWS",
                        help="print the top rows of a profile of our step")
    parser.add_argument("--seed-forward", action="store_true",
                        help="also time the seed-size inference forward, ours vs HF")
    parser.add_argument("--seed-batch", type=int, default=2)
    parser.add_argument("--seed-repeats", type=int, default=2)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    config, hf, ours = build_models(device)
    num_points = num_points_for(config.image_size)
    data = ShapesDataset(args.batch, seed=0, image_size=config.image_size)
    images, targets = collate([data[i] for i in range(args.batch)])
    images = images.to(device)
    targets = [{k: v.to(device) for k, v in t.items()} for t in targets]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device {name}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"batch {tuple(images.shape)}, points {num_points}, compile {args.compile}")

    criterion = Mask2FormerCriterion(config.num_classes, num_points).to(device)
    optimizer = make_optimizer(ours, args.lr, 0.05, device)
    model = torch.compile(ours, mode=args.compile) if args.compile else ours
    steps = {"ours": our_step(model, criterion, optimizer, 1.0)}
    if not args.no_hf:
        hf_optimizer = torch.optim.AdamW(hf.parameters(), lr=args.lr, weight_decay=0.05)
        steps["hf"] = hf_step(hf, hf_optimizer, 1.0)
    times = {name: [] for name in steps}
    for i in range(args.warmup + args.steps):
        for name, step in steps.items():
            t, loss = timed(lambda: step(images, targets), device)
            if i >= args.warmup:
                times[name].append(t)
                print(f"step {i - args.warmup}: {name:4s} {t:7.3f} s  loss {loss:.2f}", flush=True)
    medians = {name: statistics.median(ts) for name, ts in times.items()}
    line = f"median step: ours {medians['ours']:.3f} s"
    if "hf" in medians:
        line += f", HF {medians['hf']:.3f} s, ratio ours/HF = {medians['ours'] / medians['hf']:.2f}"
    print(line)
    if args.workers:
        in_process, loader = data_time(config, args.batch, args.workers, batches=max(8, 4 * args.workers))
        print(f"data: {in_process:.3f} s to draw a batch of {args.batch} in the main process, "
              f"{loader:.3f} s per batch with {args.workers} workers on "
              f"(step {medians['ours']:.3f} s)")
    if args.profile:
        profile_our_step(steps["ours"], images, targets, device, args.profile)
    if args.seed_forward:
        del hf, ours, steps
        seed_forward(device, args.seed_batch, args.seed_repeats)


if __name__ == "__main__":
    main()
