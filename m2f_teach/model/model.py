"""`Mask2Former`: backbone → pixel decoder → masked-attention decoder, as in the seed note.

    model = Mask2Former(M2FConfig.seed())
    cls_pred_list, mask_pred_list = model(images)     # images (B, 3, H, W)
    # 1 + 9 = 10 predictions: cls (B, Q, K) = (2, 100, 81), mask (B, Q, H/4, W/4) = (2, 100, 256, 256)
"""
from __future__ import annotations

import os
import warnings

import torch
from torch import nn

from .backbones import build_backbone
from .config import M2FConfig, image_size_error
from .head import Mask2FormerHead
from .tap import Tap


def memory_of(device: torch.device) -> int | None:
    """Bytes of memory on `device` (a GPU's, or the machine's RAM); None where unknown."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def check_fits(config: M2FConfig):
    """Refuse, before any allocation, a configuration whose weights alone exceed the memory of the
    device they would be made on (`meta`: shapes only, always fits)."""
    device = torch.empty(0).device
    if device.type == "meta":
        return
    numbers = config.estimated_parameters()
    needed, available = numbers * torch.get_default_dtype().itemsize, memory_of(device)
    if available is not None and needed > available:
        raise ValueError(f"this configuration's weights alone need about {needed / 2**30:,.0f} GiB ({numbers:.2e} "
                         f"numbers at Q={config.num_queries}, C={config.feat_channels}, K={config.num_classes + 1}); "
                         f"{device.type} has {available / 2**30:,.0f} GiB. Look at its shapes on the meta device: "
                         f"trace_shapes(config) or `with torch.device('meta'): Mask2Former(config)`")


def _tracing() -> bool:
    """True under torch.jit.trace, torch.compile and torch.export: no data-dependent check there."""
    is_exporting = getattr(torch.compiler, "is_exporting", lambda: False)
    return torch.jit.is_tracing() or torch.compiler.is_compiling() or is_exporting()


_META_HINT = {"meta": " (meta: shapes only, no values; trace_shapes(config) traces a meta model)"}


class Mask2Former(nn.Module):
    """`images (B, C_in, H, W)`, H and W multiples of 32 → `(cls_pred_list, mask_pred_list)`.

    `backbone`: default `build_backbone(config)` (`model/backbones/`); the pixel decoder reads
    its `channels` and `strides`.
    """

    def __init__(self, config: M2FConfig | None = None, backbone: nn.Module | None = None):
        super().__init__()
        self.config = config = config if config is not None else M2FConfig()
        check_fits(config)
        self.backbone = backbone if backbone is not None else build_backbone(config)
        if tuple(self.backbone.strides) != config.strides:
            raise ValueError(f"backbone strides {tuple(self.backbone.strides)} differ from the config's "
                             f"{config.strides}: the levels' sizes follow from the config's")
        self.panoptic_head = Mask2FormerHead(config, self.backbone.channels)
        self.tap = Tap()

    def check_images(self, images):
        if not isinstance(images, torch.Tensor):
            raise TypeError(f"images must be a torch.Tensor of shape (B, {self.config.in_channels}, H, W), "
                            f"got {type(images).__name__}")
        weight = next(self.parameters(), None)
        if weight is not None and images.device.type != weight.device.type:
            raise ValueError(f"images are on {images.device.type} but the model's weights are on "
                             f"{weight.device.type}" + _META_HINT.get(images.device.type, "")
                             + _META_HINT.get(weight.device.type, "")
                             + f"; move one to the other (model.to({str(images.device.type)!r}) or "
                               f"images.to({str(weight.device.type)!r}))")
        if images.device.type != "meta" and not _tracing() and not bool(torch.isfinite(images).all()):
            bad = int((~torch.isfinite(images)).sum())
            warnings.warn(f"images hold {bad} NaN or infinite values (shape {tuple(images.shape)}): "
                          f"every output will be non-finite", RuntimeWarning, stacklevel=3)
        if images.dim() != 4:
            raise ValueError(f"images must have 4 dimensions (B, {self.config.in_channels}, H, W), "
                             f"got shape {tuple(images.shape)}")
        B, C, H, W = images.shape
        if C != self.config.in_channels:
            raise ValueError(f"images has {C} channels (shape {tuple(images.shape)}), expected "
                             f"{self.config.in_channels}: (B, {self.config.in_channels}, H, W)")
        if image_size_error(H, W) is not None:
            raise ValueError(f"image size {H}×{W} (shape {tuple(images.shape)}) {image_size_error(H, W)}")
        if B == 0:
            raise ValueError(f"images has batch size 0 (shape {tuple(images.shape)})")
        if not images.is_floating_point():
            raise TypeError(f"images must be floating point (normalised), got dtype {images.dtype}")
        weight = self.panoptic_head.cls_embed.weight
        if images.dtype != weight.dtype:
            raise TypeError(f"images have dtype {images.dtype} but the model's weights are {weight.dtype}; "
                            f"convert one to the other (images.to({weight.dtype}) or model.to({images.dtype})), "
                            f"or keep both float32 inside torch.autocast")

    def extract_feat(self, images):
        """Seed step 1: the backbone's four maps."""
        return self.backbone(images)

    def forward(self, images: torch.Tensor):
        self.check_images(images)
        images = self.tap(images, "images", "B C_in H W")                       # (B, C_in, H, W)
        # 1: backbone, strides 4, 8, 16, 32                                     4 × (B, C_i, H/s_i, W/s_i)
        feats = self.extract_feat(images)
        # 2: pixel decoder: deformable encoder over the L coarsest maps, FPN    (B, C_m, Hm, Wm), L × (B, C, H_l, W_l)
        mask_features, multi_scale_memories = self.panoptic_head.pixel_decoder(feats)
        # 3: Q queries through N_dec masked-attention layers, one prediction before the first
        #    and after each layer                                               (1 + N_dec) × (B, Q, K), (B, Q, Hm, Wm)
        #    (`.forward`, not a module call: the head's pixel decoder already ran as stage 2, and
        #    tools that hook module calls, torchinfo's summary, would count its weights twice)
        cls_pred_list, mask_pred_list = self.panoptic_head.forward(mask_features, multi_scale_memories)
        # 4: the predictions; the last pair is the model's answer, the others deep supervision
        return cls_pred_list, mask_pred_list
