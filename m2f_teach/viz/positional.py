"""The sine positional encoding (seed 2.1, `pos_embed`): C/2 channels encode y, C/2 encode x.

    plot_positional_channels(trace, level=2)          # a few channels side by side
    positional_browser(trace)                         # widget over level and channel
"""
from __future__ import annotations

import numpy as np

from ._common import as_numpy, kept
from .explorer import Explorer, dropdown, int_slider, new_figure, static

NAME = "panoptic_head.pixel_decoder.pos_embed.{}"


def plot_positional_channels(trace, level: int = 0, channels=None, batch: int = 0, figure=None):
    """A row of `pos_embed` channels of one level: the first half vary along y, the second along x."""
    pos = kept(trace, NAME.format(level))[batch]                    # (C, H_l, W_l)
    C = pos.shape[0]
    if channels is None:
        channels = [0, 1, 4, C // 2, C // 2 + 1, C // 2 + 4]   # low channels: visible periods
    figure = figure if figure is not None else new_figure((1.9 * len(channels), 2.3))
    axes = figure.subplots(1, len(channels))
    for ax, c in zip(axes, channels):
        im = ax.imshow(as_numpy(pos[c]), cmap="RdBu", vmin=-1, vmax=1, interpolation="nearest")
        axis = "y" if c < C // 2 else "x"
        ax.set_title(f"ch {c} ({axis}, {'sin' if c % 2 == 0 else 'cos'})", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0].set_xlabel("x →", fontsize=8)
    axes[0].set_ylabel("↓ y", fontsize=8)
    figure.tight_layout(rect=(0, 0, 0.93, 1))
    colourbar = figure.colorbar(im, cax=figure.add_axes((0.945, 0.2, 0.012, 0.6)))
    colourbar.ax.tick_params(labelsize=7)
    return figure


def build_positional_channel(trace, batch: int = 0):
    """`build(figure) -> update(level, channel)`: one channel as a map, and its profile along y
    (column 0) and x (row 0)."""
    def build(figure):
        figure.subplots_adjust(left=0.05, right=0.97, bottom=0.17, top=0.86, wspace=0.45)
        ax_map, ax_line = figure.subplots(1, 2)
        im = ax_map.imshow(np.zeros((1, 1)), cmap="RdBu", vmin=-1, vmax=1, interpolation="nearest",
                           extent=(0, 1, 1, 0))
        title = ax_map.set_title("", fontsize=9)
        ax_map.set_xticks([])
        ax_map.set_yticks([])
        ax_map.set_xlabel("x →", fontsize=8)
        ax_map.set_ylabel("↓ y", fontsize=8)
        colourbar = figure.colorbar(im, ax=ax_map, fraction=0.046, pad=0.03)
        colourbar.ax.tick_params(labelsize=7)
        line_y, = ax_line.plot([], [], label="along y (column 0)")
        line_x, = ax_line.plot([], [], label="along x (row 0)", linestyle="--")
        ax_line.set_ylim(-1.1, 1.1)
        ax_line.set_xlim(0, 1)
        ax_line.set_xlabel("normalised position (i + 1) / n  (the encoding uses it × 2π)")
        ax_line.set_ylabel("pos_embed value")
        ax_line.legend(fontsize=7, loc="lower left")

        def update(level, channel):
            pos = kept(trace, NAME.format(level))[batch]            # (C, H_l, W_l)
            C, h, w = pos.shape
            channel = min(channel, C - 1)
            im.set_data(as_numpy(pos[channel]))
            axis = "y" if channel < C // 2 else "x"
            title.set_text(f"pos_embed[{level}] ch {channel}: encodes {axis} ({h}×{w})")
            line_y.set_data((np.arange(h) + 1) / h, as_numpy(pos[channel, :, 0]))
            line_x.set_data((np.arange(w) + 1) / w, as_numpy(pos[channel, 0, :]))
        update.artists = [im, title, line_y, line_x]
        return update
    return build


def plot_positional_channel(trace, level: int, channel: int, batch: int = 0, figure=None):
    """One channel as a map, and its profile along y (column 0) and x (row 0)."""
    return static(build_positional_channel(trace, batch), figure, (6.4, 2.8), level=level, channel=channel)


def positional_browser(trace, batch: int = 0) -> Explorer:
    """Widget: level and channel of `pos_embed`."""
    levels = len(trace.names(pattern=NAME.format("*")))
    C = trace.shape(NAME.format(0))[1]
    level = dropdown("level", [(f"{i}: {trace.shape(NAME.format(i))[-2]}×{trace.shape(NAME.format(i))[-1]}", i)
                               for i in range(levels)], 0)
    channel = int_slider("channel", 0, 0, C - 1)
    return Explorer(build_positional_channel(trace, batch), {"level": level, "channel": channel},
                    figsize=(6.4, 2.8), title="positional encoding")
