"""The explorers' base class: controls above a picture that is redrawn whenever a control changes.

Every widget of the course (``notebooks/01_episodes.ipynb`` to ``08_diffusion_augmentation.ipynb``) is a subclass.
"""
from __future__ import annotations

import io
from functools import cached_property

import ipywidgets as W
from IPython.display import Image
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


class Explorer:
    """Controls, an optional status line and a picture; a control's new value recomputes and redraws.

    A subclass creates its controls, names them in ``self.controls``, calls ``super().__init__`` with their layout
    and supplies :meth:`compute` (the data to show), :meth:`draw` (the figure) and, for a status line, :meth:`describe`.

    The figure lives outside pyplot (no inline double display, no leaked figures). Its PNG, :meth:`png`, is
    the only output of an ``ipywidgets.Output``: it is part of the widget state a notebook saves, so the HTML
    pages and slides show the last picture without a kernel.

    Args:
        rows: what goes above the picture, top to bottom: a list of widgets is one row (an ``HBox``), a
            widget stands alone (``self.status`` where the status line goes).
        figsize: the figure's ``(width, height)`` in inches.
        dpi: the figure's resolution.
        below: widgets under the picture.

    Attributes:
        controls: ``{name: ipywidget}``, set by the subclass before calling ``__init__``; each control with a
            ``value`` redraws when it changes (a button gets its own ``on_click``).
        status: an ``ipywidgets.HTML`` line, filled by :meth:`describe`.
        fig: the matplotlib figure, drawn again on every update.
        shown: what the last :meth:`render` drew (``{}`` after an error shown in the status line).
        out: the ``ipywidgets.Output`` that shows the figure.
        widget: the box to display in a notebook.
    """

    error_title: str | None = None  # if set, a ValueError from compute() is shown in the status line, not raised
    persistent_axes = False  # True: draw() keeps its axes from one render to the next (the figure is not cleared)

    def __init__(self, rows: list, figsize: tuple[float, float], dpi: int = 72, below: tuple = ()):
        self.fig = Figure(figsize=figsize, dpi=dpi)
        FigureCanvasAgg(self.fig)
        self.shown: dict = {}
        self.out = W.Output()
        self.widget = W.VBox([W.HBox(row) if isinstance(row, list) else row for row in rows] + [self.out, *below])
        for control in self.controls.values():
            if control.has_trait("value"):
                control.observe(lambda _change: self.update(), names="value")
        self.update()

    @cached_property
    def status(self) -> W.HTML:
        """The status line (made on first use, so a subclass can place it in ``rows`` before ``__init__``)."""
        return W.HTML()

    def compute(self) -> dict:
        """The data for the current control values (what :meth:`draw` draws)."""
        raise NotImplementedError

    def draw(self, fig, shown: dict) -> None:
        """Draw ``shown``, the output of :meth:`compute`, on ``fig``."""
        raise NotImplementedError

    def describe(self, shown: dict) -> str | None:
        """The status line's text for ``shown`` (``None``: the status line is not used)."""
        return None

    def render(self):
        """Recompute and redraw; returns the matplotlib figure (``self.shown`` holds its data)."""
        self.shown = self.compute()
        if not self.persistent_axes:
            self.fig.clear()
        self.draw(self.fig, self.shown)
        return self.fig

    def png(self) -> bytes:
        """The figure as PNG bytes: the picture the widget shows."""
        buf = io.BytesIO()
        self.fig.savefig(buf, format="png", dpi=self.fig.dpi)
        return buf.getvalue()

    def update(self) -> None:
        """Redraw after a control changed: the new picture and status line, or the error for impossible settings."""
        try:
            self.render()
        except ValueError as err:
            if self.error_title is None:
                raise
            self.shown = {}
            self.status.value = f"<b style='color:#b00'>{self.error_title}:</b> {err}"
            self.out.outputs = ()
            return
        text = self.describe(self.shown)
        if text is not None:
            self.status.value = text
        # Set the outputs instead of `with out: display(...)`: no display or clear message reaches the notebook
        # cell, so the picture lives only in the widget (nbval has nothing to compare, a cell moving a control stays quiet).
        self.out.outputs = ()
        self.out.append_display_data(Image(self.png()))
