"""The notebook views without a browser: every plot draws, every widget's picture changes when a
control moves, and nothing runs the model again."""
import ipywidgets
import pytest
import torch

from m2f_teach import M2FConfig, Mask2Former, viz
from m2f_teach.model.deformable_attention import check_core_against_loop
from m2f_teach.pretrained import load_model
from m2f_teach.tracing import trace, trace_shapes

CONFIG = M2FConfig.small(batch_size=1, image_size=(64, 64), num_queries=6)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return Mask2Former(CONFIG).eval()


@pytest.fixture(scope="module")
def viz_trace(model):
    images = viz.normalise(viz.sample_photo(CONFIG.image_size))
    return trace(model, images, keep=["*"])


def changes(explorer, **values):
    """Move controls as a student would; True when the picture (or its caption) changed."""
    before = (explorer.picture, explorer.text)
    explorer.set(**values)
    return (explorer.picture, explorer.text) != before


def no_model_run(explorer, model, **values):
    calls = []
    handle = model.register_forward_hook(lambda *args: calls.append(1))
    try:
        explorer.set(**values)
    finally:
        handle.remove()
    return not calls


def test_normalise_and_denormalise_round_trip_a_photo():
    photo = viz.sample_photo((64, 96))
    assert photo.shape == (64, 96, 3) and photo.dtype.name == "uint8"
    images = viz.normalise(photo)
    assert images.shape == (1, 3, 64, 96)
    assert (viz.denormalise(images)[0] == photo).all()


def test_static_plots_draw_without_a_browser(viz_trace, model):
    attention = model.panoptic_head.pixel_decoder.encoder.layers[0].self_attn
    figures = [
        viz.architecture_diagram(trace_shapes(M2FConfig.seed())),
        viz.plot_feature_levels(viz_trace),
        viz.plot_feature_channel(viz_trace, level=3, channel=2),
        viz.plot_positional_channels(viz_trace, level=2),
        viz.plot_positional_channel(viz_trace, level=1, channel=40),
        viz.plot_reference_grid(viz_trace, level=1),
        viz.plot_initial_ring(attention),
        viz.plot_sampling_points(viz_trace, layer=2, level=1, x=1, y=0, head=3),
        viz.plot_attention_mask(viz_trace, layer=4, query=2),
        viz.plot_deep_supervision(viz_trace, query=1),
        viz.plot_instances(viz_trace, score_threshold=0.0),
    ]
    for figure in figures:
        assert figure.axes
        figure.canvas.draw()


def test_diagram_shows_live_shapes():
    figure = viz.architecture_diagram(trace_shapes(M2FConfig.seed()))
    text = " ".join(t.get_text() for t in figure.findobj(lambda a: hasattr(a, "get_text")))
    assert "21504×2×256" in text and "16×100×1024" in text
    small = viz.architecture_diagram(trace_shapes(M2FConfig.small()))
    text = " ".join(t.get_text() for t in small.findobj(lambda a: hasattr(a, "get_text")))
    assert "21504" not in text


def test_feature_browser_redraws_on_a_new_channel(viz_trace, model):
    explorer = viz.feature_browser(viz_trace)
    assert isinstance(explorer.widget, ipywidgets.VBox)
    assert changes(explorer, channel=3)
    assert changes(explorer, level=3)
    assert explorer.controls["channel"].max == CONFIG.backbone_channels[3] - 1
    assert "channel 3" in explorer.text
    assert no_model_run(explorer, model, channel=5)


def test_feature_browser_other_maps(viz_trace):
    explorer = viz.feature_browser(viz_trace, pattern="panoptic_head.pixel_decoder.multi_scale_memories.{}")
    assert changes(explorer, level=2)


