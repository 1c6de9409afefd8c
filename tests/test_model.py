"""Real forwards at the small preset, values that the seed states, meta == real."""
import math

import torch

from m2f_teach import M2FConfig, Mask2Former
from m2f_teach.model.positional_encoding import SinePositionalEncoding
from m2f_teach.model.reference_points import normalised_reference_points
from m2f_teach.model.tap import Tap
from m2f_teach.tracing import trace, trace_shapes


def test_small_forward_gives_ten_predictions_of_the_expected_shapes(small_model, small_images, small_config):
    with torch.no_grad():
        cls_pred_list, mask_pred_list = small_model(small_images)
    B, Q, K = 2, small_config.num_queries, small_config.num_classes + 1
    assert len(cls_pred_list) == 1 + small_config.num_decoder_layers
    for cls_pred, mask_pred in zip(cls_pred_list, mask_pred_list):
        assert cls_pred.shape == (B, Q, K)
        assert mask_pred.shape == (B, Q, 32, 32)
        assert torch.isfinite(cls_pred).all() and torch.isfinite(mask_pred).all()
    # predictions change from layer to layer
    assert not torch.allclose(cls_pred_list[0], cls_pred_list[-1])


def test_meta_and_real_traces_agree(small_model, small_images, small_config):
    real = trace(small_model, small_images)
    meta = trace_shapes(small_config)
    assert real.names("all") == meta.names("all")
    for a, b in zip(real.records, meta.records):
        assert (a.name, a.kind, a.shape, a.dtype, a.symbolic) == (b.name, b.kind, b.shape, b.dtype, b.symbolic)


def test_non_square_and_batch_one():
    torch.manual_seed(0)
    config = M2FConfig.small(image_size=(96, 160), batch_size=1)
    model = Mask2Former(config).eval()
    t = trace(model, torch.randn(1, 3, 96, 160), keep=["panoptic_head.pixel_decoder.spatial_shapes"])
    assert t.value("panoptic_head.pixel_decoder.spatial_shapes").tolist() == [[3, 5], [6, 10], [12, 20]]
    assert t.shape("panoptic_head.mask_pred.9") == (1, config.num_queries, 24, 40)
    # the model runs at sizes other than config.image_size too
    t2 = trace(model, torch.randn(2, 3, 64, 64))
    assert t2.shape("panoptic_head.pixel_decoder.encoder_inputs") == (2 * 2 + 4 * 4 + 8 * 8, 2, 64)


def test_level_start_index_and_reference_points(small_model, small_images):
    t = trace(small_model, small_images, keep=["*.level_start_index", "*.reference_points"])
    assert t.value("panoptic_head.pixel_decoder.level_start_index").tolist() == [0, 16, 80]
    ref = t.value("panoptic_head.pixel_decoder.reference_points")        # (B, S, L, 2)
    # first token: pixel (0, 0) of the 4×4 level → (0.5/4, 0.5/4)
    assert torch.allclose(ref[0, 0, 0], torch.tensor([0.125, 0.125]))
    # token 16 is the first of the 8×8 level, token 17 its second pixel in x
    assert torch.allclose(ref[1, 17, 2], torch.tensor([1.5 / 8, 0.5 / 8]))
    assert torch.equal(ref[:, :, 0], ref[:, :, 2])                        # repeated over levels


def test_reference_points_are_pixel_centres():
    ref = normalised_reference_points((2, 3), stride=8)
    expected = [[(x + 0.5) / 3, (y + 0.5) / 2] for y in range(2) for x in range(3)]
    assert torch.allclose(ref, torch.tensor(expected), atol=1e-6)


def test_sine_encoding_has_the_expected_values_on_a_2x2_grid():
    pe = SinePositionalEncoding(num_feats=4)
    mask = torch.zeros(1, 2, 2, dtype=torch.bool)
    pos = pe(mask)                                                        # (1, 8, 2, 2)
    assert pos.shape == (1, 8, 2, 2)
    # channel 0 is sin(y_embed), y_embed of the last row = 2π·2/(2+eps)
    assert math.isclose(pos[0, 0, 1, 0].item(), math.sin(2 * math.pi * 2 / (2 + 1e-6)), abs_tol=1e-5)
    assert math.isclose(pos[0, 0, 0, 0].item(), math.sin(math.pi / (1 + 0.5e-6)), abs_tol=1e-5)
    # channel 4 is sin(x_embed): varies along x, not along y
    assert torch.allclose(pos[0, 4, 0], pos[0, 4, 1]) and not torch.allclose(pos[0, 4, :, 0], pos[0, 4, :, 1])


