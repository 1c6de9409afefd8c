"""`python -m m2f_teach convert --from hf|mmdet SRC --output FILE.safetensors`.

* `--from hf`: SRC is a folder written by `save_pretrained` (config.json + weights) or the id
  of a model already in the local HF cache (`facebook/mask2former-swin-tiny-coco-instance`,
  downloaded beforehand with `huggingface-cli download ...`); nothing is downloaded here.
* `--from mmdet`: SRC is an mmdetection checkpoint (`.pth`, read with
  `torch.load(weights_only=True)`, or `.safetensors`); `--config` optionally names its mmdet
  config file, for the number of heads, levels and points (default 8, 3, 4).

The converted model is checked key by key (a key that does not fit is an error that names it)
and written with its config, ready for `m2f_teach.convert.load_checkpoint`.
"""
from __future__ import annotations

import argparse
import sys


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the `convert` subcommand to an `argparse` subparsers object."""
    parser = subparsers.add_parser(
        "convert", help="convert HF transformers or mmdetection Mask2Former weights",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--from", dest="source_format", choices=("hf", "mmdet"), required=True,
                        help="where the weights come from")
    parser.add_argument("src", help="HF folder or cached model id, or an mmdet checkpoint file")
    parser.add_argument("--output", "-o", required=True, help="the .safetensors file to write")
    parser.add_argument("--config", default=None, help="mmdet only: the mmdet config file (.py)")
    parser.set_defaults(func=run)
    return parser


def load_hf_model(src: str):
    """A HF `Mask2FormerForUniversalSegmentation` from a folder or the local cache, offline."""
    try:
        from transformers import Mask2FormerForUniversalSegmentation
    except ImportError as err:
        raise SystemExit("--from hf needs transformers: pip install transformers") from err
    try:
        return Mask2FormerForUniversalSegmentation.from_pretrained(src, local_files_only=True).eval()
    except OSError as err:
        raise SystemExit(f"cannot load HF model {src!r} from disk ({err}).\nDownload it first, e.g. "
                         f"`huggingface-cli download {src}`, or pass the folder save_pretrained wrote.") from err


def run(args) -> int:
    """Carry out `convert` for parsed `args`; returns the exit status."""
    from . import from_hf, from_mmdet, read_state_dict, save_checkpoint
    from .hf import labels_from_hf
    from .strict import ConversionError
    if not args.output.endswith(".safetensors"):
        print(f"--output must end in .safetensors, got {args.output!r}", file=sys.stderr)
        return 2
    try:
        if args.source_format == "hf":
            if args.config:
                print("--config is for --from mmdet only", file=sys.stderr)
                return 2
            hf_model = load_hf_model(args.src)
            model = from_hf(hf_model)
            labels = labels_from_hf(hf_model.config)
        else:
            model = from_mmdet(read_state_dict(args.src), args.config)
            labels = {}
    except ConversionError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    path = save_checkpoint(model, args.output, **labels)
    n = sum(p.numel() for p in model.state_dict().values())
    c = model.config
    print(f"wrote {path}: {n} numbers, {type(model.backbone).__name__} backbone, C={c.feat_channels}, "
          f"Q={c.num_queries}, K={c.num_classes + 1}, {c.num_encoder_layers}+{c.num_decoder_layers} layers")
    return 0


def main(argv=None) -> int:
    """Stand-alone entry: `python -m m2f_teach.convert.cli --from ...`."""
    parser = argparse.ArgumentParser(prog="m2f_teach")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    args = parser.parse_args(["convert", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
