"""`python -m m2f_teach convert --from hf|mmdet SRC --output FILE.safetensors` (and `compare`,
below: both models stage by stage, `compare.py`).

* `--from hf`: SRC is a folder written by `save_pretrained` (config.json + weights) or the id
  of a model already in the local HF cache (`facebook/mask2former-swin-tiny-coco-instance`,
  downloaded beforehand with `huggingface-cli download ...`). Fully offline: the id is looked
  up in the cache only, with the HF libraries in offline mode; nothing is downloaded.
* `--from mmdet`: SRC is an mmdetection checkpoint (`.pth`, read with
  `torch.load(weights_only=True)`, or `.safetensors`). Heads, levels, points, GroupNorm groups
  and the positional-encoding temperature come from its mmdet config, read as data and never
  executed: `--config FILE.py` (literals only; its `_base_` files are read the same way), or
  else the config text mmengine stored in the checkpoint (`meta['cfg']`). `--trust-config`
  executes `--config` with mmengine instead (a warning says so), for configs the literal
  reader cannot follow. Without any config, give `--num-heads`, `--num-points` and
  `--num-groups` (the error lists the candidates the weights allow).

The converted model is checked key by key (a key that does not fit is an error that names it)
and written with its config, ready for `m2f_teach.convert.load_checkpoint`.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path

from ..cli_args import check_output_path


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the `convert` and `compare` subcommands to an `argparse` subparsers object."""
    parser = subparsers.add_parser(
        "convert", help="convert HF transformers or mmdetection Mask2Former weights",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--from", dest="source_format", choices=("hf", "mmdet"), required=True,
                        help="where the weights come from")
    parser.add_argument("src", help="HF folder or cached model id, or an mmdet checkpoint file")
    parser.add_argument("--output", "-o", required=True, help="the .safetensors file to write")
    parser.add_argument("--config", default=None,
                        help="mmdet only: the mmdet config file (.py), read as literals, never executed")
    parser.add_argument("--trust-config", action="store_true",
                        help="mmdet only: execute --config with mmengine's Config.fromfile (runs its Python)")
    for name, what in (("num-heads", "attention heads nH"), ("num-points", "sampling points P"),
                       ("num-groups", "GroupNorm groups of the pixel decoder")):
        parser.add_argument(f"--{name}", type=int, default=None,
                            help=f"mmdet only, without a config: the {what} (not in the weights)")
    parser.set_defaults(func=run)
    add_compare_parser(subparsers)
    return parser


@contextlib.contextmanager
def hf_offline():
    """HF hub and transformers in offline mode while the block runs (env and loaded modules)."""
    names = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY")
    saved = {k: os.environ.get(k) for k in names}
    os.environ.update({k: "1" for k in names})
    patched = []
    for module_name, attr in (("huggingface_hub.constants", "HF_HUB_OFFLINE"),
                              ("huggingface_hub.constants", "HF_HUB_DISABLE_TELEMETRY")):
        module = sys.modules.get(module_name)
        if module is not None and hasattr(module, attr):
            patched.append((module, attr, getattr(module, attr)))
            setattr(module, attr, True)
    try:
        yield
    finally:
        for module, attr, value in patched:
            setattr(module, attr, value)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def resolve_hf_source(src: str, cache_dir=None) -> Path:
    """A folder holding config.json: `src` itself, or the cached snapshot of the model id `src`."""
    from .strict import ConversionError
    path = Path(src)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ConversionError(f"{src}: a folder without config.json (expected what save_pretrained writes)")
        return path
    if path.exists():
        raise ConversionError(f"{src}: a file; --from hf expects a save_pretrained folder or a cached model id")
    try:
        from huggingface_hub import snapshot_download
        with hf_offline():
            folder = Path(snapshot_download(src, local_files_only=True, cache_dir=cache_dir))
    except ImportError:
        raise ConversionError("--from hf needs transformers: pip install transformers") from None
    except Exception as err:  # noqa: BLE001 - not cached, or not a valid id: one line
        raise ConversionError(f"{src}: not a folder and not in the local HF cache ({type(err).__name__}). "
                              f"Download it first, e.g. `huggingface-cli download {src}`, or pass the "
                              f"folder save_pretrained wrote") from None
    if not (folder / "config.json").is_file():
        raise ConversionError(f"{src}: its cached snapshot {folder} has no config.json")
    return folder


