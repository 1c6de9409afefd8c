"""Strict loading: every key of a converted state dict lands, or the error names each one.

A converter renames keys; a rename that is wrong shows up as a key the model does not have
(*unexpected*) and a parameter nobody filled (*missing*). `load_strict` lists both, by name,
plus any shape that does not match, and loads nothing unless all three lists are empty. A
value `load_state_dict` would take silently is refused too, by key: an integer tensor where the
model holds floats (it would be cast), a NaN or an infinity.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn


class ConversionError(ValueError):
    """A checkpoint that does not fit the model: the message lists the keys by name."""


def key_report(missing, unexpected, mismatched, source: str, limit: int = 40) -> str:
    """A readable list of what did not fit; `mismatched` holds `(key, got, expected)`."""
    lines = [f"cannot load {source}:"]
    for title, items in (("missing keys (in the model, not in the checkpoint)", missing),
                         ("unexpected keys (in the checkpoint, not in the model)", unexpected)):
        if items:
            lines.append(f"  {len(items)} {title}:")
            lines += [f"    {k}" for k in items[:limit]]
            if len(items) > limit:
                lines.append(f"    ... and {len(items) - limit} more")
    if mismatched:
        lines.append(f"  {len(mismatched)} shape mismatches (checkpoint vs model):")
        lines += [f"    {k}: {tuple(got)} vs {tuple(want)}" for k, got, want in mismatched[:limit]]
    return "\n".join(lines)


def check_keys(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "checkpoint"):
    """Raise `ConversionError` unless `state_dict` has exactly the model's keys and shapes."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [(k, state_dict[k].shape, expected[k].shape) for k in expected
                  if k in state_dict and tuple(state_dict[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or mismatched:
        raise ConversionError(key_report(missing, unexpected, mismatched, source))


def check_values(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "checkpoint"):
    """Raise `ConversionError` naming the first key whose tensor is not floating point where the
    model's is, or holds NaN or infinite values (keys as `check_keys` left them)."""
    for key, want in model.state_dict().items():
        got = state_dict[key]
        if want.is_floating_point() and not got.is_floating_point():
            raise ConversionError(f"cannot load {source}: {key} is {str(got.dtype).replace('torch.', '')}, "
                                  f"expected floating-point weights (a cast would hide a wrong file)")
        if got.is_floating_point() and got.device.type != "meta" and not torch.isfinite(got).all():
            bad = int((~torch.isfinite(got)).sum())
            raise ConversionError(f"cannot load {source}: {key} holds {bad} NaN or infinite values "
                                  f"(of {got.numel()}): the weights are damaged or come from a diverged run")


def load_strict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "checkpoint"):
    """`check_keys` and `check_values`, then `load_state_dict(strict=True)`; returns the model."""
    check_keys(model, state_dict, source)
    check_values(model, state_dict, source)
    model.load_state_dict(dict(state_dict), strict=True)
    return model
