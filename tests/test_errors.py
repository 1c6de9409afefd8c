"""Bad input gets a clear error naming the value and what was expected."""
import pytest
import torch

from m2f_teach import M2FConfig, Mask2Former
from m2f_teach.tracing import trace_shapes


@pytest.mark.parametrize("changes,message", [
    (dict(image_size=(1000, 1024)), r"multiples of 32.*1000×1024.*try 992×1024"),
    (dict(num_heads=7), r"num_heads=7 must divide feat_channels=256"),
    (dict(num_levels=5), r"num_levels=5 is beyond the backbone.*at most 4"),
    (dict(num_points=0), r"num_points must be a positive integer, got 0"),
    (dict(num_queries=0), r"num_queries must be a positive integer, got 0"),
    (dict(feat_channels=104), r"num_groups=32 must divide feat_channels=104"),
    (dict(batch_size=-1), r"batch_size must be a positive integer, got -1"),
])
def test_a_bad_config_value_is_one_error_naming_it(changes, message):
    with pytest.raises(ValueError, match=message):
        M2FConfig.seed(**changes)


def test_an_unknown_preset_lists_the_presets():
    with pytest.raises(ValueError, match=r"unknown preset 'big'; expected one of \['seed', 'shapes', 'small'\]"):
        M2FConfig.preset("big")


@pytest.mark.parametrize("images,message", [
    (torch.zeros(2, 4, 64, 64), r"images has 4 channels \(shape \(2, 4, 64, 64\)\), expected 3"),
    (torch.zeros(2, 3, 64, 70), r"image size 64×70 .* multiples of 32.*try 64×64"),
    (torch.zeros(3, 64, 64), r"4 dimensions .* got shape \(3, 64, 64\)"),
    (torch.zeros(2, 3, 64, 64, dtype=torch.uint8), r"floating point .* torch.uint8"),
])
def test_bad_images_are_one_error_naming_the_expected_shape(small_model, images, message):
    with pytest.raises((ValueError, TypeError), match=message):
        small_model(images)


def test_a_list_instead_of_a_tensor_is_refused(small_model):
    with pytest.raises(TypeError, match=r"torch.Tensor of shape \(B, 3, H, W\), got list"):
        small_model([[0.0]])


def test_other_levels_and_points_run():
    """Configurations other than the seed's: 2 levels (so two FPN maps), 2 points, 4 heads."""
    config = M2FConfig.small(num_levels=2, num_points=2, num_heads=4, feat_channels=64)
    t = trace_shapes(config)
    assert t.shape("panoptic_head.pixel_decoder.encoder.layers.0.self_attn.sampling_offsets") == \
        (2, 4 * 4 + 8 * 8, 4, 2, 2, 2)
    torch.manual_seed(0)
    model = Mask2Former(config).eval()
    with torch.no_grad():
        cls_pred_list, mask_pred_list = model(torch.randn(1, 3, 128, 128))
    assert mask_pred_list[-1].shape == (1, 20, 32, 32)
