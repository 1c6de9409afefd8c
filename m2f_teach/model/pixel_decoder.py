"""`MSDeformAttnPixelDecoder`: multi-scale deformable encoder + FPN to the mask features.

Seed step 2: `mask_features, multi_scale_memories = self.pixel_decoder(feats)`.

1. (2.1) For the L lowest-resolution maps, low to high: project to C with a 1×1 conv +
   GroupNorm, build the sine positional encoding + level embedding and the reference grid,
   flatten each to `(H_l·W_l, B, C)`.
2. (2.2) Concatenate to S tokens; `spatial_shapes`, `level_start_index`, `valid_ratios`.
3. (3.3) Six deformable encoder layers → `memory (S, B, C)`.
4. (3.5) Split `memory` back into L maps `(B, C, H_l, W_l)`.
5. (3.6) FPN: add the lateral 1×1 of the stride-4 map to the upsampled last map, 3×3 conv,
   then a 1×1 conv → `mask_features (B, C, H/4, W/4)`.

Ablation `deformable_encoder=False` (off by default): an FPN-only pixel decoder, the speed-up
asked about in Mask2Former issue #1. Step 3 is skipped: the projected maps of step 1,
concatenated to `(S, B, C)`, are the `memory` that step 4 splits and step 5 fuses, exactly as
the encoder's output would be. No encoder is built (no `encoder.*` weights), and neither is
what only the encoder uses: the level embedding (no `level_encoding.weight`), the positional
encoding, the padding masks, the reference points and the valid ratios.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import M2FConfig
from .deformable_attention import get_level_start_index
from .encoder import DeformableEncoder
from .positional_encoding import SinePositionalEncoding
from .reference_points import normalised_reference_points
from .tap import Tap


def conv_gn(in_channels, out_channels, kernel_size, num_groups, bias, relu=False):
    """mmcv's `ConvModule` with GroupNorm: names `conv`, `gn` (and ReLU when asked)."""
    module = nn.Sequential()
    module.add_module("conv", nn.Conv2d(in_channels, out_channels, kernel_size,
                                        padding=kernel_size // 2, bias=bias))
    module.add_module("gn", nn.GroupNorm(num_groups, out_channels))
    if relu:
        module.add_module("activate", nn.ReLU(inplace=True))
    return module


class MSDeformAttnPixelDecoder(nn.Module):
    """`feats`: list of `(B, C_i, H/s_i, W/s_i)` at strides (4, 8, 16, 32) →
    `mask_features (B, C_m, Hm, Wm)` and `multi_scale_memories`: L maps `(B, C, H_l, W_l)`.

    With `config.deformable_encoder=False` (an ablation) it is FPN only: `encoder`,
    `positional_encoding` and `level_encoding` are None and the projected maps skip step 3.3.

    `in_channels`: the backbone's `channels`, C_i per map (default: the config's ResNet's)."""

    def __init__(self, config: M2FConfig, in_channels: tuple[int, ...] | None = None):
        super().__init__()
        self.config = config
        C, G = config.feat_channels, config.num_groups
        in_channels = tuple(in_channels) if in_channels is not None else config.backbone_channels
        self.num_input_levels = len(in_channels)
        self.num_levels = config.num_levels                    # L, the encoder's levels
        self.strides = config.strides
        # input_convs[i] projects level i, low resolution first: 2048 → C, 1024 → C, 512 → C
        self.input_convs = nn.ModuleList(
            conv_gn(in_channels[self.num_input_levels - i - 1], C, 1, G, bias=True)
            for i in range(self.num_levels))
        if config.deformable_encoder:
            self.encoder = DeformableEncoder(config)
            # the seed (and mmdet) spell it `postional_encoding`; it holds no weights, so the
            # right spelling changes no state-dict key
            self.positional_encoding = SinePositionalEncoding(config.num_pos_feats, config.temperature)
            self.level_encoding = nn.Embedding(self.num_levels, C)
        else:   # ablation: FPN only; positions and level embeddings only serve the encoder
            self.encoder = self.positional_encoding = self.level_encoding = None
        # FPN on the maps the encoder did not see (stride 4 only, at the seed)
        self.fpn_levels = list(range(self.num_input_levels - self.num_levels - 1, -1, -1))
        self.lateral_convs = nn.ModuleList()
        self.output_convs = nn.ModuleList()
        for i in self.fpn_levels:
            self.lateral_convs.append(conv_gn(in_channels[i], C, 1, G, bias=False))
            self.output_convs.append(conv_gn(C, C, 3, G, bias=False, relu=True))
        self.mask_feature = nn.Conv2d(C, config.out_channels, 1)
        self.tap = Tap()
        self.init_weights()

    @torch.no_grad()
    def init_weights(self):
        for conv in self.input_convs:
            nn.init.xavier_uniform_(conv.conv.weight)
            nn.init.zeros_(conv.conv.bias)
        for conv in [*self.lateral_convs, *self.output_convs]:
            nn.init.kaiming_uniform_(conv.conv.weight, a=1)     # caffe2_xavier_init
        nn.init.kaiming_uniform_(self.mask_feature.weight, a=1)
        nn.init.zeros_(self.mask_feature.bias)
        if self.encoder is None:   # ablation: FPN only, nothing more to initialise
            return
        nn.init.normal_(self.level_encoding.weight)
        for layer in self.encoder.layers:
            for name, p in layer.named_parameters():
                if p.dim() > 1 and "self_attn" not in name:
                    nn.init.xavier_uniform_(p)

    def forward(self, feats: list[torch.Tensor]):
        tap = self.tap
        batch_size = feats[0].shape[0]
        encoder_input_list, padding_mask_list = [], []
        level_positional_encoding_list, reference_points_list, spatial_shapes = [], [], []
        # 2.1 loop over the levels, low to high resolution: 32² -> 64² -> 128² at the seed
        for i in range(self.num_levels):
            level_idx = self.num_input_levels - i - 1
            feat = feats[level_idx]                                          # (B, C_i, H_l, W_l)
            feat_projected = self.input_convs[i](feat)                       # (B, C, H_l, W_l)
            tap(feat_projected, "feat_projected", "B C H_l W_l", index=i, level=i)
            h, w = feat.shape[-2:]
            spatial_shapes.append((int(h), int(w)))
            if self.encoder is None:   # ablation (deformable_encoder=False): no positions needed
                # (B, C, H_l, W_l) -> (B, C, H_l·W_l) -> (H_l·W_l, B, C)
                encoder_input_list.append(feat_projected.flatten(2).permute(2, 0, 1))  # (H_l·W_l, B, C)
                continue
            # no padding: every pixel is real
            padding_mask_resized = feat.new_zeros((batch_size, h, w), dtype=torch.bool)  # (B, H_l, W_l)
            tap(padding_mask_resized, "padding_mask_resized", "B H_l W_l", index=i, level=i)
            pos_embed = self.positional_encoding(padding_mask_resized, feat_projected.dtype)  # (B, C, H_l, W_l)
            tap(pos_embed, "pos_embed", "B C H_l W_l", index=i, level=i)
            level_embed = self.level_encoding.weight[i]                      # (C,)
            level_pos_embed = level_embed.view(1, -1, 1, 1) + pos_embed      # (B, C, H_l, W_l)
            tap(level_pos_embed, "level_pos_embed", "B C H_l W_l", index=i, level=i)
            reference_points = normalised_reference_points((h, w), self.strides[level_idx],
                                                           device=feat.device)  # (H_l·W_l, 2)
            tap(reference_points, "reference_points", "H_l*W_l 2", index=i, level=i)
            # (B, C, H_l, W_l) -> (B, C, H_l·W_l) -> (H_l·W_l, B, C)
            feat_projected = feat_projected.flatten(2).permute(2, 0, 1)      # (H_l·W_l, B, C)
            level_pos_embed = level_pos_embed.flatten(2).permute(2, 0, 1)    # (H_l·W_l, B, C)
            padding_mask_resized = padding_mask_resized.flatten(1)           # (B, H_l·W_l)
            encoder_input_list.append(feat_projected)
            padding_mask_list.append(padding_mask_resized)
            level_positional_encoding_list.append(level_pos_embed)
            reference_points_list.append(reference_points)

        if self.encoder is None:
            # ablation (deformable_encoder=False), an FPN-only pixel decoder: no positions, no
            # encoder (3.3, so no `memory` tap); the projected maps are what 3.5 splits
            memory = tap(torch.cat(encoder_input_list, dim=0), "encoder_inputs", "S B C")  # (S, B, C)
        else:
            # 2.2 concatenate the levels
            padding_masks = tap(torch.cat(padding_mask_list, dim=1), "padding_masks", "B S")      # (B, S)
            encoder_inputs = tap(torch.cat(encoder_input_list, dim=0), "encoder_inputs", "S B C")  # (S, B, C)
            level_positional_encodings = tap(torch.cat(level_positional_encoding_list, dim=0),
                                             "level_positional_encodings", "S B C")             # (S, B, C)
            # the levels' geometry, in one form from here on: (H_l, W_l) ints and where each level
            # starts among the S tokens, (0, H_0·W_0, H_0·W_0 + H_1·W_1) = (0, 1024, 5120) at the seed
            level_start_index = get_level_start_index(spatial_shapes)
            device = encoder_inputs.device
            tap(torch.as_tensor(spatial_shapes, dtype=torch.long, device=device), "spatial_shapes", "L 2")
            tap(torch.as_tensor(level_start_index, dtype=torch.long, device=device), "level_start_index", "L")
            reference_points = torch.cat(reference_points_list, dim=0)                           # (S, 2)
            # (S, 2) -> (1, S, 1, 2) -> (B, S, L, 2): the same point for every image and level
            reference_points = reference_points[None, :, None].repeat(batch_size, 1, self.num_levels, 1)  # (B, S, L, 2)
            reference_points = tap(reference_points, "reference_points", "B S L 2")
            # the fraction of each map that is real image: all ones, since nothing is padded, so
            # the encoder never needs it (the seed spells it valid_radios)
            valid_ratios = tap(reference_points.new_ones((batch_size, self.num_levels, 2)),
                               "valid_ratios", "B L 2")

            # 3.3 the encoder
            memory = self.encoder(encoder_inputs, level_positional_encodings, reference_points,
                                  spatial_shapes, level_start_index, key_padding_mask=padding_masks)  # (S, B, C)
            memory = tap(memory, "memory", "S B C")

        # 3.5 split back into maps. The seed leaves out this permute: split needs S last.
        memory = memory.permute(1, 2, 0)                                                     # (B, C, S)
        num_query_per_level = [h * w for h, w in spatial_shapes]
        outs = torch.split(memory, num_query_per_level, dim=-1)                              # L × (B, C, H_l·W_l)
        outs = [x.reshape(batch_size, -1, h, w) for x, (h, w) in zip(outs, spatial_shapes)]  # L × (B, C, H_l, W_l)
        outs = [tap(x, "multi_scale_memories", "B C H_l W_l", index=i, level=i) for i, x in enumerate(outs)]

        # 3.6 FPN on the remaining high-resolution maps, then the mask-feature conv
        # range(0, -1, -1) at the seed: one pass, i = 0, the stride-4 map
        for j, i in enumerate(self.fpn_levels):
            x = feats[i]                                                    # (B, 256, H/4, W/4)
            cur_feat = self.lateral_convs[j](x)                             # (B, C, H/4, W/4)
            y = cur_feat + F.interpolate(outs[-1], size=cur_feat.shape[-2:], mode="bilinear",
                                         align_corners=False)
            y = self.output_convs[j](y)                                     # (B, C, H/4, W/4)
            outs.append(y)
        multi_scale_memories = outs[: self.num_levels]                      # L × (B, C, H_l, W_l)
        mask_features = self.mask_feature(outs[-1])                         # (B, C_m, Hm, Wm)
        mask_features = tap(mask_features, "mask_features", "B C_m Hm Wm")
        return mask_features, multi_scale_memories
