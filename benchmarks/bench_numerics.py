"""The same weights on CPU and GPU, TF32 off and on: how far the numbers move (FAQ Q10).

    python benchmarks/bench_numerics.py                         # CPU float32 vs float64 only
    python benchmarks/bench_numerics.py --device cuda --json m2f_teach/results/gpu_numerics.json

The shipped checkpoint on 16 held-out images, in float64 on the CPU as the reference, and in
float32 on the CPU, on the GPU with TF32 off, and on the GPU with TF32 on (matmuls and cuDNN
convolutions). For each: the largest class-logit and mask-logit difference to the reference
over the ten predictions, the mask pixels whose sign (the 0.5 threshold of masks and attention
masks) flips, and the objects whose last-prediction class changes. Notebook 11 (Q10) reads the
stored json.
"""
from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from m2f_teach.data import VAL_SEED, ShapesDataset  # noqa: E402
from m2f_teach.pretrained import load_pretrained  # noqa: E402


def predictions(model, images, device, dtype=torch.float32):
    model = copy.deepcopy(model).to(device=device, dtype=dtype)
    with torch.no_grad():
        cls_list, mask_list = model(images.to(device=device, dtype=dtype))
    return [c.double().cpu() for c in cls_list], [m.double().cpu() for m in mask_list]


def set_tf32(on: bool):
    torch.backends.cuda.matmul.allow_tf32 = on
    torch.backends.cudnn.allow_tf32 = on


def differences(run, reference) -> dict:
    (cls, masks), (cls64, masks64) = run, reference
    return dict(
        max_abs_cls=max(float((a - b).abs().max()) for a, b in zip(cls, cls64)),
        max_abs_mask=max(float((a - b).abs().max()) for a, b in zip(masks, masks64)),
        mask_sign_flips=sum(int(((a > 0) != (b > 0)).sum()) for a, b in zip(masks, masks64)),
        mask_pixels=sum(a.numel() for a in masks),
        last_class_changes=int((cls[-1].argmax(-1) != cls64[-1].argmax(-1)).sum()),
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu, or cuda to add the GPU rows")
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)
    model = load_pretrained()
    data = ShapesDataset(args.images, seed=VAL_SEED)
    images = torch.stack([data[i]["image"] for i in range(len(data))])            # (N, 3, 128, 128)
    reference = predictions(model, images, "cpu", torch.float64)
    rows = {"cpu float32": differences(predictions(model, images, "cpu"), reference)}
    device_name = platform.processor() or platform.machine()
    if args.device.startswith("cuda"):
        device_name = torch.cuda.get_device_name(args.device)
        for on in (False, True):
            set_tf32(on)
            rows[f"gpu float32, TF32 {'on' if on else 'off'}"] = differences(
                predictions(model, images, args.device), reference)
        set_tf32(False)
    print(f"{args.images} held-out images, against float64 on the CPU ({device_name}, torch {torch.__version__})")
    print(f"{'':24s} {'max |Δ class logit|':>20s} {'max |Δ mask logit|':>19s} {'mask signs flipped':>19s} "
          f"{'last classes changed':>21s}")
    for name, r in rows.items():
        print(f"{name:24s} {r['max_abs_cls']:20.1e} {r['max_abs_mask']:19.1e} "
              f"{r['mask_sign_flips']:>10d} of {r['mask_pixels']} {r['last_class_changes']:>12d}")
    if args.json:
        Path(args.json).write_text(json.dumps(dict(device=device_name, torch=torch.__version__, images=args.images,
                                                   reference="cpu float64", rows=rows), indent=1) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