def load_hf_model(src: str, cache_dir=None):
    """A HF `Mask2FormerForUniversalSegmentation` from a folder or the local cache, offline."""
    from .strict import ConversionError
    try:
        from transformers import Mask2FormerForUniversalSegmentation
    except ImportError:
        raise ConversionError("--from hf needs transformers: pip install transformers") from None
    from transformers.utils import logging as hf_logging
    from .strict import key_report
    folder = resolve_hf_source(src, cache_dir)
    verbosity, bar = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()            # its own load report would precede our one line
    hf_logging.disable_progress_bar()
    try:
        with hf_offline():
            model, info = Mask2FormerForUniversalSegmentation.from_pretrained(
                str(folder), local_files_only=True, ignore_mismatched_sizes=True, output_loading_info=True)
    except (OSError, RuntimeError, ValueError) as err:
        raise ConversionError(f"{src}: cannot load the HF model from {folder} ({str(err).splitlines()[0]})") from None
    finally:
        hf_logging.set_verbosity(verbosity)
        if bar:
            hf_logging.enable_progress_bar()
    # HF fills what does not fit with random values; here that is an error naming each key
    missing, mismatched = sorted(info["missing_keys"]), sorted(info["mismatched_keys"])
    if missing or mismatched:
        raise ConversionError(key_report(missing, [], mismatched, f"{folder}: its weights do not fit its "
                                                                  f"config.json"))
    return model.eval()


def run(args) -> int:
    """Carry out `convert` for parsed `args`; returns the exit status (errors raise: `__main__`
    turns them into one line)."""
    from . import from_hf, from_mmdet, read_checkpoint, save_checkpoint
    from .hf import labels_from_hf
    from .strict import ConversionError
    check_output_path(args.output, suffixes=("safetensors",), make_folders=True)
    mmdet_only = [flag for flag, value in (("--config", args.config), ("--trust-config", args.trust_config),
                                           ("--num-heads", args.num_heads), ("--num-points", args.num_points),
                                           ("--num-groups", args.num_groups)) if value]
    if args.source_format == "hf" and mmdet_only:
        raise ValueError(f"{', '.join(mmdet_only)}: for --from mmdet only")
    if args.trust_config and not args.config:
        raise ValueError("--trust-config: there is no --config to trust")
    try:
        if args.source_format == "hf":
            hf_model = load_hf_model(args.src)
            model = from_hf(hf_model)
            labels = labels_from_hf(hf_model.config)
        else:
            state_dict, meta_cfg = read_checkpoint(args.src)
            model = from_mmdet(state_dict, args.config, meta_cfg=meta_cfg, trust_config=args.trust_config,
                               num_heads=args.num_heads, num_points=args.num_points, num_groups=args.num_groups)
            labels = {}
    except ConversionError as err:             # the message names the source
        if args.src in str(err):
            raise
        raise ConversionError(f"{args.src}: {err}") from None
    path = save_checkpoint(model, args.output, **labels)
    n = sum(p.numel() for p in model.state_dict().values())
    c = model.config
    print(f"wrote {path}: {n} numbers, {type(model.backbone).__name__} backbone, C={c.feat_channels}, "
          f"Q={c.num_queries}, K={c.num_classes + 1}, {c.num_encoder_layers}+{c.num_decoder_layers} layers")
    return 0


def add_compare_parser(subparsers) -> argparse.ArgumentParser:
    """Add the `compare` subcommand: convert, then both models stage by stage (`compare.py`)."""
    from .compare import DEFAULT_TOLERANCE, __doc__ as compare_doc
    parser = subparsers.add_parser(
        "compare", help="convert weights and compare every stage with HF or mmdetection",
        description=compare_doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--hf", metavar="DIR", help="a HF model folder (save_pretrained) or cached id")
    source.add_argument("--mmdet", metavar="FILE", help="an mmdetection checkpoint (.pth or .safetensors)")
    parser.add_argument("--config", help="with --mmdet: its mmdet config file (required)")
    parser.add_argument("image", nargs="?", help="an RGB image file (default: matplotlib's sample photo)")
    parser.add_argument("--resize", nargs=2, type=int, default=(512, 512), metavar=("LONG", "SHORT"),
                        help="fit the image in LONG×SHORT (default 512 512)")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                        help=f"relative difference a float stage may have (default {DEFAULT_TOLERANCE})")
    parser.set_defaults(func=run_compare)
    return parser


def run_compare(args) -> int:
    """Carry out `compare`; exit status 0 when every stage agrees, 1 when one differs."""
    from .compare import hf_comparison, image_tensor, mmdet_comparison, render
    images = image_tensor(args.image, tuple(args.resize))
    if args.hf:
        if args.config:
            raise ValueError("--config is for --mmdet only")
        rows, source = hf_comparison(load_hf_model(args.hf), images, args.tolerance), "HF transformers"
    else:
        if not args.config:
            raise ValueError("--mmdet needs --config: the mmdet config file the weights were trained with")
        from .checkpoint import read_state_dict
        from .strict import ConversionError
        state_dict = read_state_dict(args.mmdet)
        try:
            rows = mmdet_comparison(state_dict, args.config, images, args.tolerance)
        except (ValueError, TypeError, ConversionError, RuntimeError, KeyError) as err:
            raise ValueError(f"--mmdet {args.mmdet} with --config {args.config}: {err}") from None
        source = "mmdetection"
    sys.stdout.write(render(rows, source))
    return 0 if all(r["ok"] for r in rows) else 1
