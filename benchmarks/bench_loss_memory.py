"""One training step of the two ablations: point loss vs full-mask loss, deformable vs FPN-only.

    python benchmarks/bench_loss_memory.py --threads 2                    # CPU, batch 16, 128×128
    python benchmarks/bench_loss_memory.py --threads 2 --image-size 256 256
    python benchmarks/bench_loss_memory.py --device cuda --batch 16 --image-size 512 512

One step = forward + losses over all ten predictions + backward + gradient clipping + AdamW, as
`python -m m2f_teach train` runs it, on the shipped checkpoint's architecture
(`M2FConfig.shapes()`, `--image-size` changes H×W) and one batch of the synthetic shapes. Rows:

* `point loss` — Mask2Former: mask BCE and dice on P_s sampled points (`num_points_for(H×W)`).
* `full-mask loss` — `Mask2FormerCriterion(point_loss=False)`: on every pixel of the masks
  upsampled to H×W (MaskFormer; mmdetection issue #8600 reports 18 GB → 6 GB from points).
* `FPN-only, point loss` — `M2FConfig(deformable_encoder=False)`: no deformable encoder
  (Mask2Former issue #1), the faithful loss.

Every variant starts from the same weights (the FPN-only model takes the faithful one's, less the
encoder's). Time: the median over `--steps` steps, run in turns (one step of each variant, then
the next round) after `--warmup` rounds, so that load on a shared machine hits all alike.
Peak memory: one more step per variant; on CUDA the allocator's peak above what was allocated
before the step (`torch.cuda.max_memory_allocated`), on CPU the peak of the running sum of the
allocations and frees that `torch.profiler` (`profile_memory=True`) records during the step.
Both count the step's own tensors (activations, gradients), not the weights, the optimizer's
state or the batch already in memory; each variant's gradients are freed before its measured step.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from m2f_teach.data import TRAIN_SEED
from m2f_teach.data.shapes import ShapesDataset, collate
from m2f_teach.model import M2FConfig, Mask2Former
from m2f_teach.training.criterion import Mask2FormerCriterion, num_points_for, total_loss
from m2f_teach.training.train import make_optimizer

VARIANTS = (("point loss", dict(), True),
            ("full-mask loss", dict(), False),
            ("FPN-only, point loss", dict(deformable_encoder=False), True))


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build(config, changes, point_loss, faithful_state, device):
    """A model with `changes`, the faithful weights it has keys for: its training step, and a
    function that frees its gradients (so that a measured step starts without them)."""
    model = Mask2Former(config.replace(**changes))
    own = model.state_dict()
    model.load_state_dict({k: v for k, v in faithful_state.items() if k in own})
    model = model.to(device).train()
    criterion = Mask2FormerCriterion(config.num_classes, num_points_for(config.image_size),
                                     point_loss=point_loss).to(device)
    optimizer = make_optimizer(model, lr=1e-4, weight_decay=0.05, device=device)
    params = [p for group in optimizer.param_groups for p in group["params"]]

    def step(images, targets):
        loss = total_loss(criterion(*model(images), targets))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        return loss.item()
    return step, lambda: optimizer.zero_grad(set_to_none=True)


def timed(step, images, targets, device):
    sync(device)
    t = time.perf_counter()
    step(images, targets)
    sync(device)
    return time.perf_counter() - t


def peak_bytes(step, images, targets, device) -> int:
    """Bytes allocated at the step's peak above what was allocated when it began."""
    if device.type == "cuda":
        sync(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        step(images, targets)
        sync(device)
        return torch.cuda.max_memory_allocated(device) - before
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step(images, targets)
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
                    if e.name() == "[memory]" and e.device_type() == torch.autograd.DeviceType.CPU)
    running = peak = 0
    for _, nbytes in events:                 # + for an allocation, − for a free
        running += nbytes
        peak = max(peak, running)
    return peak


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--batch", type=int, default=16, help="images per step (default 16)")
    parser.add_argument("--image-size", nargs=2, type=int, default=(128, 128), metavar=("H", "W"),
                        help="image height and width, multiples of 32 (default 128 128)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per variant (median)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    config = M2FConfig.shapes(batch_size=args.batch, image_size=tuple(args.image_size))

    torch.manual_seed(0)
    faithful_state = Mask2Former(config).state_dict()
    built = {name: build(config, changes, point_loss, faithful_state, device)
             for name, changes, point_loss in VARIANTS}
    steps = {name: step for name, (step, _) in built.items()}
    data = ShapesDataset(args.batch, seed=TRAIN_SEED, image_size=config.image_size)
    images, targets = collate([data[i] for i in range(args.batch)])
    images = images.to(device)
    targets = [{k: v.to(device) for k, v in t.items()} for t in targets]

    torch.manual_seed(1)
    times = {name: [] for name in steps}
    for round_ in range(args.warmup + args.steps):
        for name, step in steps.items():
            seconds = timed(step, images, targets, device)
            if round_ >= args.warmup:
                times[name].append(seconds)
    peaks = {}
    for name, (step, free_gradients) in built.items():
        free_gradients()
        peaks[name] = peak_bytes(step, images, targets, device)

    H, W = config.image_size
    where = device.type + (f", {torch.get_num_threads()} threads" if device.type == "cpu" else
                           f", {torch.cuda.get_device_name(device)}")
    print(f"one training step, M2FConfig.shapes() at B={args.batch}, H×W={H}×{W}, "
          f"P_s={num_points_for(config.image_size)} points ({where}; torch {torch.__version__})")
    print(f"median of {args.steps} steps after {args.warmup} warm-up round(s); peak = memory the step "
          f"allocates above its start ({'CUDA allocator' if device.type == 'cuda' else 'torch.profiler'})")
    print()
    base_time, base_peak = statistics.median(times["point loss"]), peaks["point loss"]
    print(f"| {'variant':<22} | {'step ms':>8} | {'× point loss':>12} | {'peak MiB':>9} | {'× point loss':>12} |")
    print(f"|{'-' * 24}|{'-' * 9}:|{'-' * 13}:|{'-' * 10}:|{'-' * 13}:|")
    for name in steps:
        ms = statistics.median(times[name]) * 1e3
        print(f"| {name:<22} | {ms:8.0f} | {ms / 1e3 / base_time:12.2f} | {peaks[name] / 2**20:9.1f} "
              f"| {peaks[name] / base_peak:12.2f} |")


if __name__ == "__main__":
    main()
