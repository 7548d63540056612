"""The explorers' base class: controls above a picture that is redrawn whenever a control changes.

Every widget of the course (``notebooks/01_episodes.ipynb`` to ``09_diffusion_augmentation.ipynb``) is a subclass.

Redraws asked for by the browser are coalesced: a control moved in the browser reaches the kernel as a comm
message, and its handler only marks the picture stale and schedules one redraw on the kernel's event loop a
moment later (:data:`COALESCE_S` after the last change, at most :data:`MAX_WAIT_S` after the first). Messages
already waiting (the rest of a slider drag) are handled first and find the redraw pending, so one redraw of the
latest state follows however many values arrived. A change made
by code in a cell (or outside a kernel: tests, scripts) redraws at once, so ``ex.n.value = 5; ex.shown`` works.
"""
from __future__ import annotations

import asyncio
import base64
import html
import io
import traceback
from collections.abc import Callable
from functools import cached_property

import ipywidgets as W
import matplotlib
import numpy as np
import PIL.Image
from IPython import get_ipython
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .plotting import MIN_TEXT_PX, text_points

COALESCE_S = 0.01  # a browser-driven redraw waits this long after the last change, so queued messages come first
MAX_WAIT_S = 0.1  # ... but no longer than this after the first change (a long drag still shows pictures)


