"""The network, one concept per file, in the order data flows through it.

    config → backbones → positional_encoding, reference_points → deformable_attention → encoder
    → pixel_decoder → transformer_decoder → head → model          (ffn and tap are used by several)

Nothing here imports tracing, viz, training, convert or data (only `m2f_teach.kernels`, the
fast forms of its formulas): the model runs on its own, and the tools that look at it live in
their own folders.
"""
from .config import M2FConfig, PRESETS
from .model import Mask2Former

__all__ = ["M2FConfig", "PRESETS", "Mask2Former"]
