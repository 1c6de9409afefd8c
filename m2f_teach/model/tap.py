"""`Tap`: an identity module that names a tensor, so forward hooks can record it.

The model passes every intermediate the seed note talks about through a `Tap`:

    sampling_offsets = self.tap(sampling_offsets, "sampling_offsets", "B S_q nH L P 2")

The call returns its input unchanged (no copy, no cost); a forward hook on the tap sees the
tensor, its name, its symbolic shape in the glossary letters, and the level or layer index.
`m2f_teach.tracing` registers those hooks; without them a tap does nothing. A tensor that
exists only to be looked at (the decoder's attention weights) is computed only when
`tap.keeps(name)`: a trace is recording and keeps that name's values. A plain forward pays
nothing for it, and a trace that keeps only shapes records its shape from a `meta` stand-in.
"""
from __future__ import annotations

import torch
from torch import nn


class Tap(nn.Module):
    """Identity with a name: `tap(x, name, symbolic, index=None, level=None) -> x`.

    * `name`: the seed's variable name (`feat_projected`, `attn_mask`, ...).
    * `symbolic`: the shape in glossary letters, one token per dimension (`"S B C"`,
      `"B*nH Q H_l*W_l"`); tokens are checked against the concrete shape when traced.
    * `index`: which loop iteration (level i, prediction i); it becomes part of the name.
    * `level`: which encoder level the tensor belongs to, so `H_l, W_l` can be checked.
    * `sizes`: values of extra letters the symbolic shape uses (`{"N_gt": 3}`).
    """

    keeps_values = None   # set by a trace while it records: `(name, index) -> bool`

    @property
    def recording(self) -> bool:
        """True while forward hooks (a trace) are registered on this tap."""
        return bool(self._forward_hooks)

    def keeps(self, name: str, index: int | None = None) -> bool:
        """True while a trace records this tap and keeps the values of `name`."""
        return self.recording and (self.keeps_values is None or self.keeps_values(name, index))

    def forward(self, x: torch.Tensor, name: str, symbolic: str, index: int | None = None,
                level: int | None = None, sizes: dict | None = None) -> torch.Tensor:
        return x

    def __call__(self, x, name, symbolic, index=None, level=None, sizes=None):
        # pass everything by keyword so hooks registered with `with_kwargs=True` see it
        return super().__call__(x, name=name, symbolic=symbolic, index=index, level=level,
                                sizes=sizes)