def browser_event_loop() -> asyncio.AbstractEventLoop | None:
    """The kernel's running event loop if the current message is a widget comm message from the browser, else ``None``.

    ipykernel (6 and 7) handles each shell message in a coroutine on the main thread's asyncio loop and records
    the message as the shell parent, so a ``comm_msg`` parent means "a control moved in the browser". Cell code
    (``execute_request``), scripts and tests get ``None``: their changes redraw synchronously.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    kernel = getattr(get_ipython(), "kernel", None)  # None outside a kernel (a plain IPython shell has no kernel)
    if kernel is None:
        return None
    try:
        parent = kernel.get_parent("shell")
    except Exception:  # noqa: BLE001 (an ipykernel without get_parent: redraw synchronously)
        return None
    return loop if (parent or {}).get("header", {}).get("msg_type") == "comm_msg" else None


def check_whole(**limits: tuple) -> None:
    """Refuse, in one line, a constructor argument a control would silently clamp or break on.

    Args:
        limits: ``name=(value, least, most)``; ``most`` may be ``None`` (no upper bound).

    Raises:
        ValueError: naming the first argument that is not a whole number in its range, and the range.
    """
    for name, (value, least, most) in limits.items():
        whole = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
        if not whole or value < least or (most is not None and value > most):
            span = f"from {least} to {most}" if most is not None else f"of at least {least}"
            raise ValueError(f"{name}={value!r}: give a whole number {span}")


def button(action: Callable[[], object], **kwargs) -> W.Button:
    """An ``ipywidgets.Button`` (``kwargs``: its description, icon, tooltip, layout) that runs ``action()`` when clicked."""
    made = W.Button(**kwargs)
    made.on_click(lambda _button: action())
    return made


def clear_figure(fig) -> None:
    """Empty ``fig`` like ``fig.clear()``, without first clearing every axes one by one (most of its cost)."""
    for ax in list(fig.axes):
        fig.delaxes(ax)
    fig.clear()


def png_output(png: bytes) -> dict:
    """The ``display_data`` output an ``ipywidgets.Output`` shows for PNG bytes (what ``display(Image(png))`` stores)."""
    return {"output_type": "display_data", "metadata": {},
            "data": {"image/png": base64.b64encode(png).decode("ascii"), "text/plain": "<IPython.core.display.Image object>"}}


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
        redraws: how many pictures :meth:`redraw` has set (coalesced browser changes count once).
    """

    error_title: str | None = None  # if set, a ValueError from compute() is shown in the status line, not raised
    persistent_axes = False  # True: draw() keeps its axes from one render to the next (the figure is not cleared)
    png_compression = 1  # zlib level of the PNG (1: a little larger than the default 6, several times faster)
    _background = None  # the figure drawn without its dynamic artists (see dynamic_artists), kept between renders
    _background_size = None  # the canvas size in pixels the kept background was drawn at

    def __init__(self, rows: list, figsize: tuple[float, float], dpi: int = 72, below: tuple = ()):
        self.fig = Figure(figsize=figsize, dpi=dpi)
        FigureCanvasAgg(self.fig)
        self.shown: dict = {}
        self.redraws = 0
        self._pending = None  # the scheduled browser-driven redraw (an asyncio handle), if any
        self._asked = (0.0, 0.0)  # loop times of the first and the last change since the last redraw
        self._layout_key, self._kept_layout = None, None
        self.out = W.Output()
        self.widget = W.VBox([W.HBox(row) if isinstance(row, list) else row for row in rows] + [self.out, *below])
        for control in self.controls.values():
            if control.has_trait("value"):
                control.observe(lambda _change: self.update(), names="value")
        self.update()

    def button(self, action: Callable[[], object], **kwargs) -> W.Button:
        """A :func:`button` whose ``action()`` errors show in the status line: ipywidgets only logs an exception
        raised in a click handler (there is no cell to show it in), so the click looked like it did nothing."""
        return button(lambda: self._clicked(action), **kwargs)

    def _clicked(self, action: Callable[[], object]) -> None:
        try:
            action()
        except Exception as err:  # noqa: BLE001 (shown to the user instead of the kernel's log only)
            traceback.print_exc()  # the browser's log console
            self.show_error(err, title=self.error_title or f"Error in {type(self).__name__}")

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
            clear_figure(self.fig)
        # text drawn without a size of its own (ticks, labels, legends) is readable on a projector
        with matplotlib.rc_context({"font.size": text_points(self.fig, MIN_TEXT_PX + 1)}):
            self.draw(self.fig, self.shown)
        for ax in self.fig.axes:  # tick labels are made when the figure is drawn, after the context
            ax.tick_params(labelsize=text_points(self.fig, MIN_TEXT_PX + 1))
        return self.fig

    def dynamic_artists(self) -> list | None:
        """The artists that change from one render to the next, for a subclass with ``persistent_axes = True``.

        When it returns a list, :meth:`png` draws everything else once, keeps those pixels, and later draws only
        these artists over them (blitting): the static text (keys, tick labels, panel titles) is rendered once,
        not on every click. ``None`` (the default): the whole figure is drawn every time.
        """
        return None

    def layout(self, key, make):
        """The artists ``make(fig)`` returns, made once per ``key`` and kept while the key stays the same.

        For a subclass with ``persistent_axes = True``: when ``key`` (e.g. the grid's shape) changes, the
        figure is cleared and ``make`` lays it out again; otherwise :meth:`draw` only updates the kept
        artists (an image's pixels, a title), which is much faster than building axes on every redraw.

        Args:
            key: anything comparable that decides the layout.
            make: ``make(fig) -> layout`` (axes, images, texts, in any structure the subclass likes).

        Returns:
            ``(layout, new)``: the kept layout and whether it was made just now (then lay out the margins).
        """
        if self._layout_key != key or self._kept_layout is None:
            clear_figure(self.fig)
            self._background = None
            self._kept_layout, self._layout_key = make(self.fig), key
            return self._kept_layout, True
        return self._kept_layout, False

    def png(self, scale: float = 1) -> bytes:
        """The figure as PNG bytes (RGB; the figure is opaque): the picture the widget shows.

        One Agg draw, then Pillow: ``savefig`` would draw twice on a figure that once ran ``tight_layout``
        (it leaves a layout engine behind) and encode the alpha channel too. With :meth:`dynamic_artists`, only
        those artists are drawn over the kept static pixels.

        Args:
            scale: pixels per widget pixel; a static copy for GitHub or the HTML export reads better at 2 (the
                widget's own picture is drawn at 1, its screen size).
        """
        if not scale > 0:
            raise ValueError(f"scale={scale} must be > 0; use 1 for the widget's size, 2 for a sharper static copy")
        if scale != 1:
            dpi = self.fig.get_dpi()
            self.fig.set_dpi(dpi * scale)
            try:
                return self.png()
            finally:
                self.fig.set_dpi(dpi)
        canvas, dynamic = self.fig.canvas, self.dynamic_artists()
        if dynamic is None:
            canvas.draw()
        else:
            size = canvas.get_width_height()  # a new dpi or figure size leaves the kept pixels the wrong size
            if self._background is None or self._background_size != size:
                for artist in dynamic:
                    artist.set_animated(True)  # Figure.draw skips animated artists
                canvas.draw()
                self._background, self._background_size = canvas.copy_from_bbox(self.fig.bbox), size
            else:
                canvas.restore_region(self._background)
            for artist in dynamic:
                self.fig.draw_artist(artist)
        rgba = np.asarray(self.fig.canvas.buffer_rgba())  # (H, W, 4)
        buf = io.BytesIO()
        PIL.Image.fromarray(rgba[..., :3]).save(buf, format="png", compress_level=self.png_compression)
        return buf.getvalue()

    def update(self) -> None:
        """Ask for a redraw after a control changed: at once from code, coalesced when the browser moved a control.

        From a comm message (the browser), the redraw is scheduled once on the kernel's event loop and further
        changes before it runs only postpone it a little (a debounce, capped); elsewhere :meth:`redraw` runs now.
        """
        loop = browser_event_loop()
        if loop is None:
            self.redraw()
        elif self._pending is None:
            self._asked = (loop.time(), loop.time())
            self._pending = loop.call_later(COALESCE_S, self._redraw_pending, loop)
        else:
            self._asked = (self._asked[0], loop.time())

    def _redraw_pending(self, loop: asyncio.AbstractEventLoop) -> None:
        """Run the scheduled redraw; any error goes to the status line and the picture area (no cell to raise in)."""
        first, last = self._asked
        if loop.time() - last < COALESCE_S and loop.time() - first < MAX_WAIT_S:  # changes are still arriving
            self._pending = loop.call_at(min(last + COALESCE_S, first + MAX_WAIT_S), self._redraw_pending, loop)
            return
        self._pending = None
        try:
            self.redraw()
        except Exception as err:  # noqa: BLE001 (shown to the user instead of the kernel's log only)
            traceback.print_exc()  # the browser's log console (the parent is the comm message)
            self.show_error(err, title=self.error_title or f"Error in {type(self).__name__}")

    def show_error(self, err: Exception, title: str) -> None:
        """Show ``err`` in the status line (and as text where the picture was), with ``title`` in bold red."""
        self.shown = {}
        message = str(err) if isinstance(err, ValueError) else f"{type(err).__name__}: {err}"
        self.status.value = f"<b style='color:#b00'>{title}:</b> {html.escape(message, quote=False)}"
        self.out.outputs = () if title == self.error_title else (
            {"output_type": "stream", "name": "stderr", "text": f"{title}: {message}\n"},)

    def redraw(self) -> None:
        """Redraw now: the new picture and status line, or the error for impossible settings."""
        try:
            self.render()
        except ValueError as err:
            if self.error_title is None:
                raise
            self.show_error(err, self.error_title)
            return
        text = self.describe(self.shown)
        if text is not None:
            self.status.value = text
        # Set the outputs instead of `with out: display(...)`: no display or clear message reaches the notebook
        # cell, so the picture lives only in the widget (nbval has nothing to compare, a cell moving a control
        # stays quiet). One assignment: one state message, and the browser swaps the picture without a blank.
        self.out.outputs = (png_output(self.png()),)
        self.redraws += 1
