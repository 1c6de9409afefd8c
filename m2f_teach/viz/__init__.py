"""Pictures and widgets for the notebooks: plain functions of a `Trace` that return figures.

Every widget is an `Explorer` (controls + a picture redrawn from the cached trace, no model
run per move); every picture a widget shows can also be drawn by a plain function, which is
what the tests call.
"""
from .cross_attention import (colour_bar, cross_attention_data, cross_attention_explorer, matched_queries,
                              plot_cross_attention, plot_self_attention)
from .decoder import attention_mask_data, attention_mask_explorer, blocked_rows, plot_attention_mask
from .deformable import (deformable_explorer, plot_initial_ring, plot_sampling_points, query_index,
                         sampling_points)
from .deformable_by_hand import (bilinear_corners, bilinear_sample, pixel_inside, plot_bilinear_cell,
                                 plot_sampling_overview)
from .diagram import architecture_diagram
from .explorer import DPI, Explorer, new_figure
from .features import feature_browser, plot_feature_channel, plot_feature_levels
from .glossary import glossary, glossary_text
from .images import denormalise, normalise, sample_photo, shapes_image
from .notes import weights_note
from .positional import plot_positional_channel, plot_positional_channels, positional_browser
from .predictions import (instance_predictions, plot_deep_supervision, plot_instances,
                          prediction_explorer)
from .reference_points import plot_reference_grid, reference_browser
from .training import plot_history, plot_stages

__all__ = [
    "DPI", "Explorer", "new_figure", "architecture_diagram", "glossary", "glossary_text",
    "sample_photo", "shapes_image", "normalise", "denormalise", "weights_note",
    "plot_feature_levels", "plot_feature_channel", "feature_browser",
    "plot_positional_channels", "plot_positional_channel", "positional_browser",
    "plot_reference_grid", "reference_browser", "plot_initial_ring", "sampling_points",
    "query_index", "plot_sampling_points", "deformable_explorer",
    "pixel_inside", "bilinear_corners", "bilinear_sample", "plot_bilinear_cell", "plot_sampling_overview",
    "colour_bar", "cross_attention_data", "cross_attention_explorer", "matched_queries", "plot_cross_attention",
    "plot_self_attention", "attention_mask_data", "blocked_rows", "plot_attention_mask", "attention_mask_explorer",
    "instance_predictions", "plot_instances", "plot_deep_supervision", "prediction_explorer",
    "plot_history", "plot_stages",
]
