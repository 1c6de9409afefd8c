"""The training path: point sampling, Hungarian matching, losses and the training loop.

The criterion and the matcher load on first use: the matcher needs scipy, which a command that
only builds its parser (`python -m m2f_teach table` registers `train`) should not wait for.
Point sampling (`point_sampling.py`: `point_sample` and the uncertain points) needs torch alone
and is imported at once.
"""
import importlib

from .point_sampling import get_uncertain_point_coords_with_randomness, point_sample

_HOMES = {"Mask2FormerCriterion": "criterion", "HungarianMatcher": "matcher"}

__all__ = ["Mask2FormerCriterion", "HungarianMatcher", "point_sample",
           "get_uncertain_point_coords_with_randomness"]


def __getattr__(name):
    if name in _HOMES:
        return getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
