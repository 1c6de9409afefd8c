"""The masked-attention transformer decoder layer (seed step 3.4).

`operation_order = ('cross_attn', 'norm', 'self_attn', 'norm', 'ffn', 'norm')`, post-norm:

    query = norms[0](query + CrossAttn(q=query + query_pos, k=memory_l + pos_l, v=memory_l, attn_mask))
    query = norms[1](query + SelfAttn(q=k=query + query_pos, v=query))
    query = norms[2](query + FFN(query))

Masked attention: `attn_mask (B·nH, Q, H_l·W_l)`, True where the previous prediction says the
pixel is background for that query (sigmoid < 0.5), so a query only attends inside its mask.
"""
from __future__ import annotations

import torch
from torch import nn

from .config import M2FConfig
from .ffn import FFN
from .tap import Tap


class MultiheadAttention(nn.Module):
    """mmcv's `MultiheadAttention` wrapper: positions added to query and key, not to value.

    `query (N_q, B, C)`, `key`/`value (N_k, B, C)` → `identity + attn(...)`: `(N_q, B, C)`.
    """

    def __init__(self, embed_dims: int, num_heads: int):
        super().__init__()
        self.attn = nn.MultiheadAttention(embed_dims, num_heads)

    def forward(self, query, key, value, query_pos=None, key_pos=None, attn_mask=None):
        identity = query
        if query_pos is not None:
            query = query + query_pos
        if key_pos is not None:
            key = key + key_pos
        out = self.attn(query, key, value, attn_mask=attn_mask, need_weights=False)[0]
        return identity + out


class MaskedAttentionDecoderLayer(nn.Module):
    """`query (Q, B, C)`, `key = value (H_l·W_l, B, C)` → `(Q, B, C)`."""

    def __init__(self, config: M2FConfig):
        super().__init__()
        C = config.feat_channels
        self.cross_attn = MultiheadAttention(C, config.num_heads)
        self.self_attn = MultiheadAttention(C, config.num_heads)
        self.ffn = FFN(C, config.decoder_ffn_channels)
        self.norms = nn.ModuleList(nn.LayerNorm(C) for _ in range(3))
        self.tap = Tap()

    def forward(self, query, key, value, query_pos, key_pos, attn_mask, level=None):
        attn_mask = self.tap(attn_mask, "attn_mask", "B*nH Q H_l*W_l", level=level)
        query = self.cross_attn(query, key, value, query_pos, key_pos, attn_mask)   # (Q, B, C)
        query = self.norms[0](query)
        query = self.self_attn(query, query, query, query_pos, query_pos)           # (Q, B, C)
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
