"""Pictures and widgets for the notebooks: plain functions of a `Trace` that return figures.

Every widget is an `Explorer` (controls + a picture redrawn from the cached trace, no model
run per move); every picture a widget shows can also be drawn by a plain function, which is
what the tests call.
"""

import importlib

# module → the names it defines; imported on first use, so that `train` (which only plots
# its loss) does not import the widgets' ipywidgets
_MODULES = {
    "cross_attention": ("colour_bar", "cross_attention_data", "cross_attention_explorer", "matched_queries",
        "plot_cross_attention", "plot_self_attention",),
    "decoder": ("attention_mask_data", "attention_mask_explorer", "blocked_rows", "plot_attention_mask",),
    "deformable": ("deformable_explorer", "off_map", "off_map_share", "plot_initial_ring", "plot_sampling_points",
        "query_index", "sampling_points",),
    "deformable_by_hand": ("bilinear_corners", "bilinear_sample", "pixel_inside", "plot_bilinear_cell",
        "plot_sampling_overview",),
    "diagram": ("architecture_diagram",),
    "explorer": ("DPI", "Explorer", "new_figure",),
    "features": ("feature_browser", "plot_feature_channel", "plot_feature_levels", "plot_maps",),
    "glossary": ("glossary", "glossary_text",),
    "images": ("denormalise", "normalise", "sample_photo", "shapes_image",),
    "notes": ("weights_note",),
    "positional": ("plot_positional_channel", "plot_positional_channels", "positional_browser",),
    "predictions": ("instance_predictions", "plot_deep_supervision", "plot_instances", "prediction_explorer",),
    "reference_points": ("plot_reference_grid", "reference_browser",),
    "training": ("plot_history", "plot_stages", "LivePlot", "plot_ablations",),
}
_WHERE = {name: module for module, names in _MODULES.items() for name in names}
__all__ = list(_WHERE)


def __getattr__(name):
    """`viz.NAME` imports the module that defines NAME on first use; `viz.MODULE` imports MODULE."""
    if name in _WHERE:
        value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    else:
        try:
            value = importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as err:
            if err.name != f"{__name__}.{name}":     # the module exists, one of its imports does not
                raise
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_WHERE))
