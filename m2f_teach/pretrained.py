"""The shipped checkpoint: a small Mask2Former trained on synthetic shapes, no download needed.

    model = load_pretrained()              # eval mode, CPU
    cls_pred_list, mask_pred_list = model(images)   # images (B, 3, 128, 128), normalised

`M2FConfig.shapes()` is the preset it was trained at: the seed's structure (3 levels, 8 heads,
4 points, 6 encoder + 9 decoder layers) at `M2FConfig.small()`'s width, 128×128 images,
20 queries, the 5 shape classes (K = 6), and BatchNorm trained (not frozen) since it starts
from scratch; its data seeds are `m2f_teach.data.TRAIN_SEED`, `VAL_SEED` and `TEST_SEED`.
`weights/shapes_small.json` holds the command that trained it, its time and its held-out scores.

Notebooks pick their model with one call, `load_model()`: the shipped checkpoint when it is
installed, else random weights with the same configuration (`load_model(pretrained=False)`
forces those).
"""
from __future__ import annotations

import hashlib
import json
from importlib import resources

import torch

from .data.shapes import CLASS_NAMES
from .model import M2FConfig, Mask2Former

WEIGHTS_NAME = "shapes_small"


def class_names() -> tuple[str, ...]:
    """Names of classes 0..K−2; class K−1 is no-object."""
    return CLASS_NAMES


def _weights_file(suffix: str):
    return resources.files("m2f_teach").joinpath("weights", WEIGHTS_NAME + suffix)


def checkpoint_info() -> dict:
    """The json beside the checkpoint: config, command, training time, held-out metrics."""
    path = _weights_file(".json")
    if not path.is_file():
        raise FileNotFoundError(_missing_message(".json"))
    return json.loads(path.read_text())


def _missing_message(suffix):
    return (f"the shipped checkpoint m2f_teach/weights/{WEIGHTS_NAME}{suffix} is missing from this "
            f"installation; reinstall the package, or train a model with `python -m m2f_teach train "
            f"--out artifacts/{WEIGHTS_NAME}.safetensors` (see the README) and load it with "
            f"`m2f_teach.convert.load_checkpoint`")


def load_pretrained(device="cpu") -> Mask2Former:
    """`Mask2Former(M2FConfig.shapes())` with the shipped weights, in eval mode on `device`."""
    from safetensors.torch import load_file

    from .convert.checkpoint import read_safetensors
    from .convert.strict import load_strict

    path = _weights_file(".safetensors")
    if not path.is_file():
        raise FileNotFoundError(_missing_message(".safetensors"))
    model = Mask2Former(M2FConfig.shapes())
    with resources.as_file(path) as file:
        check_sha256(file, checkpoint_info().get("sha256"))
        state_dict = read_safetensors(file, "the shipped checkpoint", device=str(device))
    load_strict(model, state_dict, f"the shipped checkpoint {path}")
    return model.to(device).eval()


def sha256_of(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_sha256(path, expected: str | None):
    """The shipped weights must be the bytes their json names: a flipped byte is an error, not NaNs."""
    if not expected:
        raise ValueError(f"{_weights_file('.json')} has no sha256 of the shipped weights")
    actual = sha256_of(path)
    if actual != expected:
        raise ValueError(f"the shipped checkpoint {path} is damaged: sha256 {actual[:16]}..., expected "
                         f"{expected[:16]}... (from {WEIGHTS_NAME}.json); reinstall the package")


def load_model(pretrained: bool = True, config: M2FConfig | None = None, seed: int = 0,
               verbose: bool = True):
    """`(model, weights)`: the eval-mode model and `"pretrained"` or `"random"`.

    * `pretrained`: try `load_pretrained()` first.
    * `config`: the configuration of the random model (default: the checkpoint's,
      `M2FConfig.shapes(batch_size=1)`).
    * `seed`: `torch.manual_seed` for the random initialisation.
    """
    if pretrained and config is None:
        try:
            model = load_pretrained()
            if verbose:
                print("Weights: the shipped checkpoint (trained on synthetic shapes).")
            return model, "pretrained"
        except FileNotFoundError as error:
            if verbose:
                print(f"Weights: RANDOM. No trained checkpoint is installed yet ({type(error).__name__}); "
                      f"the model below has the checkpoint's configuration and random weights.")
    elif verbose:
        print("Weights: RANDOM (asked for).")
    return random_model(config if config is not None else M2FConfig.shapes(batch_size=1), seed), "random"


def random_model(config: M2FConfig | None = None, seed: int = 0) -> Mask2Former:
    """A random-init eval-mode model (default `M2FConfig.small(batch_size=1)`), seeded."""
    torch.manual_seed(seed)
    return Mask2Former(config if config is not None else M2FConfig.small(batch_size=1)).eval()
