"""Feature maps: the backbone's four levels (seed step 1) and any other `(B, C, H, W)` maps.

    figure = plot_feature_levels(trace)                   # one panel per level
    figure = plot_feature_channel(trace, level=3, channel=7)
    feature_browser(trace)                                # level + channel widget
    figure = plot_maps({"lateral": x, "mask_features": y}) # any (C, h, w) maps, side by side
"""
from __future__ import annotations

import numpy as np

from ._common import as_numpy, clean_axes, kept, show_image
from .explorer import Explorer, dropdown, int_slider, new_figure, static
from .images import image_of

BACKBONE = "backbone.feats.{}"


def _names(trace, pattern: str) -> list[str]:
    names = trace.names(pattern=pattern.format("*"))
    if not names:
        raise KeyError(f"no traced tensor matches {pattern.format('*')!r}")
    return names


def _level_title(trace, name: str) -> str:
    B, C, h, w = trace.shape(name)
    H, W = trace.config.image_size
    short = ".".join(name.split(".")[-2:])                           # feats.3, multi_scale_memories.0
    return f"{short}\n{C} ch, {h}×{w}, stride {H // h}"


def plot_feature_levels(trace, pattern: str = BACKBONE, batch: int = 0, figure=None):
    """One panel per map: the channel-mean of |feature| (where a level responds at all)."""
    names = _names(trace, pattern)
    image = image_of(trace, batch)
    panels = len(names) + (image is not None)
    figure = figure if figure is not None else new_figure((2.4 * panels, 2.8))
    axes = figure.subplots(1, panels)
    k = 0
    if image is not None:
        axes[0].imshow(image)
        axes[0].set_title(f"input\n{image.shape[0]}×{image.shape[1]}", fontsize=9)
        clean_axes(axes[0])
        k = 1
    for ax, name in zip(axes[k:], names):
        x = kept(trace, name)[batch]                                 # (C, h, w)
        im = ax.imshow(as_numpy(x.abs().mean(0)), cmap="magma", interpolation="nearest")
        ax.set_title(_level_title(trace, name), fontsize=9)
        clean_axes(ax)
        colourbar = figure.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
        colourbar.ax.tick_params(labelsize=7)
    axes[k].set_xlabel("mean |activation| over channels", fontsize=8)
    figure.tight_layout()
    return figure


def plot_maps(maps: dict, image=None, figure=None):
    """One panel per named `(C, h, w)` (or `(1, C, h, w)`) map: the channel-mean of |map|, each with
    its own colour scale; `image` `(H, W, 3)`, if given, comes first."""
    panels = len(maps) + (image is not None)
    figure = figure if figure is not None else new_figure((2.4 * panels, 2.8))
    axes = np.atleast_1d(figure.subplots(1, panels))
    if image is not None:
        axes[0].imshow(image)
        axes[0].set_title(f"input\n{image.shape[0]}×{image.shape[1]}", fontsize=9)
        clean_axes(axes[0])
    for ax, (name, x) in zip(axes[panels - len(maps):], maps.items()):
        x = x[0] if x.dim() == 4 else x                               # (C, h, w)
        im = ax.imshow(as_numpy(x.abs().mean(0)), cmap="magma", interpolation="nearest")
        ax.set_title(f"{name}\n{x.shape[0]} ch, {x.shape[1]}×{x.shape[2]}", fontsize=9)
        clean_axes(ax)
        colourbar = figure.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
        colourbar.ax.tick_params(labelsize=7)
    axes[panels - len(maps)].set_xlabel("mean |activation| over channels", fontsize=8)
    figure.tight_layout()
    return figure


def build_feature_channel(trace, pattern: str = BACKBONE, batch: int = 0):
    """`build(figure) -> update(level, channel)`: one channel of one map beside the input picture."""
    names = _names(trace, pattern)
    image = image_of(trace, batch)
    H, W = trace.config.image_size

    def build(figure):
        figure.subplots_adjust(left=0.02, right=0.88, bottom=0.03, top=0.86, wspace=0.06)
        ax_image, ax_map = figure.subplots(1, 2)
        if image is not None:
            show_image(ax_image, image)
        ax_image.set_title("input", fontsize=9)
        # each channel is drawn between its own min (0) and max (1); the caption gives the range
        im = ax_map.imshow(np.zeros((1, 1)), cmap="viridis", extent=(0, W, H, 0), interpolation="nearest",
                           vmin=0, vmax=1)
        colourbar = figure.colorbar(im, cax=figure.add_axes((0.9, 0.1, 0.025, 0.7)), ticks=[0, 1])
        colourbar.ax.set_yticklabels(["min", "max"], fontsize=7)
        colourbar.set_label("this channel's range", fontsize=7)
        title = ax_map.set_title("", fontsize=9)
        for ax in (ax_image, ax_map):
            clean_axes(ax)

        def update(level, channel):
            name = names[level]
            x = kept(trace, name)[batch]                             # (C, h, w)
            C, h, w = x.shape
            channel = min(channel, C - 1)
            values = as_numpy(x[channel])
            low, high = float(values.min()), float(values.max())
            im.set_data((values - low) / (high - low if high > low else 1.0))
            title.set_text(f"{'.'.join(name.split('.')[-2:])} channel {channel} of {C}  ({h}×{w})\n"
                           f"range [{low:.2f}, {high:.2f}] (yellow = high)")
        update.artists = [im, title]
        return update
    return build


def plot_feature_channel(trace, level: int, channel: int, pattern: str = BACKBONE, batch: int = 0,
                         figure=None):
    """One channel of one map beside the input picture, on the same extent."""
    return static(build_feature_channel(trace, pattern, batch), figure, (6.4, 3.2), level=level,
                  channel=channel)


def feature_browser(trace, pattern: str = BACKBONE, batch: int = 0) -> Explorer:
    """Widget: pick a level and a channel; the channel's map is drawn from the cached trace."""
    names = _names(trace, pattern)
    channels = [trace.shape(n)[1] for n in names]
    level = dropdown("level", [(f"{i}: {trace.shape(n)[-2]}×{trace.shape(n)[-1]}", i)
                               for i, n in enumerate(names)], 0)
    channel = int_slider("channel", 0, 0, channels[0] - 1)

    def on_change(explorer, name):
        if name == "level":
            channel.max = channels[level.value] - 1

    return Explorer(build_feature_channel(trace, pattern, batch), {"level": level, "channel": channel},
                    figsize=(6.4, 3.2), title="feature channels", on_change=on_change)