def test_deformable_attention_starts_with_zero_weights_and_offsets_on_a_ring():
    from m2f_teach.model.deformable_attention import MultiScaleDeformableAttention
    attn = MultiScaleDeformableAttention(256, 8, 3, 4)
    bias = attn.sampling_offsets.bias.view(8, 3, 4, 2)
    assert torch.count_nonzero(attn.sampling_offsets.weight) == 0
    assert torch.allclose(bias[0, 0, :, :], torch.tensor([[1.0, 0], [2, 0], [3, 0], [4, 0]]))
    assert torch.allclose(bias[2, 1, 0], torch.tensor([0.0, 1.0]), atol=1e-6)      # head 2 points down (+y)
    assert torch.allclose(bias[1, 0, 1], torch.tensor([2.0, 2.0]), atol=1e-6)      # 45°, scaled to max 1, point 2
    assert torch.count_nonzero(attn.attention_weights.weight) == 0


def test_all_blocked_rows_are_reset(small_model, small_images):
    t = trace(small_model, small_images, keep=["panoptic_head.attn_mask.*", "panoptic_head.all_blocked.*",
                                               "panoptic_head.transformer_decoder.layers.*.attn_mask"])
    for i in range(9):
        raw = t.value(f"panoptic_head.attn_mask.{i}")
        used = t.value(f"panoptic_head.transformer_decoder.layers.{i}.attn_mask")
        blocked = t.value(f"panoptic_head.all_blocked.{i}")
        assert torch.equal(blocked, raw.all(-1))
        assert not used.all(-1).any()                        # no row is blocked everywhere
        assert torch.equal(used[~blocked], raw[~blocked])    # other rows unchanged


