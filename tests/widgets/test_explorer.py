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


# Coalescing: a control moved in the browser arrives as a comm message; its redraw is scheduled on the event loop.


def _run(coroutine_fn, monkeypatch):
    import asyncio

    from fslcourse.widgets import base

    async def main():
        monkeypatch.setattr(base, "browser_event_loop", asyncio.get_running_loop)
        return await coroutine_fn()

    return asyncio.run(main())


async def _settled(ex: Explorer, n: int, seconds: float = 20) -> None:
    """Wait until the control shows ``n`` and no redraw is pending (slow machines take longer)."""
    import asyncio

    for _ in range(int(seconds / 0.01)):
        if ex.n.value == n and ex._pending is None:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"no redraw of n={n} within {seconds} s")


def test_rapid_browser_changes_redraw_once_with_the_last_value(monkeypatch):
    import asyncio

    ex = Counter(n=2, limit=30)
    first = _picture(ex)
    assert ex.redraws == 1

    async def drag():
        for v in range(3, 20):  # one message per loop iteration, as the kernel handles them
            ex.n.value = v
            await asyncio.sleep(0)
        assert ex.redraws == 1 and ex.shown == {"n": 2}  # nothing drawn yet: the redraw waits for the queue
        await asyncio.sleep(0.2)

    _run(drag, monkeypatch)
    assert ex.redraws == 2 and ex.renders == 2 and ex.shown == {"n": 19} and ex.status.value == "n = 19"
    assert _picture(ex) == ex.png() != first and ex.fig.axes[0].get_title() == "19 points"


def test_changes_arriving_during_a_slow_redraw_are_coalesced_into_one_more(monkeypatch):
    import asyncio
    import time

    class Slow(Counter):
        def compute(self) -> dict:
            time.sleep(0.05)  # a render that blocks the loop, as a real one does
            return super().compute()

    ex = Slow(n=1, limit=30)

    async def drag():
        loop = asyncio.get_running_loop()
        for i, v in enumerate(range(2, 21)):  # a value every 5 ms for 90 ms: about two renders' worth
            loop.call_later(0.005 * i, setattr, ex.n, "value", v)
        await _settled(ex, n=20)

    _run(drag, monkeypatch)
    assert ex.shown == {"n": 20} and ex.fig.axes[0].get_title() == "20 points"
    assert 2 <= ex.redraws <= 6, ex.redraws  # 19 values, a handful of renders (the first one plus one per slow render)


def test_a_button_click_from_the_browser_is_deferred_too(monkeypatch):
    import asyncio

    ex = Counter(n=2)

    async def click():
        ex.bump.click()
        ex.bump.click()  # the handler sets n: 3, then 4
        await asyncio.sleep(0.1)

    _run(click, monkeypatch)
    assert ex.redraws == 2 and ex.shown == {"n": 4}


def test_an_error_in_a_deferred_redraw_shows_in_the_status_line(monkeypatch, capsys):
    import asyncio

    class Broken(Counter):
        def compute(self) -> dict:
            if self.n.value == 7:
                raise RuntimeError("the model is on another device")
            return super().compute()

    class Guarded(Counter):
        error_title = "Cannot count"

    broken, guarded = Broken(n=2), Guarded(n=2, limit=3)

    async def change():
        broken.n.value = 7
        guarded.n.value = 5
        await asyncio.sleep(0.1)

    _run(change, monkeypatch)
    assert broken.shown == {} and "Error in Broken:" in broken.status.value
    assert "RuntimeError: the model is on another device" in broken.status.value
    (output,) = broken.out.outputs  # no status line in the layout? the message is where the picture was
    assert output["output_type"] == "stream" and "RuntimeError" in output["text"]
    assert "RuntimeError" in capsys.readouterr().err  # the traceback goes to the log
    assert guarded.shown == {} and guarded.out.outputs == () and "Cannot count:</b> n=5 is above 3" in guarded.status.value

    async def recover():
        broken.n.value = 3
        await asyncio.sleep(0.1)

    _run(recover, monkeypatch)
    assert broken.shown == {"n": 3} and broken.status.value == "n = 3" and _picture(broken) == broken.png()


def test_browser_event_loop_only_for_comm_messages_in_a_running_loop(monkeypatch):
    import asyncio
    from types import SimpleNamespace

    from fslcourse.widgets import base

    assert base.browser_event_loop() is None  # no loop, no kernel
    parent = {"header": {"msg_type": "comm_msg"}}
    kernel = SimpleNamespace(get_parent=lambda channel: parent if channel == "shell" else {})
    monkeypatch.setattr(base, "get_ipython", lambda: SimpleNamespace(kernel=kernel))
    assert base.browser_event_loop() is None  # a kernel but no running loop

    async def inside():
        loop = asyncio.get_running_loop()
        assert base.browser_event_loop() is loop  # a comm message: the browser moved a control
        parent["header"]["msg_type"] = "execute_request"
        assert base.browser_event_loop() is None  # cell code: redraw at once
        monkeypatch.setattr(base, "get_ipython", lambda: None)
        assert base.browser_event_loop() is None  # a loop but no kernel (a script, a test)

    asyncio.run(inside())


