"""Helpers shared by the course's widgets: a figure rendered to PNG bytes for an ``ipywidgets.Image``."""
from __future__ import annotations

import io


def new_figure(width: float, height: float, dpi: int = 72):
    """A matplotlib ``Figure`` with an Agg canvas, outside pyplot (no inline double display, no leaks)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def figure_png(fig) -> bytes:
    """The figure as PNG bytes (what the widget's ``Image`` shows)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi)
    return buf.getvalue()


def show_png(out, png: bytes) -> None:
    """Replace what the ``ipywidgets.Output`` ``out`` shows with one PNG.

    Sets the widget's ``outputs`` directly instead of ``with out: display(...)``, so no
    display/clear messages reach the notebook cell: the image lives only in the widget
    (nbval then has nothing to compare, and a cell that changes a control stays quiet).
    """
    from IPython.display import Image

    out.outputs = ()
    out.append_display_data(Image(png))
