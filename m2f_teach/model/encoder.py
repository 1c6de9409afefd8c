"""The pixel decoder's encoder: six deformable self-attention layers over all S tokens.

Seed step 3.3/3.4. `operation_order = ('self_attn', 'norm', 'ffn', 'norm')` (post-norm):

    query = norms[0](query + MSDeformAttn(query + pos))
    query = norms[1](query + FFN(query))

The output `memory` has the shape of the input: `(S, B, C)`, (21504, 2, 256) at the seed.
"""
from __future__ import annotations

from torch import nn

from .config import M2FConfig
from .deformable_attention import MultiScaleDeformableAttention
from .ffn import FFN
from .tap import Tap


class DeformableEncoderLayer(nn.Module):
    """`query (S, B, C)` → `(S, B, C)`."""

    def __init__(self, config: M2FConfig):
        super().__init__()
        C = config.feat_channels
        self.self_attn = MultiScaleDeformableAttention(C, config.num_heads, config.num_levels,
                                                       config.num_points)
        self.ffn = FFN(C, config.encoder_ffn_channels)
        self.norms = nn.ModuleList([nn.LayerNorm(C), nn.LayerNorm(C)])
        self.tap = Tap()

    def forward(self, query, query_pos, reference_points, spatial_shapes, level_start_index,
                key_padding_mask=None):
        # key = value = query: the encoder is self-attention over all S tokens
        query = self.self_attn(query, query_pos, reference_points, spatial_shapes, level_start_index,
                               key_padding_mask=key_padding_mask)        # (S, B, C)
        query = self.norms[0](query)
        query = self.norms[1](self.ffn(query))                             # (S, B, C)
        return self.tap(query, "output", "S B C")


class DeformableEncoder(nn.Module):
    """A stack of `num_encoder_layers` `DeformableEncoderLayer`s."""

    def __init__(self, config: M2FConfig):
        super().__init__()
        self.layers = nn.ModuleList(DeformableEncoderLayer(config)
                                    for _ in range(config.num_encoder_layers))

    def forward(self, query, query_pos, reference_points, spatial_shapes, level_start_index,
                key_padding_mask=None):
        """`query`, `query_pos (S, B, C)`; `reference_points (B, S, L, 2)`; `spatial_shapes`
        `[(H_l, W_l)] * L` and `level_start_index` `[start_l] * L` ints → `memory (S, B, C)`."""
        for layer in self.layers:
            query = layer(query, query_pos, reference_points, spatial_shapes, level_start_index,
                          key_padding_mask)                              # (S, B, C)
        return query
