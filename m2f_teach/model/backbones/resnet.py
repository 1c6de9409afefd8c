"""ResNet backbone (ResNet-50 at the seed): four feature maps at strides 4, 8, 16, 32.

Seed step 1: `x = self.extract_feat(img)` gives, for a 2×3×1024×1024 batch,
(2,256,256,256) (2,512,128,128) (2,1024,64,64) (2,2048,32,32).

As in mmdetection's `ResNet(depth=50, style='pytorch', norm_eval=True)`: bottleneck blocks
with the stride in the 3×3 conv, BatchNorm frozen (running statistics, also in `train()`).
Parameter names follow torchvision's `resnet50`, so its state dict loads as it is.
"""
from __future__ import annotations

import torch
from torch import nn

from ..config import M2FConfig
from ..tap import Tap


class Bottleneck(nn.Module):
    """1×1 reduce → 3×3 (carries the stride) → 1×1 expand ×4, plus the shortcut.

    `x`: `(B, C_in, H, W)` → `(B, 4·width, H/stride, W/stride)`.
    """

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int = 1):
        super().__init__()
        out_channels = width * self.expansion
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """`images (B, 3, H, W)` → list of 4 maps `(B, 256·2^i, H/(4·2^i), W/(4·2^i))`.

    `channels`: C_i per map, 4 × each stage's width; `strides`: (4, 8, 16, 32).
    """

    def __init__(self, config: M2FConfig):
        super().__init__()
        self.config = config
        self.channels, self.strides = config.backbone_channels, config.strides
        stem = config.stem_channels
        self.conv1 = nn.Conv2d(config.in_channels, stem, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        in_channels = stem
        for i, (blocks, width) in enumerate(config.backbone_stages):
            stride = 1 if i == 0 else 2
            layer = []
            for b in range(blocks):
                layer.append(Bottleneck(in_channels, width, stride if b == 0 else 1))
                in_channels = width * Bottleneck.expansion
            self.add_module(f"layer{i + 1}", nn.Sequential(*layer))
        self.num_stages = len(config.backbone_stages)
        self.tap = Tap()
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

        if config.frozen_backbone_norm:  # mmdet: norm_cfg=dict(type='BN', requires_grad=False)
            for m in self.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.requires_grad_(False)

    def train(self, mode: bool = True):
        """norm_eval: with frozen norm, BatchNorm keeps its running statistics while training."""
        super().train(mode)
        if self.config.frozen_backbone_norm:
            for m in self.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.eval()
        return self

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        # same values, stored (B, H, W, C) in memory: oneDNN's fast layout for conv on CPU
        # (about 1.4× on ResNet-50); shapes and indexing stay (B, C, H, W)
        images = images.contiguous(memory_format=torch.channels_last)
        x = self.maxpool(self.relu(self.bn1(self.conv1(images))))  # (B, stem_channels, H/4, W/4)
        feats = []
        for i in range(self.num_stages):
            x = getattr(self, f"layer{i + 1}")(x)                  # (B, 256·2^i, H/(4·2^i), W/(4·2^i))
            stride, channels = self.strides[i], self.channels[i]
            feats.append(self.tap(x, "feats", f"B {channels} H/{stride} W/{stride}", index=i))
        return feats
