"""Every shape the seed note states, at the seed configuration (2×3×1024×1024), on `meta`."""
import pytest

SEED_SHAPES = {
    "images": (2, 3, 1024, 1024),
    # 1. backbone
    "backbone.feats.0": (2, 256, 256, 256),
    "backbone.feats.1": (2, 512, 128, 128),
    "backbone.feats.2": (2, 1024, 64, 64),
    "backbone.feats.3": (2, 2048, 32, 32),
    # 2.1 per level, low to high resolution
    "panoptic_head.pixel_decoder.feat_projected.0": (2, 256, 32, 32),
    "panoptic_head.pixel_decoder.feat_projected.1": (2, 256, 64, 64),
    "panoptic_head.pixel_decoder.feat_projected.2": (2, 256, 128, 128),
    "panoptic_head.pixel_decoder.pos_embed.0": (2, 256, 32, 32),
    "panoptic_head.pixel_decoder.padding_mask_resized.0": (2, 32, 32),
    "panoptic_head.pixel_decoder.reference_points.0": (1024, 2),
    "panoptic_head.pixel_decoder.level_pos_embed.0": (2, 256, 32, 32),
    # 2.2
    "panoptic_head.pixel_decoder.padding_masks": (2, 21504),
    "panoptic_head.pixel_decoder.encoder_inputs": (21504, 2, 256),
    "panoptic_head.pixel_decoder.level_positional_encodings": (21504, 2, 256),
    "panoptic_head.pixel_decoder.spatial_shapes": (3, 2),
    "panoptic_head.pixel_decoder.level_start_index": (3,),
    "panoptic_head.pixel_decoder.reference_points": (2, 21504, 3, 2),
    "panoptic_head.pixel_decoder.valid_ratios": (2, 3, 2),
    # 3.4 deformable attention
    "panoptic_head.pixel_decoder.encoder.layers.0.self_attn.value": (2, 21504, 8, 32),
    "panoptic_head.pixel_decoder.encoder.layers.0.self_attn.offset_normalizer": (3, 2),   # the seed says (3,)
    "panoptic_head.pixel_decoder.encoder.layers.0.self_attn.sampling_offsets": (2, 21504, 8, 3, 4, 2),
    "panoptic_head.pixel_decoder.encoder.layers.0.self_attn.attention_weights": (2, 21504, 8, 12),
    "panoptic_head.pixel_decoder.encoder.layers.5.self_attn.sampling_locations": (2, 21504, 8, 3, 4, 2),
    # 3.3 / 3.5 / 3.6
    "panoptic_head.pixel_decoder.memory": (21504, 2, 256),
    "panoptic_head.pixel_decoder.multi_scale_memories.0": (2, 256, 32, 32),
    "panoptic_head.pixel_decoder.multi_scale_memories.1": (2, 256, 64, 64),
    "panoptic_head.pixel_decoder.multi_scale_memories.2": (2, 256, 128, 128),
    "panoptic_head.pixel_decoder.mask_features": (2, 256, 256, 256),
    # decoder
    "panoptic_head.query_feat": (100, 2, 256),
    "panoptic_head.query_embed": (100, 2, 256),
    "panoptic_head.decoder_inputs.0": (1024, 2, 256),
    "panoptic_head.decoder_inputs.1": (4096, 2, 256),
    "panoptic_head.decoder_inputs.2": (16384, 2, 256),
    "panoptic_head.cls_pred.0": (2, 100, 81),
    "panoptic_head.mask_embed.0": (2, 100, 256),
    "panoptic_head.mask_pred.0": (2, 100, 256, 256),
    # the seed's comment says (256, 256) for the first target size: it is level 0's (32, 32)
    "panoptic_head.attn_mask_resized.0": (2, 100, 32, 32),
    "panoptic_head.attn_mask.0": (16, 100, 32 * 32),
    "panoptic_head.transformer_decoder.layers.0.attn_mask": (16, 100, 1024),
    "panoptic_head.transformer_decoder.layers.1.attn_mask": (16, 100, 4096),
    "panoptic_head.transformer_decoder.layers.2.attn_mask": (16, 100, 16384),
    "panoptic_head.transformer_decoder.layers.8.query": (100, 2, 256),
}


@pytest.mark.parametrize("name,shape", sorted(SEED_SHAPES.items()))
def test_seed_tensor_has_the_seed_notes_shape(seed_trace, name, shape):
    assert seed_trace.shape(name) == shape


def test_seed_model_gives_ten_predictions(seed_trace):
    cls_pred_list, mask_pred_list = seed_trace.outputs
    assert len(cls_pred_list) == len(mask_pred_list) == 10
    assert all(tuple(c.shape) == (2, 100, 81) for c in cls_pred_list)
    assert all(tuple(m.shape) == (2, 100, 256, 256) for m in mask_pred_list)
    assert len(seed_trace.names(pattern="panoptic_head.cls_pred.*")) == 10


def test_decoder_layer_i_attends_to_level_i_mod_3(seed_trace):
    """Layer i attends to level i % 3, low to high resolution."""
    sizes = [32 * 32, 64 * 64, 128 * 128]
    for i in range(9):
        assert seed_trace.shape(f"panoptic_head.transformer_decoder.layers.{i}.attn_mask")[-1] == sizes[i % 3]
        assert seed_trace["panoptic_head.transformer_decoder.layers.%d.attn_mask" % i].level == i % 3


def test_seed_config_derives_the_seed_notes_numbers():
    from m2f_teach import M2FConfig
    c = M2FConfig.seed()
    assert c.spatial_shapes == ((32, 32), (64, 64), (128, 128))
    assert c.num_tokens == 21504
    assert c.backbone_channels == (256, 512, 1024, 2048)
    assert c.strides == (4, 8, 16, 32)
    assert c.head_dim == 32
    assert c.mask_size == (256, 256)


def test_parameter_count_matches_mmdet(seed_trace):
    """mmdetection reports 44.0M parameters for Mask2Former R50."""
    from m2f_teach.tracing import meta_model
    from m2f_teach import M2FConfig
    n = sum(p.numel() for p in meta_model(M2FConfig.seed()).parameters())
    assert n == 44_023_377
