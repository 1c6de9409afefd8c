"""`M2FConfig`: every size of the model in one dataclass, defaults from the seed note.

The seed runs mmdetection's `mask2former_r50_8xb2-lsj-50e_coco` on a 2×3×1024×1024 batch.
Every number the note quotes follows from these fields; `small()` keeps the same structure
(3 levels, 8 heads, 4 points, 6 encoder and 9 decoder layers) at a size a laptop CPU runs in
well under a second.
"""
from __future__ import annotations

import dataclasses
import math
import operator
from dataclasses import dataclass, field

# ResNet-50 stages: (blocks, bottleneck width); output channels are 4× the width.
RESNET50_STAGES = ((3, 64), (4, 128), (6, 256), (3, 512))


def image_size_error(H: int, W: int) -> str | None:
    """What is wrong with an image size `H×W` and the nearest size that works, or None when it
    works: positive multiples of 32, the backbone's largest stride. The one form of that check
    (the config's `image_size`, the model's images, the export's `--image-size`)."""
    if H > 0 and W > 0 and H % 32 == 0 and W % 32 == 0:
        return None
    return (f"must be positive multiples of 32 (the backbone's largest stride), got {H}×{W}; "
            f"try {max(32, round(H / 32) * 32)}×{max(32, round(W / 32) * 32)}")


