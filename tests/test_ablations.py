"""The ablation switches of `M2FConfig`: off by default, and each changes only what it names."""
import pytest
import torch

from m2f_teach import M2FConfig, Mask2Former
from m2f_teach.model.transformer_decoder import all_blocked_rows, reset_all_blocked
from m2f_teach.tracing import trace
from m2f_teach.training.criterion import Mask2FormerCriterion


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
    assert config.deformable_encoder is True
    assert Mask2FormerCriterion(num_classes=5, num_points=4).point_loss is True
    with pytest.raises(ValueError, match="point_loss must be True or False, got 'no'"):
        Mask2FormerCriterion(num_classes=5, num_points=4, point_loss="no")
    for name in ("reset_all_blocked", "masked_attention", "deformable_encoder"):
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
    from m2f_teach.__main__ import build_parser
    from m2f_teach.cli_args import config_from_args
    from m2f_teach.tracing import trace_shapes
    args = build_parser().parse_args(["table", "--preset", "small", "--masked-attention", "false",
                                      "--reset-all-blocked", "off"])
    config = config_from_args(args)
    assert config.masked_attention is False and config.reset_all_blocked is False
    names = trace_shapes(config).names()
    assert "panoptic_head.all_blocked.0" in names
    assert not any(n.endswith(".attn_mask") and ".layers." in n for n in names)
    assert any(n.endswith(".layers.0.attn_mask") for n in trace_shapes(M2FConfig.small()).names())


# ---- deformable_encoder=False: an FPN-only pixel decoder ------------------------------------

def without_encoder(model):
    """`model`'s weights in an FPN-only model: every key it has, none of the encoder's."""
    other = Mask2Former(model.config.replace(deformable_encoder=False)).eval()
    state = model.state_dict()
    other.load_state_dict({k: v for k, v in state.items() if k in other.state_dict()})
    return other


def test_fpn_only_builds_no_encoder_and_no_level_embedding(small_model):
    keys = set(small_model.state_dict())
    fpn_keys = set(Mask2Former(small_model.config.replace(deformable_encoder=False)).state_dict())
    pd = "panoptic_head.pixel_decoder."
    dropped = keys - fpn_keys
    assert fpn_keys < keys
    assert dropped == {k for k in keys if k.startswith(pd + "encoder.") or k == pd + "level_encoding.weight"}
    assert any(k.startswith(pd + "encoder.layers.5.") for k in dropped)
    assert not any(".encoder." in k for k in fpn_keys)
    # the number of layers still counts when the encoder is on, and not at all when it is off
    two = set(Mask2Former(small_model.config.replace(num_encoder_layers=2)).state_dict())
    assert any(k.startswith(pd + "encoder.layers.1.") for k in two)
    assert not any(k.startswith(pd + "encoder.layers.2.") for k in two)
    off_two = Mask2Former(small_model.config.replace(num_encoder_layers=2, deformable_encoder=False))
    assert set(off_two.state_dict()) == fpn_keys


def test_fpn_only_mask_features_are_the_fpn_on_the_projected_maps(small_model, small_images):
    model = without_encoder(small_model)
    pixel_decoder = model.panoptic_head.pixel_decoder
    with torch.no_grad():
        feats = model.extract_feat(small_images)
        mask_features, memories = pixel_decoder(feats)
        # by hand: the projected maps, low to high resolution, are the multi-scale memories,
        # and the FPN adds the stride-4 lateral to the largest of them
        projected = [pixel_decoder.input_convs[i](feats[len(feats) - 1 - i]) for i in range(3)]
        lateral = pixel_decoder.lateral_convs[0](feats[0])
        y = lateral + torch.nn.functional.interpolate(projected[-1], size=lateral.shape[-2:],
                                                      mode="bilinear", align_corners=False)
        expected = pixel_decoder.mask_feature(pixel_decoder.output_convs[0](y))
        faithful, _ = small_model.panoptic_head.pixel_decoder(feats)
    assert len(memories) == 3
    for memory, p in zip(memories, projected):
        assert torch.equal(memory, p)
    assert torch.allclose(mask_features, expected, atol=1e-6, rtol=0)
    assert not torch.allclose(mask_features, faithful, atol=1e-3)   # the encoder mattered


