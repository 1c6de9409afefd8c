"""Which model a notebook looks at: the shipped checkpoint when there is one, else random weights.

    model, weights = load_model()          # weights is "pretrained" or "random"

The switch is this one call: `load_model(pretrained=False)` forces random weights, and with
`pretrained=True` (the default) the shipped checkpoint is used as soon as it is installed
(`m2f_teach.pretrained.load_pretrained`). The random model has the checkpoint's exact
configuration, so every shape, table and view is the same either way; only what the pictures
mean changes, and `weights_note` says so plainly.
"""
from __future__ import annotations

import torch

from ..config import M2FConfig
from ..model import Mask2Former

RANDOM_NOTES = {
    "deformable": "Random weights: every sampling_offsets weight starts at zero, so every query "
                  "samples the same initial ring around its reference point, and every attention "
                  "weight is 1/(L·P). The geometry is right; what the points look at means nothing yet.",
    "decoder": "Random weights: the mask logits are noise, so which pixels a query may attend to "
               "means nothing yet (the mechanics are right). Rows that come out all blocked are reset "
               "to attend everywhere; the counts below say how many.",
    "predictions": "Random weights: the class scores are close to uniform and the masks are noise, so "
                   "the instances below mean nothing; they show how logits become masks.",
}


def load_model(pretrained: bool = True, config: M2FConfig | None = None, seed: int = 0,
               verbose: bool = True):
    """`(model, weights)`: the eval-mode model and `"pretrained"` or `"random"`.

    * `pretrained`: try `m2f_teach.pretrained.load_pretrained()` first.
    * `config`: the configuration of the random model (default: the checkpoint's, `shapes_config()`).
    * `seed`: `torch.manual_seed` for the random initialisation.
    """
    if pretrained and config is None:
        try:
            from ..pretrained import load_pretrained
            model = load_pretrained()
            if verbose:
                print("Weights: the shipped checkpoint (trained on synthetic shapes).")
            return model, "pretrained"
        except (ImportError, FileNotFoundError) as error:
            reason = type(error).__name__
            if verbose:
                print(f"Weights: RANDOM. No trained checkpoint is installed yet ({reason}); "
                      f"the model below has the checkpoint's configuration and random weights.")
    elif verbose:
        print("Weights: RANDOM (asked for).")
    if config is None:
        try:
            from ..pretrained import shapes_config
            config = shapes_config(batch_size=1)
        except ImportError:
            config = M2FConfig.small(batch_size=1)
    torch.manual_seed(seed)
    return Mask2Former(config).eval(), "random"


def weights_note(weights: str, topic: str) -> None:
    """Print what random weights mean for a view (nothing when the weights are trained)."""
    if weights == "random":
        print(RANDOM_NOTES[topic])
    else:
        print("Trained weights: the picture below shows what the checkpoint learned.")


def random_model(config: M2FConfig | None = None, seed: int = 0) -> Mask2Former:
    """A random-init eval-mode model (default `M2FConfig.small(batch_size=1)`), seeded."""
    torch.manual_seed(seed)
    return Mask2Former(config if config is not None else M2FConfig.small(batch_size=1)).eval()