def test_positional_browser_redraws_on_a_new_channel(viz_trace):
    explorer = viz.positional_browser(viz_trace)
    assert changes(explorer, channel=CONFIG.feat_channels // 2 + 1)
    assert "encodes x" in explorer.text
    assert changes(explorer, level=1)


def test_reference_browser_redraws_on_a_new_level(viz_trace):
    explorer = viz.reference_browser(viz_trace)
    assert changes(explorer, level=2)
    h, w = CONFIG.spatial_shapes[2]
    assert f"{h}×{w} points" in explorer.text


def test_deformable_explorer_redraws_on_each_control(viz_trace, model):
    explorer = viz.deformable_explorer(viz_trace)
    assert changes(explorer, x=0)
    assert changes(explorer, head=2)
    assert changes(explorer, layer=3)
    explorer.set(level=2)                         # the x, y sliders follow the level's size
    h, w = CONFIG.spatial_shapes[2]
    assert (explorer.controls["x"].max, explorer.controls["y"].max) == (w - 1, h - 1)
    assert no_model_run(explorer, model, y=1)


def test_sampling_points_are_those_of_the_chosen_query(viz_trace):
    data = viz.sampling_points(viz_trace, layer=0, level=1, x=2, y=1)
    h, w = CONFIG.spatial_shapes[1]
    assert data["query"] == CONFIG.spatial_shapes[0][0] * CONFIG.spatial_shapes[0][1] + 1 * w + 2
    assert data["locations"].shape == (CONFIG.num_heads, CONFIG.num_levels, CONFIG.num_points, 2)
    assert abs(data["weights"].sum(axis=(1, 2)) - 1).max() < 1e-5
    assert abs(data["reference"] - [(2 + 0.5) / w, (1 + 0.5) / h]).max() < 1e-6
    with pytest.raises(ValueError, match="outside level"):
        viz.query_index(viz_trace, 0, 99, 0)


def test_grid_sample_core_equals_the_loop_reference():
    torch.manual_seed(0)
    shapes = [(2, 3), (4, 5)]
    S = sum(h * w for h, w in shapes)
    value = torch.randn(1, S, 2, 4)
    locations = torch.rand(1, S, 2, 2, 3, 2) * 1.2 - 0.1
    weights = torch.rand(1, S, 2, 2, 3).softmax(-1)
    assert check_core_against_loop(value, shapes, locations, weights, [0, 7, S - 1])["allclose"]


def test_attention_mask_explorer_redraws_on_each_control(viz_trace, model):
    explorer = viz.attention_mask_explorer(viz_trace)
    assert changes(explorer, query=3)
    assert changes(explorer, layer=2)
    assert no_model_run(explorer, model, layer=5)
    rows = viz.blocked_rows(viz_trace)
    assert len(rows) == CONFIG.num_decoder_layers
    assert [r["level"] for r in rows[:4]] == [0, 1, 2, 0]


def test_attention_mask_data_matches_trace(viz_trace):
    d = viz.attention_mask_data(viz_trace, layer=1, query=0)
    assert d["size"] == CONFIG.spatial_shapes[1]
    assert ((d["resized_prob"] < 0.5) == d["blocked"]).all()


def test_prediction_explorer_redraws_on_each_control(viz_trace):
    explorer = viz.prediction_explorer(viz_trace)
    assert changes(explorer, threshold=0)
    assert changes(explorer, index=0)
    instances = viz.instance_predictions(viz_trace, index=-1, max_instances=4)
    assert len(instances) == 4
    assert all(a["score"] >= b["score"] for a, b in zip(instances, instances[1:]))
    assert instances[0]["mask"].shape == CONFIG.image_size


def test_explorer_repr_is_deterministic(viz_trace):
    explorer = viz.reference_browser(viz_trace)
    bundle = explorer._repr_mimebundle_()
    assert bundle["text/plain"] == "<Explorer reference points: level=0>"
    assert "application/vnd.jupyter.widget-view+json" in bundle
    with pytest.raises(KeyError, match="unknown control"):
        explorer.set(nope=1)


def test_missing_values_say_what_to_keep(model):
    images = viz.normalise(viz.sample_photo(CONFIG.image_size))
    t = trace(model, images, keep=["images"])
    with pytest.raises(KeyError, match="keep="):
        viz.plot_reference_grid(t, level=0)


def test_load_model_random_fallback():
    model, weights = load_model(pretrained=False, verbose=False)
    assert weights == "random" and not model.training
    model, weights = load_model(verbose=False)     # pretrained when installed, else random
    assert weights in ("pretrained", "random")


def test_bilinear_corners_match_grid_sample():
    """The four neighbours and weights of a point are what grid_sample reads, on and off the map."""
    torch.manual_seed(0)
    value_map = torch.randn(3, 5, 4)                                    # (h, w, D)
    for location in [(0.53, 0.41), (0.02, 0.95), (1.07, -0.1), (0.5 / 5, 0.5 / 3)]:
        cell = viz.bilinear_corners(location, (3, 5))
        assert abs(sum(c["weight"] for c in cell["corners"]) - 1) < 1e-9
        assert cell["pixel"] == pytest.approx((location[0] * 5 - 0.5, location[1] * 3 - 0.5))
        grid = torch.tensor(location).view(1, 1, 1, 2) * 2 - 1
        expected = torch.nn.functional.grid_sample(value_map.permute(2, 0, 1)[None], grid.float(),
                                                   align_corners=False)[0, :, 0, 0]
        assert torch.allclose(viz.bilinear_sample(value_map, location), expected, atol=1e-6)
    centre = viz.bilinear_corners((0.5 / 5, 0.5 / 3), (3, 5))          # a pixel centre: one neighbour
    assert [c["weight"] for c in centre["corners"]] == [1, 0, 0, 0]
    outside = viz.bilinear_corners((0.02, 0.95), (3, 5))
    assert [c["inside"] for c in outside["corners"]] == [False, True, False, False]


def test_pixel_inside_finds_a_pixel_on_the_object():
    mask = torch.zeros(32, 32, dtype=torch.bool)
    mask[16:30, 2:12] = True
    x, y = viz.pixel_inside(mask.numpy(), (8, 8))
    assert mask[int((y + 0.5) * 4), int((x + 0.5) * 4)]
    small = torch.zeros(32, 32, dtype=torch.bool)
    small[18:22, 2:6] = True                                      # misses the 2×2 level's centres (8, 24)
    with pytest.raises(ValueError, match="no pixel centre of the 2×2 level"):
        viz.pixel_inside(small.numpy(), (2, 2))


def test_bilinear_cell_and_sampling_overview(viz_trace):
    figure = viz.plot_bilinear_cell((0.61, 0.99), (4, 4), level=1)
    figure.canvas.draw()
    labels = " ".join(t.get_text() for t in figure.axes[0].texts)
    assert "off the map" in labels and "fx=" in labels
    torch.manual_seed(1)
    fresh = trace(Mask2Former(CONFIG).eval(), viz_trace.value("images"),
                  keep=["images", "panoptic_head.pixel_decoder.*"])
    figure = viz.plot_sampling_overview({"init": fresh, "trained": viz_trace}, layer=1, level=2, x=3, y=4)
    figure.canvas.draw()
    assert len(figure.axes) == 3                                       # two panels and the colour bar
    assert figure.axes[2].get_ylabel() == "attention weight"
    nH, L, P = CONFIG.num_heads, CONFIG.num_levels, CONFIG.num_points
    points = [c for c in figure.axes[0].collections if len(c.get_offsets()) == nH * P]
    assert len(points) == L                                            # one marker set per level
    with pytest.raises(ValueError, match="at least one trace"):
        viz.plot_sampling_overview({}, layer=0, level=0, x=0, y=0)


def test_heatmaps_have_colour_bars(viz_trace):
    """Every heatmap of the encoder-side views comes with a colour bar."""
    levels = viz.plot_feature_levels(viz_trace)
    maps = [ax for ax in levels.axes if ax.images and ax.images[0].get_cmap().name == "magma"]
    assert len(maps) == 4 and all(ax.images[0].colorbar is not None for ax in maps)
    positional = viz.plot_positional_channels(viz_trace, level=1)
    assert any(ax.images and ax.images[0].colorbar is not None for ax in positional.axes)
    channel = viz.plot_feature_channel(viz_trace, level=2, channel=1)
    bar = next(ax.images[0].colorbar for ax in channel.axes if ax.images and ax.images[0].colorbar)
    assert [t.get_text() for t in bar.ax.get_yticklabels()] == ["min", "max"]
    one = viz.plot_positional_channel(viz_trace, level=0, channel=3)
    assert any(ax.images and ax.images[0].colorbar is not None for ax in one.axes)


def test_by_hand_sum_of_bilinear_samples_is_the_core(viz_trace, model):
    """Σ over L·P of weight × bilinear_sample, per head, is what the model's core computes."""
    from m2f_teach.model.deformable_attention import multi_scale_deformable_attn
    pd = "panoptic_head.pixel_decoder."
    attention = model.panoptic_head.pixel_decoder.encoder.layers[0].self_attn
    nH, L, P = CONFIG.num_heads, CONFIG.num_levels, CONFIG.num_points
    S, C = CONFIG.num_tokens, CONFIG.feat_channels
    D = C // nH
    with torch.no_grad():
        value = attention.value_proj(viz_trace.value(pd + "encoder_inputs")[:, 0]).view(S, nH, D)
    locations = viz_trace.value(pd + "encoder.layers.0.self_attn.sampling_locations")[0]      # (S, nH, L, P, 2)
    weights = viz_trace.value(pd + "encoder.layers.0.self_attn.attention_weights")[0].view(S, nH, L, P)
    starts = [0] + [sum(h * w for h, w in CONFIG.spatial_shapes[:l + 1]) for l in range(L - 1)]
    q = viz.query_index(viz_trace, 2, 1, 2)
    by_hand = torch.zeros(nH, D)
    for head in range(nH):
        for l, (h, w) in enumerate(CONFIG.spatial_shapes):
            value_map = value[starts[l]:starts[l] + h * w, head].view(h, w, D)
            for p in range(P):
                by_hand[head] += weights[q, head, l, p] * viz.bilinear_sample(value_map, locations[q, head, l, p])
    core = multi_scale_deformable_attn(value[None], list(CONFIG.spatial_shapes), locations[None, q:q + 1],
                                       weights[None, q:q + 1])[0, 0]                          # (C,)
    assert torch.allclose(by_hand.reshape(C), core, atol=1e-5)


def colour_bars(figure):
    return [ax for ax in figure.axes if ax.get_label() == "<colorbar>"]


def test_cross_attention_data_with_and_without_the_mask(viz_trace):
    config = viz_trace.config
    for layer in range(config.num_decoder_layers):
        for query in range(config.num_queries):
            d = viz.cross_attention_data(viz_trace, layer, query, head=1)
            h, w = config.spatial_shapes[layer % config.num_levels]
            assert d["weights"].shape == d["weights_unmasked"].shape == d["blocked"].shape == (h, w)
            assert abs(d["weights"].sum() - 1) < 1e-5 and abs(d["weights_unmasked"].sum() - 1) < 1e-5
            assert (d["weights"][d["blocked"]] == 0).all()
            if d["reset"]:
                assert not d["blocked"].any() and abs(d["inside"] - 1) < 1e-5
            else:                                   # the mask renormalises the weight inside it
                inside = d["weights_unmasked"][~d["blocked"]]
                assert abs(d["inside"] - inside.sum()) < 1e-5
                assert abs(d["weights"][~d["blocked"]] - inside / inside.sum()).max() < 1e-5


def test_cross_and_self_attention_plots(viz_trace):
    figure = viz.plot_cross_attention(viz_trace, layer=1, query=2, head=3)
    assert len(figure.axes) == 5 and len(colour_bars(figure)) == 2
    assert "query 2, head 3" in figure.axes[1].get_title()
    assert all(ax.get_xlabel() for ax in figure.axes[:3])
    queries = viz.matched_queries(viz_trace, threshold=0.0)
    assert sorted(queries) == list(range(CONFIG.num_queries))
    figure = viz.plot_self_attention(viz_trace, layer=4, head=0, queries=queries[:2])
    assert len(colour_bars(figure)) == 1
    assert figure.axes[0].get_images()[0].get_array().shape == (CONFIG.num_queries,) * 2
    assert figure.axes[0].get_xlabel() and figure.axes[0].get_ylabel()


def test_matched_queries_are_those_naming_an_object(viz_trace):
    probs = viz_trace.value("panoptic_head.cls_pred.9")[0].softmax(-1)[:, :-1].max(-1).values
    threshold = float(probs.median())
    queries = viz.matched_queries(viz_trace, threshold=threshold)
    assert set(queries) == {q for q in range(CONFIG.num_queries) if probs[q] >= threshold}
    assert [float(probs[q]) for q in queries] == sorted((float(probs[q]) for q in queries), reverse=True)


def test_sigmoid_maps_have_a_colour_bar_marked_at_one_half(viz_trace):
    for figure in (viz.plot_attention_mask(viz_trace, layer=0, query=1),
                   viz.plot_deep_supervision(viz_trace, query=1)):
        bars = colour_bars(figure)
        assert bars
        sigmoid = [bar for bar in bars if 0.5 in list(bar.get_yticks())]
        assert sigmoid and any(line.get_ydata()[0] == 0.5 for line in sigmoid[0].get_lines())


def test_cross_attention_explorer_redraws_on_each_control(viz_trace, model):
    explorer = viz.cross_attention_explorer(viz_trace)
    assert changes(explorer, query=3)
    assert changes(explorer, head=5)
    assert changes(explorer, layer=2)
    assert no_model_run(explorer, model, layer=4)
    assert "layer 4, level 1" in explorer.text and "head 5" in explorer.text
    d = viz.cross_attention_data(viz_trace, 4, 3, head=5)
    assert f"largest weight {d['weights'].max():.2f}" in explorer.text


def test_a_point_is_off_the_map_exactly_when_grid_sample_reads_zero_there():
    torch.manual_seed(0)
    shapes = [(4, 4), (3, 5)]
    locations = torch.rand(500, 2, 1, 2) * 2 - 0.5                                 # (N, L, P, 2) in [−0.5, 1.5)
    off = viz.off_map(locations, shapes)                                           # (N, L, P)
    for l, (h, w) in enumerate(shapes):
        ones = torch.ones(1, 1, h, w)
        grid = 2 * locations[None, :, l] - 1                                       # (1, N, P, 2)
        mass = torch.nn.functional.grid_sample(ones, grid, align_corners=False)[0, 0]   # (N, P)
        assert torch.equal(off[:, l], mass == 0)
    assert 0.2 < float(off.float().mean()) < 0.8


def test_off_map_share_is_the_weight_on_points_that_read_zero(viz_trace):
    layer = 1
    prefix = f"panoptic_head.pixel_decoder.encoder.layers.{layer}.self_attn."
    locations = viz_trace.value(prefix + "sampling_locations")                     # (B, S, nH, L, P, 2)
    B, S, nH, L, P, _ = locations.shape
    weights = viz_trace.value(prefix + "attention_weights").view(B, S, nH, L, P)
    expected = 0.0
    for l, (h, w) in enumerate(CONFIG.spatial_shapes):
        ones = torch.ones(B * nH, 1, h, w)
        grid = 2 * locations[:, :, :, l].permute(0, 2, 1, 3, 4).flatten(0, 1) - 1    # (B·nH, S, P, 2)
        mass = torch.nn.functional.grid_sample(ones, grid, align_corners=False)[:, 0]  # (B·nH, S, P)
        expected += float((weights[:, :, :, l].permute(0, 2, 1, 3).flatten(0, 1) * (mass == 0)).sum()) / (B * S * nH)
    share = viz.off_map_share(viz_trace, layer)
    assert abs(share["total"] - expected) < 1e-5 and abs(sum(share["per_level"]) - share["total"]) < 1e-6
    assert share["total"] > 0.05                                                   # the small levels lose points


def test_the_deformable_explorer_counts_the_points_off_the_map(viz_trace):
    explorer = viz.deformable_explorer(viz_trace)
    explorer.set(layer=0, level=0, x=0, y=0)
    assert "off the map" in explorer.text


def test_plot_maps_draws_one_panel_per_map_and_the_picture(viz_trace):
    maps = {"memory 2": viz_trace.value("panoptic_head.pixel_decoder.multi_scale_memories.2"),
            "mask_features": viz_trace.value("panoptic_head.pixel_decoder.mask_features")[0]}
    figure = viz.plot_maps(maps, image=viz.sample_photo(CONFIG.image_size))
    titles = [ax.get_title() for ax in figure.axes if ax.get_title()]
    assert len(titles) == 3 and titles[1].startswith("memory 2") and titles[2].startswith("mask_features")


def test_the_attention_mask_explorer_opens_on_the_query_asked_for(viz_trace):
    explorer = viz.attention_mask_explorer(viz_trace, query=3, layer=2)
    assert (explorer.controls["query"].value, explorer.controls["layer"].value) == (3, 2)


def test_every_glossary_letter_printed_in_notebook_00_has_a_meaning():
    from m2f_teach.model import M2FConfig
    from m2f_teach.viz.glossary import glossary
    blank = [letter for letter, meaning, _ in glossary(M2FConfig.seed()) if not meaning]
    assert not blank, f"glossary letters without a meaning: {blank}"
