"""The backbone as a concept: `build_backbone(config)`, and a model that reads the `channels` and
`strides` of whichever backbone it is given."""
import subprocess
import sys

import pytest
import torch
from torch import nn

from m2f_teach import M2FConfig, Mask2Former
from m2f_teach.model.backbones import HFBackbone, ResNet, build_backbone
from m2f_teach.model.tap import Tap


def test_build_backbone_gives_the_configs_resnet_with_its_channels_and_strides():
    config = M2FConfig.small()
    backbone = build_backbone(config)
    assert isinstance(backbone, ResNet)
    assert backbone.channels == (64, 128, 256, 512) and backbone.strides == (4, 8, 16, 32)
    feats = backbone(torch.randn(1, 3, 64, 96))
    assert [tuple(f.shape) for f in feats] == [(1, c, 64 // s, 96 // s) for c, s in zip(backbone.channels, backbone.strides)]


class PoolingBackbone(nn.Module):
    """A stand-in backbone with channels no ResNet of the config has: average pools and 1×1 convs."""

    channels, strides = (24, 40, 56, 72), (4, 8, 16, 32)

    def __init__(self):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(3, c, 1) for c in self.channels)
        self.tap = Tap()

    def forward(self, images):
        return [self.tap(conv(nn.functional.avg_pool2d(images, s)), "feats", f"B {c} H/{s} W/{s}", index=i)
                for i, (conv, c, s) in enumerate(zip(self.convs, self.channels, self.strides))]


def test_the_pixel_decoder_reads_the_channels_of_the_backbone_it_is_given():
    config = M2FConfig.small(num_queries=5)
    model = Mask2Former(config, backbone=PoolingBackbone()).eval()
    decoder = model.panoptic_head.pixel_decoder
    assert [conv.conv.in_channels for conv in decoder.input_convs] == [72, 56, 40]
    assert [conv.conv.in_channels for conv in decoder.lateral_convs] == [24]
    with torch.no_grad():
        cls_pred_list, mask_pred_list = model(torch.randn(1, 3, 64, 64))
    assert cls_pred_list[-1].shape == (1, 5, 81) and mask_pred_list[-1].shape == (1, 5, 16, 16)


def test_a_backbone_with_other_strides_than_the_config_is_refused():
    backbone = PoolingBackbone()
    backbone.strides = (2, 4, 8, 16)
    with pytest.raises(ValueError, match=r"backbone strides \(2, 4, 8, 16\) differ from the config's \(4, 8, 16, 32\)"):
        Mask2Former(M2FConfig.small(), backbone=backbone)


def test_the_model_room_imports_without_transformers():
    """`HFBackbone` lives with the model but imports transformers only to build a body."""
    code = ("import sys; sys.modules['transformers'] = None\n"
            "from m2f_teach import Mask2Former, M2FConfig\n"
            "from m2f_teach.model.backbones import HFBackbone, build_backbone\n"
            "Mask2Former(M2FConfig.small()); print('ok')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.stdout.strip() == "ok", result.stderr
    assert HFBackbone.__module__ == "m2f_teach.model.backbones.hf"


def test_a_checkpoint_with_a_hf_backbone_loads_through_build_backbone(tmp_path):
    """Save a (tiny, random) Swin model and load it: `build_backbone` rebuilds the HF body from the
    config the checkpoint stores, and the loaded model computes the same numbers bit for bit."""
    transformers = pytest.importorskip("transformers")
    from m2f_teach.convert import from_hf, load_checkpoint, save_checkpoint
    from m2f_teach.convert.hf_reference import random_hf_model
    cfg = transformers.Mask2FormerConfig(
        backbone_config=transformers.SwinConfig(embed_dim=32, depths=[1, 1, 1, 1], num_heads=[1, 2, 4, 8],
                                                window_size=4, out_features=["stage1", "stage2", "stage3", "stage4"]),
        feature_size=64, hidden_dim=64, mask_feature_size=64, encoder_feedforward_dim=128,
        dim_feedforward=128, decoder_layers=4, num_queries=10, num_labels=5)
    model = from_hf(random_hf_model(cfg, seed=1), image_size=(64, 64))
    save_checkpoint(model, tmp_path / "swin.safetensors")
    loaded = load_checkpoint(tmp_path / "swin.safetensors")
    assert isinstance(loaded.backbone, HFBackbone) and loaded.backbone.channels == [32, 64, 128, 256]
    images = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        (cls_a, mask_a), (cls_b, mask_b) = model(images), loaded(images)
    assert len(cls_a) == 4 and all(torch.equal(a, b) for a, b in zip(cls_a + mask_a, cls_b + mask_b))
