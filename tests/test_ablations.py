"""The ablation switches of `M2FConfig`: off by default, and each changes only what it names."""
import pytest
import torch

from m2f_teach import M2FConfig, Mask2Former
from m2f_teach.model.transformer_decoder import all_blocked_rows, reset_all_blocked
from m2f_teach.tracing import trace


def variant(model, **changes):
    """`model`'s weights in a model built with some config fields changed."""
    other = Mask2Former(model.config.replace(**changes)).eval()
    other.load_state_dict(model.state_dict())
    return other


def reference_head_loop(model, images):
    """The decoder loop as Mask2Former writes it (reset always on, mask always used), by hand."""
    head = model.panoptic_head
    mask_features, memories = head.pixel_decoder(model.extract_feat(images))
    inputs, pos = head.decoder_inputs(memories)
    sizes = [m.shape[-2:] for m in memories]
    B = images.shape[0]
    query_feat = head.query_feat.weight.unsqueeze(1).repeat((1, B, 1))
    query_embed = head.query_embed.weight.unsqueeze(1).repeat((1, B, 1))
    cls_pred, mask_pred, attn_mask = head.forward_head(query_feat, mask_features, sizes[0], index=0)
    cls_list, mask_list = [cls_pred], [mask_pred]
    for i, layer in enumerate(head.transformer_decoder.layers):
        lvl = i % head.num_levels
        attn_mask = reset_all_blocked(attn_mask, all_blocked_rows(attn_mask))
        query_feat = layer(query_feat, inputs[lvl], inputs[lvl], query_embed, pos[lvl], attn_mask)
        cls_pred, mask_pred, attn_mask = head.forward_head(query_feat, mask_features,
                                                           sizes[(i + 1) % head.num_levels], index=i + 1)
        cls_list.append(cls_pred)
        mask_list.append(mask_pred)
    return cls_list, mask_list


def test_switches_default_to_mask2former_and_are_validated():
    config = M2FConfig()
    assert config.reset_all_blocked is True and config.masked_attention is True
    for name in ("reset_all_blocked", "masked_attention"):
        with pytest.raises(ValueError, match=f"{name} must be True or False, got 1"):
            M2FConfig.small(**{name: 1})


def test_default_model_is_bit_identical_to_the_reference_loop(small_model, small_images):
    with torch.no_grad():
        cls_list, mask_list = small_model(small_images)
        ref_cls, ref_mask = reference_head_loop(small_model, small_images)
    assert len(cls_list) == len(ref_cls) == 10
    for a, b in zip(cls_list + mask_list, ref_cls + ref_mask):
        assert torch.equal(a, b)


def test_without_reset_the_blocked_rows_stay_blocked_and_their_softmax_is_nan(small_model, small_images):
    model = variant(small_model, reset_all_blocked=False)
    keep = ["panoptic_head.all_blocked.0", "panoptic_head.transformer_decoder.layers.0.attn_mask",
            "panoptic_head.transformer_decoder.layers.0.cross_attn.attn_weights"]
    t = trace(model, small_images, keep=keep)
    blocked = t.value("panoptic_head.all_blocked.0")                       # (B·nH, Q)
    assert blocked.any(), "the random small model has empty masks before layer 0"
    used = t.value("panoptic_head.transformer_decoder.layers.0.attn_mask")
    assert used[blocked].all()                                             # left blocked
    weights = t.value("panoptic_head.transformer_decoder.layers.0.cross_attn.attn_weights")
    weights = weights.flatten(0, 1)                                        # (B·nH, Q, N_k)
    assert weights[blocked].isnan().all() and not weights[~blocked].isnan().any()
    with torch.no_grad():
        on, off = small_model(small_images), model(small_images)
    assert torch.equal(on[0][0], off[0][0])                                # prediction 0: before any layer
    assert not torch.equal(on[0][1], off[0][1])                            # layer 0 used the blocked rows


def test_without_masked_attention_cross_attention_sees_every_pixel(small_model, small_images):
    model = variant(small_model, masked_attention=False)
    t = trace(model, small_images, keep=["panoptic_head.transformer_decoder.layers.*.cross_attn.attn_weights"])
    assert not any(n.startswith("panoptic_head.transformer_decoder.layers.") and n.endswith(".attn_mask")
                   for n in t.names())   # the layers get no mask at all
    weights = t.value("panoptic_head.transformer_decoder.layers.0.cross_attn.attn_weights")
    assert (weights > 0).all()                                             # no key is masked out
    with torch.no_grad():
        on, off = small_model(small_images), model(small_images)
    assert torch.equal(on[0][0], off[0][0])
    assert not torch.allclose(on[0][1], off[0][1])


def test_switches_trace_on_meta_and_reach_the_cli():
    from m2f_teach.__main__ import build_parser, config_from_args
    from m2f_teach.tracing import trace_shapes
    args = build_parser().parse_args(["table", "--preset", "small", "--masked-attention", "false",
                                      "--reset-all-blocked", "off"])
    config = config_from_args(args)
    assert config.masked_attention is False and config.reset_all_blocked is False
    names = trace_shapes(config).names()
    assert "panoptic_head.all_blocked.0" in names
    assert not any(n.endswith(".attn_mask") and ".layers." in n for n in names)
    assert any(n.endswith(".layers.0.attn_mask") for n in trace_shapes(M2FConfig.small()).names())