def test_fpn_only_traces_on_meta_reaches_the_cli_and_trains(cli, capsys):
    from m2f_teach.__main__ import build_parser
    from m2f_teach.cli_args import config_from_args
    from m2f_teach.tracing import trace_shapes
    args = build_parser().parse_args(["table", "--preset", "shapes", "--deformable-encoder", "off"])
    config = config_from_args(args)
    assert config.deformable_encoder is False
    names = trace_shapes(config).names()
    pd = "panoptic_head.pixel_decoder."
    assert pd + "encoder_inputs" in names and pd + "mask_features" in names
    for gone in ("memory", "pos_embed.0", "level_pos_embed.0", "reference_points", "padding_masks"):
        assert pd + gone not in names
    assert not any(n.startswith(pd + "encoder.") for n in names)
    assert pd + "memory" in trace_shapes(M2FConfig.shapes()).names()
    assert cli(["table", "--preset", "shapes", "--deformable-encoder", "false"]) == 0
    assert "pixel_decoder.encoder_inputs" in capsys.readouterr().out
    # a training step: every weight of the FPN-only model gets a gradient
    torch.manual_seed(0)
    model = Mask2Former(M2FConfig.shapes(deformable_encoder=False)).train()
    images = torch.randn(2, 3, 128, 128, generator=torch.Generator().manual_seed(1))
    targets = [dict(labels=torch.tensor([1]), masks=torch.zeros(1, 128, 128, dtype=torch.bool))
               for _ in range(2)]
    targets[0]["masks"][0, 10:50, 20:70] = True
    targets[1]["masks"][0, 60:100, 40:90] = True
    criterion = Mask2FormerCriterion(num_classes=5, num_points=196)
    sum(criterion(*model(images), targets).values()).backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_zero_encoder_layers_is_refused_pointing_to_the_switch(cli, capsys):
    with pytest.raises(ValueError, match=r"num_encoder_layers must be a positive integer, got 0; .*"
                                         r"set deformable_encoder=False instead"):
        M2FConfig.small(num_encoder_layers=0)
    with pytest.raises(ValueError, match="unused while deformable_encoder=False"):
        M2FConfig.small(num_encoder_layers=0, deformable_encoder=False)
    assert cli(["table", "--preset", "small", "--num-encoder-layers", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "deformable_encoder=False" in err and "Traceback" not in err


def test_fpn_only_checkpoint_records_the_switch(small_model, tmp_path):
    import json
    from m2f_teach.convert.checkpoint import load_checkpoint, save_checkpoint
    model = without_encoder(small_model)
    save_checkpoint(model, tmp_path / "fpn.safetensors")
    loaded = load_checkpoint(tmp_path / "fpn.safetensors")
    assert loaded.config.deformable_encoder is False and loaded.config == model.config
    assert loaded.panoptic_head.pixel_decoder.encoder is None
    from safetensors import safe_open
    with safe_open(str(tmp_path / "fpn.safetensors"), framework="pt") as f:
        assert json.loads(f.metadata()["m2f_teach.config"])["deformable_encoder"] is False


# ---- point_loss=False: MaskFormer's full-mask loss --------------------------------------------

def tiny_matched():
    """One image, Q = 2 queries, 2×2 mask logits, a 4×4 target; query 1 is matched to it."""
    cls_pred = torch.tensor([[[0.5, -1.0, 0.2], [2.0, 0.1, -0.3]]])          # (B, Q, K) = (1, 2, 3)
    mask_pred = torch.tensor([[[[0.0, 0.0], [0.0, 0.0]],
                               [[2.0, -1.0], [0.5, -3.0]]]])                  # (B, Q, Hm, Wm)
    target = torch.zeros(1, 4, 4, dtype=torch.bool)                          # (N_pos, H, W)
    target[0, :2, :3] = True
    labels = torch.tensor([[2, 0]])                                          # query 1: class 0
    matched = (labels, torch.tensor([0]), torch.tensor([1]), target)
    return cls_pred, mask_pred, matched


def test_full_mask_loss_equals_a_hand_computation():
    cls_pred, mask_pred, matched = tiny_matched()
    criterion = Mask2FormerCriterion(num_classes=2, num_points=3, point_loss=False)
    _, loss_mask, loss_dice = criterion.loss_single(cls_pred, mask_pred, matched)
    # bilinear 2 -> 4, align_corners=False: source x = (x_out + 0.5) / 2 - 0.5, clamped to [0, 1]
    M = torch.tensor([[1.0, 0.0], [0.75, 0.25], [0.25, 0.75], [0.0, 1.0]])   # (4, 2)
    logits = M @ mask_pred[0, 1] @ M.T                                       # (4, 4)
    t = matched[3][0].float()
    p = logits.sigmoid()
    bce = -(t * p.log() + (1 - t) * (1 - p).log()).mean()                    # mean over 16 pixels
    dice = 1 - (2 * (p * t).sum() + 1) / (p.sum() + t.sum() + 1)
    assert torch.allclose(loss_mask, 5 * bce, atol=1e-6)
    assert torch.allclose(loss_dice, 5 * dice, atol=1e-6)
    point = Mask2FormerCriterion(num_classes=2, num_points=3)
    torch.manual_seed(0)
    _, point_mask, point_dice = point.loss_single(cls_pred, mask_pred, matched)
    assert not torch.allclose(point_mask, loss_mask) and not torch.allclose(point_dice, loss_dice)


def test_default_loss_is_the_point_loss_and_full_mask_keeps_the_matching(small_model, small_images):
    from m2f_teach.training.point_sampling import get_uncertain_point_coords_with_randomness, point_sample
    with torch.no_grad():
        cls_list, mask_list = small_model(small_images)
    masks = torch.zeros(2, 1, 128, 128, dtype=torch.bool)
    masks[0, 0, 10:60, 20:90] = True
    masks[1, 0, 64:, :40] = True
    targets = [dict(labels=torch.tensor([3]), masks=masks[0]), dict(labels=torch.tensor([1]), masks=masks[1])]
    point = Mask2FormerCriterion(num_classes=80, num_points=196)
    full = Mask2FormerCriterion(num_classes=80, num_points=196, point_loss=False)
    torch.manual_seed(0)
    matched = point.match(cls_list, mask_list, targets)
    torch.manual_seed(0)
    assert all(torch.equal(a, b) for m, n in zip(matched, full.match(cls_list, mask_list, targets))
               for a, b in zip(m, n))                                    # the same assignment
    # the default: BCE and dice on P_s points drawn as PointRend draws them
    labels, b, q, mask_targets = matched[-1]
    torch.manual_seed(1)
    _, loss_mask, loss_dice = point.loss_single(cls_list[-1], mask_list[-1], matched[-1])
    torch.manual_seed(1)
    pred = mask_list[-1][b, q].unsqueeze(1)                                  # (N_pos, 1, Hm, Wm)
    coords = get_uncertain_point_coords_with_randomness(pred, 196, 3.0, 0.75)
    logits = point_sample(pred, coords).squeeze(1)                           # (N_pos, P_s)
    t = point_sample(mask_targets.unsqueeze(1).float(), coords).squeeze(1)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, t)
    p = logits.sigmoid()
    dice = (1 - (2 * (p * t).sum(1) + 1) / (p.sum(1) + t.sum(1) + 1)).mean()
    assert torch.allclose(loss_mask, 5 * bce, atol=1e-6) and torch.allclose(loss_dice, 5 * dice, atol=1e-6)
    losses = full(cls_list, mask_list, targets)
    assert set(losses) == set(point(cls_list, mask_list, targets)) and len(losses) == 30
    assert all(torch.isfinite(v) for v in losses.values())
