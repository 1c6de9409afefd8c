"""The tracer: records, keep=, symbolic checks, hooks removed even when the forward fails."""

import pytest
import torch

from m2f_teach import M2FConfig, Mask2Former
from m2f_teach.model.tap import Tap
from m2f_teach.tracing import SymbolicShapeError, trace


def hook_count(model):
    return sum(len(m._forward_hooks) for m in model.modules())


def test_names_in_call_order(seed_trace):
    names = seed_trace.names()
    assert names[0] == "images" and names[1] == "backbone.feats.0"
    assert names.index("panoptic_head.pixel_decoder.memory") < names.index("panoptic_head.query_feat")
    assert names.index("panoptic_head.pixel_decoder.encoder.layers.3.self_attn.sampling_offsets") \
        < names.index("panoptic_head.pixel_decoder.encoder.layers.4.self_attn.sampling_offsets")
    orders = [r.order for r in seed_trace.records]
    assert orders == sorted(orders)
    assert len(seed_trace.names("module")) > 400
    assert seed_trace.shape("panoptic_head.pixel_decoder.encoder.layers.0.self_attn.sampling_offsets#0"
                            .replace("#0", "")) == (2, 21504, 8, 3, 4, 2)


def test_trace_records_module_calls(seed_trace):
    rec = seed_trace.record("panoptic_head.pixel_decoder.encoder.layers.2.self_attn.sampling_offsets")
    assert rec.kind == "tensor"
    linear = [r for r in seed_trace.calls if r.module.endswith("layers.2.self_attn.sampling_offsets")]
    assert len(linear) == 1 and linear[0].shape == (2, 21504, 192) and linear[0].module_type == "Linear"
    # a module called several times gets #n suffixes
    assert "panoptic_head.pixel_decoder.positional_encoding#2" in seed_trace.names("module")


def test_keep_values_and_shape_only(small_model, small_images):
    t = trace(small_model, small_images, keep=["*.sampling_locations"])
    kept = [r for r in t.tensors if r.value is not None]
    assert len(kept) == 6 and all(r.name.endswith("sampling_locations") for r in kept)
    assert t.value(kept[0].name).shape == kept[0].shape
    with pytest.raises(KeyError, match="keep="):
        t.value("panoptic_head.pixel_decoder.memory")


def test_keep_pattern_that_matches_nothing(small_model, small_images):
    with pytest.raises(ValueError, match=r"sampling_location'\] matched no traced tensor"):
        trace(small_model, small_images, keep="*.sampling_location")
    assert hook_count(small_model) == 0


def test_an_unknown_name_suggests_the_nearest(seed_trace):
    with pytest.raises(KeyError, match="did you mean 'panoptic_head.pixel_decoder.memory'"):
        seed_trace.shape("panoptic_head.pixel_decoder.memroy")


def test_hooks_removed_after_success_and_failure(small_model, small_images):
    assert hook_count(small_model) == 0
    trace(small_model, small_images)
    assert hook_count(small_model) == 0
    with pytest.raises(ValueError, match="channels"):
        trace(small_model, torch.randn(1, 4, 64, 64))
    assert hook_count(small_model) == 0

    class Boom(torch.nn.Module):
        def forward(self, x):
            raise RuntimeError("boom")

    model = Mask2Former(M2FConfig.small())
    model.panoptic_head.transformer_decoder.layers[4].ffn = Boom()
    with pytest.raises(RuntimeError, match="boom"):
        trace(model, small_images)
    assert hook_count(model) == 0


def test_a_tap_whose_shape_differs_from_its_symbol_raises():
    class Wrong(torch.nn.Module):
        config = M2FConfig.small()

        def __init__(self):
            super().__init__()
            self.tap = Tap()

        def forward(self, x):
            return self.tap(x, "x", "B Q C")

    with pytest.raises(SymbolicShapeError, match=r"x: concrete shape \(2, 3, 4\) does not match its "
                                                r"symbolic shape \(B Q C\) = \(2, 20, 64\)"):
        trace(Wrong(), torch.zeros(2, 3, 4))
    t = trace(Wrong(), torch.zeros(2, 3, 4), check=False)
    assert t.shape("x") == (2, 3, 4)


def test_extra_sizes_in_symbolic():
    class WithSizes(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.tap = Tap()

        def forward(self, x):
            return self.tap(x, "cost", "Q N_gt", sizes={"Q": 5, "N_gt": 3})

    t = trace(WithSizes(), torch.zeros(5, 3))
    assert t.record("cost").sizes == {"Q": 5, "N_gt": 3}


def test_trace_repr_and_html(seed_trace):
    assert repr(seed_trace).startswith("<Trace on meta: 204 tensors")
    html = seed_trace._repr_html_()
    assert html.startswith("<table") and "sampling_offsets" in html


def test_seed_trace_lists_decoder_attention_for_all_nine_layers(seed_trace):
    sizes = [32 * 32, 64 * 64, 128 * 128]
    for i in range(9):
        prefix = f"panoptic_head.transformer_decoder.layers.{i}."
        for name in ("attn_scores", "attn_logits", "attn_weights"):
            record = seed_trace[prefix + "cross_attn." + name]
            assert record.shape == (2, 8, 100, sizes[i % 3]) and record.symbolic == "B nH Q H_l*W_l"
        for name in ("attn_logits", "attn_weights"):
            record = seed_trace[prefix + "self_attn." + name]
            assert record.shape == (2, 8, 100, 100) and record.symbolic == "B nH Q Q"
    from m2f_teach.tracing.annotations import annotate
    step, note, derivation = annotate(seed_trace[prefix + "cross_attn.attn_weights"], seed_trace.config.symbols(),
                                      list(seed_trace.config.spatial_shapes))
    assert step == "dec 3.4 cross attention" and "not deformable" in note
    assert "H_l·W_l = 128·128 = 16384" in derivation and "level 2" in derivation
    step, note, derivation = annotate(seed_trace[prefix + "self_attn.attn_logits"], seed_trace.config.symbols())
    assert step == "dec 3.4 self attention" and "D = C/nH = 256/8 = 32" in derivation