def test_layout_is_kept_while_its_key_stays_and_the_png_is_one_rgb_picture():
    import io

    import numpy as np
    from PIL import Image

    class Grid(Counter):
        persistent_axes = True

        def draw(self, fig, shown: dict) -> None:
            self.made = getattr(self, "made", 0)
            axes, new = self.layout(shown["n"] > 5, lambda fig: fig.subplots(1, 2))
            self.made += new
            axes[0].set_title(f"{shown['n']} points")

    ex = Grid(n=2)
    first = ex.fig.axes
    ex.n.value = 3
    assert ex.fig.axes == first and ex.made == 1 and first[0].get_title() == "3 points"
    ex.n.value = 6  # a new key: the figure is emptied and laid out again
    assert ex.made == 2 and len(ex.fig.axes) == 2 and all(ax not in first for ax in ex.fig.axes)
    picture = Image.open(io.BytesIO(ex.png()))
    assert picture.mode == "RGB" and picture.size == (3 * 72, 2 * 72)
    ex.fig.savefig(buf := io.BytesIO(), format="png", dpi=ex.fig.dpi)  # the same pixels as matplotlib's own PNG
    assert np.array_equal(np.asarray(picture), np.asarray(Image.open(buf).convert("RGB")))


def test_show_image_on_kept_axes_replaces_the_pixels_and_the_title():
    import torch

    from fslcourse.widgets.plotting import show_image

    ax = Figure().add_subplot(111)
    show_image(ax, torch.zeros(1, 4, 4), title="first", colour="k")
    image = ax.images[0]
    show_image(ax, torch.ones(1, 4, 4))
    assert list(ax.images) == [image] and (image.get_array() == 0).all() and ax.get_title() == ""  # ink 1: paper 0
    assert not ax.spines["left"].get_visible()
    show_image(ax, torch.zeros(1, 5, 5), title="bigger")  # another size: a new image replaces it
    assert len(ax.images) == 1 and ax.images[0].get_array().shape == (5, 5) and ax.get_title() == "bigger"


@pytest.mark.parametrize("kwargs, says", [
    ({"a": (25, 2, 20)}, "a=25: give a whole number from 2 to 20"),
    ({"b": (0, 1, None)}, "b=0: give a whole number of at least 1"),
    ({"c": (2.5, 1, 10)}, "c=2.5: give a whole number from 1 to 10"),
    ({"d": (True, 0, None)}, "d=True: give a whole number of at least 0")])
def test_arguments_a_slider_would_clamp_are_refused(kwargs, says):
    from fslcourse.widgets.base import check_whole

    with pytest.raises(ValueError, match=f"^{says}$"):
        check_whole(**kwargs)
    check_whole(e=(20, 2, 20), f=(1, 1, None))  # the ends of a range are fine


def test_explorers_refuse_what_their_sliders_would_change_silently():
    """LatentExplorer(n_way=25) showed a 20-way episode, EpisodeBrowser(n_shot=0) a 1-shot one, without a word."""
    from fslcourse.data import glyph_splits
    from fslcourse.methods import PixelPrototype
    from fslcourse.widgets.episode_browser import EpisodeBrowser
    from fslcourse.widgets.latent_explorer import LatentExplorer

    _, _, test = glyph_splits(seed=0)
    with pytest.raises(ValueError, match="^n_way=25: give a whole number from 2 to 20$"):
        LatentExplorer(test, PixelPrototype(), n_way=25)
    with pytest.raises(ValueError, match="^n_shot=0: give a whole number from 1 to 20$"):
        EpisodeBrowser({"test": test}, n_shot=0)


def test_an_error_in_a_button_action_is_shown_in_the_status_line(capsys):
    """ipywidgets only logs what a click handler raises: a failing Next or "generate" looked like a dead button."""

    class Broken(Counter):
        def __init__(self):
            self.boom = self.button(self.explode, description="boom")
            super().__init__()

        def explode(self):
            raise RuntimeError("the model file went away")

    ex = Broken()
    ex.boom.click()
    assert "Error in Broken:" in ex.status.value and "RuntimeError: the model file went away" in ex.status.value
    assert "Traceback" in capsys.readouterr().err  # and the traceback goes to the log, for whoever debugs it


def test_every_explorers_buttons_show_their_errors():
    """Each button comes from Explorer.button (the guarded one), or runs its action through the drawing board's
    _safely: a bare ``button(action)`` is the dead button above."""
    import re
    from pathlib import Path

    import fslcourse.widgets.base as base

    bare = [f"{path.name}: {line.strip()}" for path in Path(base.__file__).parent.glob("*.py") if path.name != "base.py"
            for line in path.read_text().splitlines()
            if re.search(r"(?<![.\w])button\(", line) and "self._safely" not in line]
    assert not bare, bare
