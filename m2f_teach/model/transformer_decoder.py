"""The masked-attention transformer decoder layer (seed step 3.4).

`operation_order = ('cross_attn', 'norm', 'self_attn', 'norm', 'ffn', 'norm')`, post-norm:

    query = norms[0](query + CrossAttn(q=query + query_pos, k=memory_l + pos_l, v=memory_l, attn_mask))
    query = norms[1](query + SelfAttn(q=k=query + query_pos, v=query))
    query = norms[2](query + FFN(query))

Masked attention (the paper's Eq. 2): `attn_mask (B·nH, Q, H_l·W_l)`, True where the previous
prediction says the pixel is background for that query (sigmoid < 0.5), so a query only attends
inside its mask. `attention_mask` builds it from a prediction's mask logits and
`reset_all_blocked` lets a query whose mask is empty attend everywhere; the head calls both.

This is ordinary multi-head attention (`nn.MultiheadAttention`): every query scores every pixel
of the level with `q·kᵀ/√D`, not a few sampled points as in the encoder's deformable attention.
While a trace records, each attention also taps what it attends to:
`attn_scores` (q·kᵀ/√D; cross-attention only), `attn_logits` (the softmax's input, −inf where
masked) and `attn_weights` (after the softmax), per head,
`(B, nH, Q, H_l·W_l)` for cross-attention and `(B, nH, Q, Q)` for self-attention. They are
computed only when the trace keeps their values (`tap.keeps`); otherwise the trace gets their
shapes from `meta` stand-ins, and a plain forward never computes them.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import M2FConfig
from .ffn import FFN
from .tap import Tap


def attention_mask(mask_pred: torch.Tensor, target_size: tuple[int, int], num_heads: int,
                   tap=lambda resized: resized) -> torch.Tensor:
    """Which pixels of a level each query may NOT attend to: `mask_pred (B, Q, Hm, Wm)` logits →
    `attn_mask (B·nH, Q, H_l·W_l)` bool, True = blocked.

    Resize the mask logits to the level the next layer attends to, threshold (sigmoid < 0.5 is
    background), repeat over the heads. The seed repeats first and thresholds after; thresholding
    first gives the same mask with nH times less work. No gradient flows through the mask.
    `tap` sees the resized logits (the caller's `Tap`).
    """
    attn_mask = F.interpolate(mask_pred, target_size, mode="bilinear", align_corners=False)  # (B, Q, H_l, W_l)
    attn_mask = tap(attn_mask)
    attn_mask = attn_mask.sigmoid() < 0.5                                     # (B, Q, H_l, W_l)
    attn_mask = attn_mask.flatten(2)                                          # (B, Q, H_l·W_l)
    attn_mask = attn_mask.unsqueeze(1).repeat((1, num_heads, 1, 1))           # (B, nH, Q, H_l·W_l)
    return attn_mask.flatten(0, 1).detach()                                   # (B·nH, Q, H_l·W_l)


def all_blocked_rows(attn_mask: torch.Tensor) -> torch.Tensor:
    """`attn_mask (B·nH, Q, H_l·W_l)` → `(B·nH, Q)` bool: rows in which every pixel is blocked."""
    return attn_mask.all(dim=-1)                                              # (B·nH, Q)


def reset_all_blocked(attn_mask: torch.Tensor, all_blocked: torch.Tensor) -> torch.Tensor:
    """A query whose mask is empty may attend everywhere instead: a row of −inf everywhere would
    make its softmax 0/0 = NaN. The seed writes

        attn_mask[torch.where(attn_mask.sum(-1) == attn_mask.shape[-1])] = False

    this form computes the same without data-dependent indexing, so it also runs on `meta`.
    `attn_mask (B·nH, Q, H_l·W_l)`, `all_blocked (B·nH, Q)` → `(B·nH, Q, H_l·W_l)`.
    """
    return attn_mask & ~all_blocked[..., None]                                # (B·nH, Q, H_l·W_l)


def attention_scores(attn: nn.MultiheadAttention, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
    """What `attn` scores before any mask, per head: `q·kᵀ/√D`.

    `query (N_q, B, C)` and `key (N_k, B, C)`, their positions already added → `(B, nH, N_q, N_k)`.
    The value never enters the scores; it is only summed with the softmax's weights.
    """
    N_q, B, C = query.shape
    nH = attn.num_heads
    D = C // nH
    w_q, w_k, _ = attn.in_proj_weight.chunk(3)                                 # 3 × (C, C)
    b_q, b_k, _ = attn.in_proj_bias.chunk(3)                                   # 3 × (C,)
    q = F.linear(query, w_q, b_q).view(N_q, B * nH, D).transpose(0, 1)        # (B·nH, N_q, D)
    k = F.linear(key, w_k, b_k).view(-1, B * nH, D).transpose(0, 1)           # (B·nH, N_k, D)
    # q·kᵀ / √D, written as torch does it (q scaled first), so that the softmax of these scores
    # is bit for bit the weights nn.MultiheadAttention returns
    scores = torch.bmm(q * math.sqrt(1.0 / D), k.transpose(1, 2))             # (B·nH, N_q, N_k)
    return scores.view(B, nH, N_q, -1)                                        # (B, nH, N_q, N_k)


def masked_logits(scores: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
    """The softmax's input: `scores (B, nH, N_q, N_k)` with −inf where `attn_mask (B·nH, N_q, N_k)`
    is True, so those keys get weight exp(−inf) = 0."""
    return scores.masked_fill(attn_mask.view(scores.shape), float("-inf"))   # (B, nH, N_q, N_k)


class MultiheadAttention(nn.Module):
    """mmcv's `MultiheadAttention` wrapper: positions added to query and key, not to value.

    `query (N_q, B, C)`, `key`/`value (N_k, B, C)` → `identity + attn(...)`: `(N_q, B, C)`.
    `key_letters` is N_k in the glossary's letters (`"H_l*W_l"` for cross-attention, `"Q"` for
    self-attention), for the symbolic shape of the recorded weights.
    """

    def __init__(self, embed_dims: int, num_heads: int, key_letters: str = "Q"):
        super().__init__()
        self.attn = nn.MultiheadAttention(embed_dims, num_heads)
        self.key_letters = key_letters
        self.tap = Tap()

    def forward(self, query, key, value, query_pos=None, key_pos=None, attn_mask=None, level=None):
        identity = query
        if query_pos is not None:
            query = query + query_pos
        if key_pos is not None:
            key = key + key_pos
        out = self.attn(query, key, value, attn_mask=attn_mask, need_weights=False)[0]  # (N_q, B, C)
        if self.tap.recording:             # only while a trace looks; `out` is computed as without it
            self.record_weights(query, key, attn_mask, level)
        return identity + out

    def record_weights(self, query, key, attn_mask=None, level=None):
        """Tap `attn_scores` (before the mask; cross-attention only), `attn_logits` (−inf where
        masked) and `attn_weights` (after the softmax), each `(B, nH, Q, N_k)`. The weights are bit
        for bit what `nn.MultiheadAttention` returns with `need_weights=True`, per head. When the
        trace keeps none of them, `meta` stand-ins of their shape are tapped instead (no FLOP)."""
        names = ("attn_scores", "attn_logits", "attn_weights") if attn_mask is not None else \
            ("attn_logits", "attn_weights")
        symbolic = f"B nH Q {self.key_letters}"
        if not any(self.tap.keeps(name) for name in names):
            N_q, B, _ = query.shape
            stand_in = torch.empty((B, self.attn.num_heads, N_q, key.shape[0]), device="meta")  # (B, nH, Q, N_k)
            for name in names:
                self.tap(stand_in, name, symbolic, level=level)
            return
        logits = attention_scores(self.attn, query, key)                      # (B, nH, Q, N_k)
        if attn_mask is not None:
            self.tap(logits, "attn_scores", symbolic, level=level)
            logits = masked_logits(logits, attn_mask)                         # (B, nH, Q, N_k)
        self.tap(logits, "attn_logits", symbolic, level=level)
        self.tap(logits.softmax(-1), "attn_weights", symbolic, level=level)  # (B, nH, Q, N_k)


class MaskedAttentionDecoderLayer(nn.Module):
    """`query (Q, B, C)`, `key = value (H_l·W_l, B, C)` → `(Q, B, C)`."""

    def __init__(self, config: M2FConfig):
        super().__init__()
        C = config.feat_channels
        self.cross_attn = MultiheadAttention(C, config.num_heads, key_letters="H_l*W_l")
        self.self_attn = MultiheadAttention(C, config.num_heads, key_letters="Q")
        self.ffn = FFN(C, config.decoder_ffn_channels)
        self.norms = nn.ModuleList(nn.LayerNorm(C) for _ in range(3))
        self.tap = Tap()

    def forward(self, query, key, value, query_pos, key_pos, attn_mask, level=None):
        if attn_mask is not None:          # None only with `masked_attention=False` (an ablation)
            attn_mask = self.tap(attn_mask, "attn_mask", "B*nH Q H_l*W_l", level=level)
        query = self.cross_attn(query, key, value, query_pos, key_pos, attn_mask, level)  # (Q, B, C)
        query = self.norms[0](query)
        query = self.self_attn(query, query, query, query_pos, query_pos)           # (Q, B, C), no mask
        query = self.norms[1](query)
        query = self.norms[2](self.ffn(query))                                      # (Q, B, C)
        return self.tap(query, "query", "Q B C")


class Mask2FormerTransformerDecoder(nn.Module):
    """`num_decoder_layers` layers and the final LayerNorm `post_norm` used by every head call."""

    def __init__(self, config: M2FConfig):
        super().__init__()
        self.layers = nn.ModuleList(MaskedAttentionDecoderLayer(config)
                                    for _ in range(config.num_decoder_layers))
        self.post_norm = nn.LayerNorm(config.feat_channels)
