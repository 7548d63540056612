"""The explorers' base class: a control's new value redraws once, the picture is the figure's PNG, errors are shown."""
import base64

import ipywidgets as W
import matplotlib.pyplot as plt
import pytest
from matplotlib.figure import Figure

from fslcourse.widgets.base import Explorer


class Counter(Explorer):
    """A minimal explorer: ``n`` points on a line; ``n`` above ``limit`` is impossible."""

    def __init__(self, n: int = 2, limit: int = 10, **kwargs):
        self.n = W.IntSlider(value=n, min=1, max=20, description="n")
        self.bump = W.Button(description="n + 1")
        self.bump.on_click(lambda _b: setattr(self.n, "value", self.n.value + 1))
        self.controls = {"n": self.n, "bump": self.bump}
        self.limit, self.renders = limit, 0
        super().__init__([[self.n, self.bump], self.status], figsize=(3, 2), **kwargs)

    def compute(self) -> dict:
        if self.n.value > self.limit:
            raise ValueError(f"n={self.n.value} is above {self.limit}")
        self.renders += 1
        return {"n": self.n.value}

    def draw(self, fig, shown: dict) -> None:
        ax = fig.axes[0] if fig.axes else fig.add_subplot(111)
        ax.plot(range(shown["n"]), "o")
        ax.set_title(f"{shown['n']} points")

    def describe(self, shown: dict) -> str:
        return f"n = {shown['n']}"


class Quiet(Counter):
    """``describe`` returns ``None`` (the status line is left alone); impossible settings raise."""

    def describe(self, shown: dict) -> None:
        return None


def _picture(ex: Explorer) -> bytes:
    (output,) = ex.out.outputs
    return base64.b64decode(output["data"]["image/png"])


def test_a_control_redraws_once_and_the_picture_is_the_figure():
    figures = plt.get_fignums()
    ex = Counter(n=2)
    assert ex.shown == {"n": 2} and ex.renders == 1 and ex.status.value == "n = 2"
    assert [type(c) for c in ex.widget.children] == [W.HBox, W.HTML, W.Output]
    assert list(ex.widget.children[0].children) == [ex.n, ex.bump] and ex.widget.children[1] is ex.status
    first = _picture(ex)
    assert first.startswith(b"\x89PNG") and first == ex.png()
    ex.n.value = 5
    assert ex.renders == 2 and ex.shown == {"n": 5} and ex.status.value == "n = 5"
    assert len(ex.fig.axes) == 1 and ex.fig.axes[0].get_title() == "5 points"
    assert len(ex.fig.axes[0].lines) == 1  # cleared before drawing: only the new line
    assert _picture(ex) == ex.png() and _picture(ex) != first
    ex.bump.click()  # a button redraws through its own on_click only (it has no value to observe)
    assert ex.renders == 3 and ex.shown == {"n": 6}
    # the static figure: render() gives the matplotlib figure, outside pyplot
    assert ex.render() is ex.fig and isinstance(ex.fig, Figure) and plt.get_fignums() == figures


def test_persistent_axes_are_kept_between_renders():
    class Persistent(Counter):
        persistent_axes = True

    ex, kept = Counter(), Persistent()
    ax, kept_ax = ex.fig.axes[0], kept.fig.axes[0]
    ex.n.value = kept.n.value = 4
    assert ex.fig.axes[0] is not ax and len(ex.fig.axes[0].lines) == 1
    assert kept.fig.axes == [kept_ax] and len(kept_ax.lines) == 2


def test_error_title_shows_the_error_instead_of_the_picture():
    class Guarded(Counter):
        error_title = "Cannot count"

    ex = Guarded(n=2, limit=3)
    ex.n.value = 4
    assert ex.shown == {} and ex.out.outputs == ()
    assert "Cannot count:" in ex.status.value and "n=4 is above 3" in ex.status.value
    ex.n.value = 3
    assert ex.shown == {"n": 3} and ex.status.value == "n = 3" and _picture(ex) == ex.png()


def test_without_error_title_errors_raise_and_without_describe_the_status_line_stays_empty():
    with pytest.raises(ValueError, match="n=5 is above 3"):
        Quiet(n=5, limit=3)
    ex = Quiet(n=2, below=(W.HTML("below"),))
    assert [type(c) for c in ex.widget.children] == [W.HBox, W.HTML, W.Output, W.HTML]
    assert ex.status.value == "" and ex.widget.children[-1].value == "below"
    ex.n.value = 3
    assert ex.status.value == "" and ex.fig.axes[0].get_title() == "3 points"


def test_the_base_alone_does_not_draw():
    class Empty(Explorer):
        controls: dict = {}

    with pytest.raises(NotImplementedError):
        Empty([], figsize=(1, 1))