def test_backbone_batchnorm_stays_frozen_in_train_mode(small_model):
    model = Mask2Former(M2FConfig.small()).train()
    bns = [m for m in model.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(not m.training for m in bns)
    assert all(not p.requires_grad for m in bns for p in m.parameters())
    assert model.panoptic_head.training


def test_gradients_reach_the_sampling_offsets_and_the_backbone():
    torch.manual_seed(0)
    model = Mask2Former(M2FConfig.small(batch_size=1)).train()
    cls_pred_list, mask_pred_list = model(torch.randn(1, 3, 64, 64))
    loss = sum(c.logsumexp(-1).mean() for c in cls_pred_list) + sum(m.sigmoid().mean() for m in mask_pred_list)
    loss.backward()
    offsets = model.panoptic_head.pixel_decoder.encoder.layers[0].self_attn.sampling_offsets
    assert offsets.weight.grad is not None and offsets.weight.grad.abs().sum() > 0
    assert model.backbone.conv1.weight.grad.abs().sum() > 0


def decoder_layer_inputs(model, images):
    """Layer 1's inputs from a trace of `model`: query, key = value, positions and the mask."""
    head = "panoptic_head."
    t = trace(model, images, keep=[head + "transformer_decoder.layers.0.query", head + "query_embed",
                                   head + "decoder_inputs.1", head + "decoder_positional_encodings.1",
                                   head + "transformer_decoder.layers.1.*"])
    return t, (t.value(head + "transformer_decoder.layers.0.query"), t.value(head + "decoder_inputs.1"),
               t.value(head + "query_embed"), t.value(head + "decoder_positional_encodings.1"),
               t.value(head + "transformer_decoder.layers.1.attn_mask"))


def test_recording_leaves_the_outputs_bit_identical(small_model, small_images):
    with torch.no_grad():
        cls_plain, mask_plain = small_model(small_images)
    t, (query, memory, query_pos, key_pos, attn_mask) = decoder_layer_inputs(small_model, small_images)
    cls_traced, mask_traced = trace(small_model, small_images, keep=["*_attn.attn_*"]).outputs
    assert all(torch.equal(a, b) for a, b in zip(cls_plain + mask_plain, cls_traced + mask_traced))
    layer = small_model.panoptic_head.transformer_decoder.layers[1]
    with torch.no_grad():
        plain = layer(query, memory, memory, query_pos, key_pos, attn_mask, level=1)
        recorded = trace(layer, query, memory, memory, query_pos, key_pos, attn_mask, level=1,
                         config=M2FConfig.small(), keep=["*"]).outputs
    assert torch.equal(plain, recorded)


def test_plain_forward_never_computes_attention_weights(small_model, small_images, monkeypatch):
    from m2f_teach.model import transformer_decoder

    calls = []
    scores = transformer_decoder.attention_scores
    monkeypatch.setattr(transformer_decoder, "attention_scores", lambda *a: calls.append(1) or scores(*a))
    with torch.no_grad():
        small_model(small_images)
    assert calls == []
    t = trace(small_model, small_images)                                   # shapes only: meta stand-ins
    assert calls == []
    assert t.shape("panoptic_head.transformer_decoder.layers.8.cross_attn.attn_weights") == (2, 8, 20, 256)
    trace(small_model, small_images, keep=["*.cross_attn.attn_weights"])
    assert len(calls) == small_model.config.num_decoder_layers             # cross-attention only
    calls.clear()
    t = trace(small_model, small_images, keep=["*_attn.attn_logits"])
    assert len(calls) == 2 * small_model.config.num_decoder_layers         # cross + self per layer
    assert all(tap.keeps_values is None for tap in small_model.modules() if isinstance(tap, Tap))


def test_recorded_attention_equals_nn_multihead_attention_and_a_loop(small_model, small_images):
    t, (query, memory, query_pos, key_pos, attn_mask) = decoder_layer_inputs(small_model, small_images)
    layer = small_model.panoptic_head.transformer_decoder.layers[1]
    prefix = "panoptic_head.transformer_decoder.layers.1."
    weights = t.value(prefix + "cross_attn.attn_weights")                      # (B, nH, Q, H_l·W_l)
    logits = t.value(prefix + "cross_attn.attn_logits")
    scores = t.value(prefix + "cross_attn.attn_scores")
    attn = layer.cross_attn.attn
    with torch.no_grad():
        expected = attn(query + query_pos, memory + key_pos, memory, attn_mask=attn_mask,
                        need_weights=True, average_attn_weights=False)[1]
    assert torch.equal(weights, expected)                                      # what torch returns
    assert torch.equal(logits.softmax(-1), weights)
    B, nH, Q, N = weights.shape
    blocked = attn_mask.view(B, nH, Q, N)
    assert blocked.any() and (~blocked).any()
    assert torch.isneginf(logits[blocked]).all() and torch.equal(logits[~blocked], scores[~blocked])
    assert (weights[blocked] == 0).all()
    # an independent loop: one head at a time, q·k/√D with the head's slice of the projections
    C = query.shape[-1]
    D = C // nH
    w_q, w_k, _ = attn.in_proj_weight.detach().chunk(3)
    b_q, b_k, _ = attn.in_proj_bias.detach().chunk(3)
    for b in range(B):
        for h in range(nH):
            rows = slice(h * D, (h + 1) * D)
            q = (query + query_pos)[:, b] @ w_q[rows].T + b_q[rows]           # (Q, D)
            k = (memory + key_pos)[:, b] @ w_k[rows].T + b_k[rows]            # (H_l·W_l, D)
            s = q @ k.T / math.sqrt(D)
            torch.testing.assert_close(scores[b, h], s, atol=1e-5, rtol=1e-5)
            s = s.masked_fill(blocked[b, h], float("-inf")).softmax(-1)
            torch.testing.assert_close(weights[b, h], s, atol=1e-6, rtol=1e-5)
    self_weights = t.value(prefix + "self_attn.attn_weights")                  # (B, nH, Q, Q)
    assert self_weights.shape == (B, nH, Q, Q)
    torch.testing.assert_close(self_weights.sum(-1), torch.ones(B, nH, Q))
    assert torch.equal(t.value(prefix + "self_attn.attn_logits").softmax(-1), self_weights)
    assert prefix + "self_attn.attn_scores" not in t                          # no mask: logits = scores