@dataclass
class M2FConfig:
    # input
    batch_size: int = 2            # B
    image_size: tuple[int, int] = (1024, 1024)  # (H, W), divisible by 32
    in_channels: int = 3
    # backbone: ResNet (bottleneck), stem width and stages as (blocks, width)
    stem_channels: int = 64
    backbone_stages: tuple[tuple[int, int], ...] = RESNET50_STAGES
    frozen_backbone_norm: bool = True  # mmdet's norm_eval=True, BN requires_grad=False
    # pixel decoder
    feat_channels: int = 256       # C
    num_heads: int = 8             # nH
    num_levels: int = 3            # L, encoder levels, the lowest resolutions of the backbone (at most all)
    num_points: int = 4            # P
    num_encoder_layers: int = 6    # deformable encoder layers, at least 1 (unused if not deformable_encoder)
    encoder_ffn_channels: int = 1024
    num_groups: int = 32           # GroupNorm groups
    # transformer decoder
    num_queries: int = 100         # Q
    num_decoder_layers: int = 9
    decoder_ffn_channels: int = 2048
    num_classes: int = 80          # K = num_classes + 1 (no-object)
    out_channels: int = 256        # mask-feature channels
    # positional encoding (num_pos_feats = C / 2 per axis)
    temperature: float = 10000.0
    # ablation switches: True is what Mask2Former does; False is an experiment (notebook 11)
    reset_all_blocked: bool = True   # False: an empty-mask query's row stays all-blocked: softmax NaN
    masked_attention: bool = True    # False: plain cross-attention, every pixel visible (no Eq. 2)
    deformable_encoder: bool = True  # False: FPN-only pixel decoder: no encoder, the projected maps
                                     # go straight to the split and the FPN (Mask2Former issue #1)

    def __post_init__(self):
        self.image_size = _int_tuple("image_size", self.image_size, "(H, W)")
        self.backbone_stages = tuple(_int_tuple("backbone_stages", s, "(blocks, width)")
                                     for s in _sequence("backbone_stages", self.backbone_stages,
                                                        "((blocks, width), ...)"))
        self.validate()

    # ---- derived sizes, named as in the glossary -------------------------------------------
    @property
    def strides(self) -> tuple[int, ...]:
        """Backbone output strides, high to low resolution: (4, 8, 16, 32)."""
        return tuple(4 * 2**i for i in range(len(self.backbone_stages)))

    @property
    def backbone_channels(self) -> tuple[int, ...]:
        """Backbone output channels: (256, 512, 1024, 2048) for ResNet-50."""
        return tuple(4 * width for _, width in self.backbone_stages)

    @property
    def level_strides(self) -> tuple[int, ...]:
        """Strides of the encoder levels, low to high resolution: (32, 16, 8)."""
        return tuple(reversed(self.strides))[: self.num_levels]

    @property
    def spatial_shapes(self) -> tuple[tuple[int, int], ...]:
        """(H_l, W_l) per encoder level, low to high resolution."""
        H, W = self.image_size
        return tuple((H // s, W // s) for s in self.level_strides)

    @property
    def num_tokens(self) -> int:
        """S = Σ H_l·W_l."""
        return sum(h * w for h, w in self.spatial_shapes)

    @property
    def num_pos_feats(self) -> int:
        """Sine features per axis: C / 2 (128 at the seed)."""
        return self.feat_channels // 2

    @property
    def head_dim(self) -> int:
        """D = C / nH."""
        return self.feat_channels // self.num_heads

    @property
    def mask_size(self) -> tuple[int, int]:
        """(Hm, Wm) = (H/4, W/4)."""
        H, W = self.image_size
        return H // self.strides[0], W // self.strides[0]

    def estimated_parameters(self) -> int:
        """About how many numbers the model's weights hold (within a few %; nothing built), so a
        size that cannot fit is refused before any memory is taken."""
        C, K, L = self.feat_channels, self.num_classes + 1, self.num_levels
        n = self.in_channels * self.stem_channels * 49                        # backbone stem
        previous = self.stem_channels
        for blocks, width in self.backbone_stages:                           # bottlenecks, expansion 4
            n += previous * 4 * width + blocks * (9 * width * width + 8 * width * width) + (previous - 4 * width) * width
            previous = 4 * width
        n += sum(self.backbone_channels) * C + 9 * C * C + C * self.out_channels  # projections, FPN, mask features
        if self.deformable_encoder:                                          # offsets, weights, value/out, FFN
            n += self.num_encoder_layers * (3 * C * self.num_heads * L * self.num_points + 2 * C * C
                                            + 2 * C * self.encoder_ffn_channels)
        n += self.num_decoder_layers * (8 * C * C + 2 * C * self.decoder_ffn_channels)  # self, cross, FFN
        return n + 2 * self.num_queries * C + L * C + C * K + 2 * C * C + C * self.out_channels  # queries, heads

    def symbols(self) -> dict[str, int]:
        """Glossary letters and their values at this configuration."""
        H, W = self.image_size
        Hm, Wm = self.mask_size
        return dict(B=self.batch_size, H=H, W=W, C=self.feat_channels, S=self.num_tokens,
                    S_q=self.num_tokens,  # query tokens of deformable attention: S in the encoder
                    nH=self.num_heads, L=self.num_levels, P=self.num_points, D=self.head_dim,
                    Q=self.num_queries, K=self.num_classes + 1, Hm=Hm, Wm=Wm,
                    F_e=self.encoder_ffn_channels, F_d=self.decoder_ffn_channels,
                    C_m=self.out_channels, C_in=self.in_channels)

    # ---- checks -----------------------------------------------------------------------------
    def validate(self):
        """Raise `ValueError` naming the first field that the model cannot be built with."""
        def need(ok, msg):
            if not ok:
                raise ValueError(msg)

        need(len(self.image_size) == 2, f"image_size must be (H, W), got {self.image_size!r}")
        H, W = self.image_size
        need(image_size_error(H, W) is None, f"image_size {image_size_error(H, W)}")
        for name in ("frozen_backbone_norm", "reset_all_blocked", "masked_attention", "deformable_encoder"):
            need(isinstance(getattr(self, name), bool),
                 f"{name} must be True or False, got {getattr(self, name)!r}")
        need(type(self.num_encoder_layers) is not int or self.num_encoder_layers != 0,
             "num_encoder_layers must be a positive integer, got 0; "
             + ("it is unused while deformable_encoder=False, leave it at its default"
                if not self.deformable_encoder else
                "for a pixel decoder without the deformable encoder (FPN only) set "
                "deformable_encoder=False instead"))
        for name in ("batch_size", "in_channels", "feat_channels", "num_heads", "num_levels",
                     "num_points", "num_queries", "num_classes", "num_encoder_layers",
                     "num_decoder_layers", "encoder_ffn_channels", "decoder_ffn_channels",
                     "out_channels", "num_groups", "stem_channels"):
            value = getattr(self, name)
            need(isinstance(value, int) and not isinstance(value, bool) and value > 0,
                 f"{name} must be a positive integer, got {value!r}")
        T = self.temperature
        need(isinstance(T, (int, float)) and not isinstance(T, bool) and math.isfinite(T) and T > 0,
             f"temperature must be a finite number > 0 (the sine encoding divides by T^(2i/F)), got {T!r}")
        need(len(self.backbone_stages) >= 2, f"backbone_stages needs at least 2 stages, got {len(self.backbone_stages)}")
        need(self.num_levels <= len(self.backbone_stages),
             f"num_levels={self.num_levels} is beyond the backbone: it gives {len(self.backbone_stages)} "
             f"feature maps, so num_levels must be at most {len(self.backbone_stages)}")
        need(self.feat_channels % self.num_heads == 0,
             f"num_heads={self.num_heads} must divide feat_channels={self.feat_channels} (D = C / nH)")
        need(self.feat_channels % self.num_groups == 0,
             f"num_groups={self.num_groups} must divide feat_channels={self.feat_channels} (GroupNorm)")
        need(self.feat_channels % 4 == 0,
             f"feat_channels={self.feat_channels} must be a multiple of 4 (sine encoding: C/2 features "
             f"for y and C/2 for x, each C/2 an even number of sin/cos pairs; C/2 = {self.feat_channels / 2:g})")
        for blocks, width in self.backbone_stages:
            need(blocks > 0 and width > 0, f"backbone stage (blocks, width) must be positive, got {(blocks, width)}")

    def replace(self, **changes) -> "M2FConfig":
        """A copy with some fields changed (validated)."""
        return dataclasses.replace(self, **changes)

    # ---- presets ------------------------------------------------------------------------------
    @classmethod
    def seed(cls, **changes) -> "M2FConfig":
        """The seed note's configuration: R50, 2×3×1024×1024, 100 queries, 80 classes."""
        return cls(**changes)

    @classmethod
    def small(cls, **changes) -> "M2FConfig":
        """Same structure as the seed (3 levels, 8 heads, 4 points, 6+9 layers), narrow and small."""
        base = dict(batch_size=2, image_size=(128, 128), stem_channels=16,
                    backbone_stages=((1, 16), (1, 32), (1, 64), (1, 128)),
                    feat_channels=64, num_groups=8,
                    encoder_ffn_channels=128, decoder_ffn_channels=128,
                    num_queries=20, num_classes=80, out_channels=64)
        base.update(changes)
        return cls(**base)

    @classmethod
    def shapes(cls, **changes) -> "M2FConfig":
        """The shipped checkpoint's configuration: `small()` with the 5 synthetic shape classes
        (K = 6, `m2f_teach.data.CLASS_NAMES`) and BatchNorm trained, since it starts from scratch."""
        base = dict(num_classes=5, frozen_backbone_norm=False)
        base.update(changes)
        return cls.small(**base)

    @classmethod
    def preset(cls, name: str, **changes) -> "M2FConfig":
        """`M2FConfig.preset("small", ...)` is `M2FConfig.small(...)`: `name` is one of `PRESETS`."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; expected one of {sorted(PRESETS)}")
        return getattr(cls, name)(**changes)


PRESETS = ("seed", "small", "shapes")     # the classmethods above that build a whole configuration


def _sequence(name, value, expected):
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return tuple(value)


def _int_tuple(name, value, expected) -> tuple[int, ...]:
    """`value` as a tuple of ints; a float (128.7, even 128.0), bool or string is an error."""
    items = _sequence(name, value, expected)
    out = []
    for v in items:
        if isinstance(v, bool):
            raise ValueError(f"{name} must be {expected} of integers, got {value!r} (holds {v!r})")
        try:
            out.append(operator.index(v))
        except TypeError:
            raise ValueError(f"{name} must be {expected} of integers, got {value!r} (holds {v!r})") from None
    return tuple(out)
