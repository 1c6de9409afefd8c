"""`Mask2FormerHead`: pixel decoder, then Q queries through the masked-attention decoder.

Seed section 3 ("deformable attention的 decoder准备"):

1. (3.2) `query_feat`, `query_embed`: learnable `(Q, C)`, repeated to `(Q, B, C)`.
2. Decoder inputs: each of the L memory maps flattened to `(H_l·W_l, B, C)` plus a level
   embedding, with its own sine positional encoding.
3. (3.3) `forward_head`: a prediction before the first layer and after each layer: the class
   logits `(B, Q, K)`, the mask logits `(B, Q, Hm, Wm)` and the attention mask for the next
   layer, resized to the next level's size.
4. (3.1) Layer i attends to level `i % L`, low to high resolution, cycling.
"""
from __future__ import annotations

import torch
from torch import nn

from .config import M2FConfig
from .pixel_decoder import MSDeformAttnPixelDecoder
from .positional_encoding import SinePositionalEncoding
from .tap import Tap
from .transformer_decoder import (Mask2FormerTransformerDecoder, all_blocked_rows, attention_mask,
                                  reset_all_blocked)


class Mask2FormerHead(nn.Module):
    """The pixel decoder and the masked-attention decoder. `Mask2Former` runs the pixel decoder
    (`self.pixel_decoder(feats)`), then this head's `forward(mask_features, multi_scale_memories)`:
    `cls_pred_list`: 1 + N_dec × `(B, Q, K)` and `mask_pred_list`: 1 + N_dec × `(B, Q, Hm, Wm)`."""

    def __init__(self, config: M2FConfig, in_channels: tuple[int, ...] | None = None):
        super().__init__()
        self.config = config
        C = config.feat_channels
        self.num_heads = config.num_heads
        self.num_levels = config.num_levels                    # L
        self.num_decoder_layers = config.num_decoder_layers
        self.pixel_decoder = MSDeformAttnPixelDecoder(config, in_channels)
        self.transformer_decoder = Mask2FormerTransformerDecoder(config)
        self.decoder_positional_encoding = SinePositionalEncoding(config.num_pos_feats, config.temperature)
        self.query_embed = nn.Embedding(config.num_queries, C)
        self.query_feat = nn.Embedding(config.num_queries, C)
        self.level_embed = nn.Embedding(config.num_levels, C)
        self.cls_embed = nn.Linear(C, config.num_classes + 1)
        self.mask_embed = nn.Sequential(
            nn.Linear(C, C), nn.ReLU(inplace=True),
            nn.Linear(C, C), nn.ReLU(inplace=True),
            nn.Linear(C, config.out_channels))
        self.tap = Tap()
        for p in self.transformer_decoder.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def forward_head(self, decoder_out, mask_features, attn_mask_target_size, index):
        """One prediction from the current queries.

        * `decoder_out`: `(Q, B, C)`; `mask_features`: `(B, C_m, Hm, Wm)`
        * `attn_mask_target_size`: `(H_l, W_l)` of the level the next layer attends to
        * returns `cls_pred (B, Q, K)`, `mask_pred (B, Q, Hm, Wm)`, `attn_mask (B·nH, Q, H_l·W_l)`
        """
        tap, level = self.tap, index % self.num_levels
        decoder_out = self.transformer_decoder.post_norm(decoder_out)      # (Q, B, C)
        decoder_out = decoder_out.transpose(0, 1)                          # (B, Q, C)
        cls_pred = tap(self.cls_embed(decoder_out), "cls_pred", "B Q K", index=index)      # (B, Q, K)
        mask_embed = tap(self.mask_embed(decoder_out), "mask_embed", "B Q C_m", index=index)  # (B, Q, C_m)
        mask_pred = torch.einsum("bqc,bchw->bqhw", mask_embed, mask_features)            # (B, Q, Hm, Wm)
        mask_pred = tap(mask_pred, "mask_pred", "B Q Hm Wm", index=index)
        def resized(logits):   # the seed's attn_mask before flattening: mask logits at the level's size
            return tap(logits, "attn_mask_resized", "B Q H_l W_l", index=index, level=level)

        attn_mask = attention_mask(mask_pred, attn_mask_target_size, self.num_heads, resized)  # (B·nH, Q, H_l·W_l)
        attn_mask = tap(attn_mask, "attn_mask", "B*nH Q H_l*W_l", index=index, level=level)
        return cls_pred, mask_pred, attn_mask

    def decoder_inputs(self, multi_scale_memories):
        """Seed dec 3.1: each memory map `(B, C, H_l, W_l)` → keys/values `(H_l·W_l, B, C)` plus
        the level embedding, and their sine positional encodings `(H_l·W_l, B, C)`."""
        tap = self.tap
        decoder_inputs, decoder_positional_encodings = [], []
        for i, memory in enumerate(multi_scale_memories):                  # low to high resolution
            batch_size = memory.shape[0]
            decoder_input = memory.flatten(2).permute(2, 0, 1)                        # (H_l·W_l, B, C)
            decoder_input = decoder_input + self.level_embed.weight[i].view(1, 1, -1)  # (H_l·W_l, B, C)
            mask = decoder_input.new_zeros((batch_size,) + memory.shape[-2:], dtype=torch.bool)  # (B, H_l, W_l)
            decoder_positional_encoding = self.decoder_positional_encoding(mask, decoder_input.dtype)  # (B, C, H_l, W_l)
            decoder_positional_encoding = decoder_positional_encoding.flatten(2).permute(2, 0, 1)  # (H_l·W_l, B, C)
            decoder_inputs.append(tap(decoder_input, "decoder_inputs", "H_l*W_l B C", index=i, level=i))
            decoder_positional_encodings.append(tap(decoder_positional_encoding, "decoder_positional_encodings",
                                                    "H_l*W_l B C", index=i, level=i))
        return decoder_inputs, decoder_positional_encodings

    def forward(self, mask_features: torch.Tensor, multi_scale_memories: list[torch.Tensor]):
        """`mask_features (B, C_m, Hm, Wm)`, `multi_scale_memories` L × `(B, C, H_l, W_l)` →
        `cls_pred_list`, `mask_pred_list`: one prediction before the first layer and one after each."""
        tap = self.tap
        batch_size = mask_features.shape[0]
        decoder_inputs, decoder_positional_encodings = self.decoder_inputs(multi_scale_memories)
        level_sizes = [memory.shape[-2:] for memory in multi_scale_memories]       # L × (H_l, W_l)
        # dec 3.2: learnable queries, (Q, C) -> (Q, 1, C) -> (Q, B, C)
        query_feat = self.query_feat.weight.unsqueeze(1).repeat((1, batch_size, 1))  # (Q, B, C)
        query_embed = self.query_embed.weight.unsqueeze(1).repeat((1, batch_size, 1))  # (Q, B, C)
        query_feat = tap(query_feat, "query_feat", "Q B C")
        query_embed = tap(query_embed, "query_embed", "Q B C")

        cls_pred_list, mask_pred_list = [], []
        # prediction 0, before any layer; its attention mask has the size of level 0 (32×32 at
        # the seed, whose comment says 256×256)
        cls_pred, mask_pred, attn_mask = self.forward_head(query_feat, mask_features, level_sizes[0], index=0)
        cls_pred_list.append(cls_pred)
        mask_pred_list.append(mask_pred)
        for i in range(self.num_decoder_layers):
            level_idx = i % self.num_levels                               # dec 3.1: the level cycle
            all_blocked = tap(all_blocked_rows(attn_mask), "all_blocked", "B*nH Q", index=i)  # (B·nH, Q)
            if self.config.reset_all_blocked:                             # ablation switch, on by default
                attn_mask = reset_all_blocked(attn_mask, all_blocked)     # (B·nH, Q, H_l·W_l)
            if not self.config.masked_attention:                          # ablation: plain cross-attention
                attn_mask = None
            layer = self.transformer_decoder.layers[i]
            query_feat = layer(query_feat, decoder_inputs[level_idx], decoder_inputs[level_idx],
                               query_embed, decoder_positional_encodings[level_idx], attn_mask,
                               level=level_idx)                               # (Q, B, C)
            next_size = level_sizes[(i + 1) % self.num_levels]
            cls_pred, mask_pred, attn_mask = self.forward_head(query_feat, mask_features, next_size,
                                                               index=i + 1)
            cls_pred_list.append(cls_pred)
            mask_pred_list.append(mask_pred)
        return cls_pred_list, mask_pred_list
