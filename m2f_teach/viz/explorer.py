"""`Explorer`: ipywidgets controls plus a matplotlib figure redrawn from cached data.

Every interactive view of the notebooks is an `Explorer`: a `build(figure)` function that
lays out the axes and artists once and returns `update(**values)`, which changes the artists'
data in place from a trace already computed; and a dict of controls whose values it receives.
Moving a control calls `update` and puts the rendered picture into an `ipywidgets.Image`: no
model runs and no axes are rebuilt. The artists `update` changes are listed in `update.artists`;
the explorer draws everything else once, keeps that background as a bitmap, and on each move
redraws only those artists over it (matplotlib's blitting), so an update costs a few artists'
render and one JPEG encode. Changing titles are the slowest thing to render, so an explorer
shows them as a text caption under its controls instead of inside the picture (the plain
`plot_*` functions keep them in the figure).

    explorer = Explorer(build, {"level": Dropdown(...), "channel": IntSlider(...)})
    explorer                       # in Jupyter: the controls above the picture
    explorer.set(channel=5)        # what moving the slider does; works without a browser
    explorer.figure, explorer.picture, explorer.text  # figure, rendered JPEG bytes, caption
"""
from __future__ import annotations

import html
import io
import time
from typing import Callable

import ipywidgets as widgets
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text

DPI = 80  # small notebook files; nbval ignores pictures but git does not


def new_figure(figsize=(6.4, 4.0)) -> Figure:
    """A `Figure` outside pyplot (shown only when returned or displayed), at the notebook dpi."""
    figure = Figure(figsize=figsize, dpi=DPI)
    FigureCanvasAgg(figure)
    return figure


class Explorer:
    """Controls + picture. `build(figure)` returns `update(**values)`, called on every change."""

    def __init__(self, build: Callable, controls: dict, figsize=(6.4, 4.0), title: str = "",
                 on_change: Callable | None = None):
        self.build = build
        self.controls = dict(controls)
        self.title = title
        self.on_change = on_change          # e.g. adjust a slider's range when the level changes
        self.figure = new_figure(figsize)
        self.draw = build(self.figure)
        self._background = None
        # shown at its own size (a flex column would stretch it to the notebook's width)
        self.image = widgets.Image(format="jpeg", layout=widgets.Layout(align_self="flex-start", max_width="100%"))
        self.caption = widgets.HTML(value="")
        # controls wrap onto a second row rather than squeeze a slider to a few pixels
        controls = widgets.HBox(list(self.controls.values()), layout=widgets.Layout(flex_flow="row wrap"))
        self.widget = widgets.VBox([controls, self.caption, self.image])
        self.updates = 0
        self.last_update_s = 0.0
        self._muted = False
        for name, control in self.controls.items():
            control.observe(self._changed, names="value")
        self.update()

    # ---- state ---------------------------------------------------------------------------------
    def values(self) -> dict:
        return {name: control.value for name, control in self.controls.items()}

    @property
    def picture(self) -> bytes:
        """The current picture, JPEG bytes."""
        return self.image.value

    @property
    def text(self) -> str:
        """The caption: the view's changing titles, as plain text."""
        return html.unescape(self.caption.value.replace("<br>", "\n"))

    def set(self, **values):
        """Set control values as a student would; redraws once at the end."""
        unknown = set(values) - set(self.controls)
        if unknown:
            raise KeyError(f"unknown control(s) {sorted(unknown)}; this explorer has {list(self.controls)}")
        self._muted = True
        try:
            for name, value in values.items():
                self.controls[name].value = value
                if self.on_change is not None:
                    self.on_change(self, name)
        finally:
            self._muted = False
        self.update()
        return self

    # ---- drawing -------------------------------------------------------------------------------
    def _changed(self, change):
        if self._muted:
            return
        name = next((n for n, c in self.controls.items() if c is change["owner"]), None)
        if self.on_change is not None and name is not None:
            self._muted = True
            try:
                self.on_change(self, name)
            finally:
                self._muted = False
        self.update()

    def update(self):
        start = time.perf_counter()
        self.draw(**self.values())
        self.image.value = self.render()
        self.last_update_s = time.perf_counter() - start
        self.updates += 1

    def dynamic_artists(self) -> list:
        return list(getattr(self.draw, "artists", []))

    def render(self) -> bytes:
        """Blit the changed artists over the cached background; encode as JPEG. Changing texts
        go to the caption."""
        from PIL import Image

        canvas = self.figure.canvas
        artists = self.dynamic_artists()
        texts = [a for a in artists if _is_title(a)]
        self.caption.value = "<br>".join(html.escape(t.get_text()).replace("\n", " · ")
                                         for t in texts if t.get_text())
        artists = [a for a in artists if not _is_title(a)]
        for artist in texts:
            artist.set_visible(False)
        for artist in artists:
            artist.set_animated(True)
        if self._background is None:
            canvas.draw()                                   # everything but the animated artists
            self._background = canvas.copy_from_bbox(self.figure.bbox)
        else:
            canvas.restore_region(self._background)
        for artist in artists:
            if artist.figure is not None:                   # not removed since
                self.figure.draw_artist(artist)
        for ax in self.figure.axes:                         # frames go back over blitted images
            for spine in ax.spines.values():
                if spine.get_visible():
                    self.figure.draw_artist(spine)
        width, height = canvas.get_width_height(physical=True)
        picture = Image.frombuffer("RGBA", (width, height), canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
        buffer = io.BytesIO()
        picture.convert("RGB").save(buffer, format="JPEG", quality=90)
        return buffer.getvalue()

    # ---- display -------------------------------------------------------------------------------
    def _repr_mimebundle_(self, **kwargs):
        bundle = self.widget._repr_mimebundle_(**kwargs)
        if isinstance(bundle, tuple):
            bundle = bundle[0]
        bundle = dict(bundle)
        bundle["text/plain"] = repr(self)
        return bundle

    def __repr__(self):
        values = ", ".join(f"{k}={v!r}" for k, v in self.values().items())
        return f"<Explorer {self.title or self.build.__name__}: {values}>"


def _is_title(artist) -> bool:
    """An axes title or the figure's suptitle (these go to the caption in an explorer)."""
    if not isinstance(artist, Text):
        return False
    axes = artist.axes
    if axes is not None and artist in (axes.title, axes._left_title, axes._right_title):
        return True
    figure = artist.get_figure()
    return figure is not None and artist is getattr(figure, "_suptitle", None)


def int_slider(name: str, value: int, low: int, high: int, **kwargs) -> widgets.IntSlider:
    return widgets.IntSlider(value=value, min=low, max=high, description=name,
                             continuous_update=True, **kwargs)


def dropdown(name: str, options, value) -> widgets.Dropdown:
    return widgets.Dropdown(options=options, value=value, description=name)


def static(build: Callable, figure=None, figsize=(6.4, 4.0), **values):
    """Build a view on a new (or given) figure, draw it once with `values`, return the figure."""
    figure = figure if figure is not None else new_figure(figsize)
    build(figure)(**values)
    return figure
