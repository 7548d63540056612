"""In-browser latency of a widget: from the input event to the new picture on screen, and slider drags.

Used by ``test_widgets_browser.py`` (behaviour: the picture follows, a drag settles on its last value with far
fewer pictures than values) and by ``benchmarks/widget_latency.py`` (the times). Every time is taken in the
page with ``performance.now()``: a capturing listener stamps the first ``pointerdown``, ``keydown`` or
``change`` (or the events given to :func:`install`, e.g. ``pointerup``) after :func:`arm`, and a
``MutationObserver`` on the widget's cell stamps each new picture (the ``src`` of its ``.widget-output img``
changes), then the frame after the image is decoded (``shown``): the picture is on screen. A latency is
``shown - input``.
"""
from __future__ import annotations

import statistics

INSTALL = """([cell, index, types]) => {
  const w = window.__fsl = {inputs: [], pictures: [], values: [], armed: false, last: null,
                            lastChange: performance.now()};  // quiet is counted from the install
  const picture = () => cell.querySelectorAll('.widget-output img')[index];
  w.last = picture() ? picture().src : null;
  const stamp = () => { if (w.armed) { w.armed = false; w.inputs.push(performance.now()); } };
  for (const type of types) window.addEventListener(type, stamp, true);
  new MutationObserver(() => {
    const img = picture();
    if (!img || !img.src || img.src === w.last) return;
    w.last = img.src;
    w.lastChange = performance.now();
    const entry = {changed: w.lastChange, shown: null, src: img.src};
    w.pictures.push(entry);
    img.decode().catch(() => null).then(() => requestAnimationFrame(() => { entry.shown = performance.now(); }));
  }).observe(cell, {subtree: true, childList: true, attributes: true, attributeFilter: ['src']});
}"""

WATCH_READOUT = """(readout) => {
  const w = window.__fsl;
  w.values = [readout.textContent];
  new MutationObserver(() => {
    if (readout.textContent !== w.values[w.values.length - 1]) w.values.push(readout.textContent);
  }).observe(readout, {subtree: true, childList: true, characterData: true});
}"""


INPUTS = ("pointerdown", "keydown", "change")  # a click, a key, a new dropdown choice


def install(page, cell, picture: int = 0, inputs: tuple[str, ...] = INPUTS) -> None:
    """Start stamping inputs and new pictures of the ``picture``-th output image of ``cell`` (a locator).

    ``inputs`` are the DOM events that count as the input (``("pointerup",)`` for a pen lifted off a canvas).
    """
    page.evaluate(INSTALL, [cell.element_handle(), picture, list(inputs)])


def arm(page) -> int:
    """Stamp the next input event; returns how many pictures were shown before it."""
    return page.evaluate("() => { window.__fsl.armed = true; return window.__fsl.pictures.length; }")


def wait_quiet(page, quiet_ms: float, timeout_ms: float = 120_000) -> None:
    """Wait until no new picture has appeared for ``quiet_ms`` (every picture so far is on screen)."""
    page.wait_for_function(
        """(ms) => { const w = window.__fsl;
                     return performance.now() - w.lastChange > ms && w.pictures.every(p => p.shown !== null); }""",
        arg=quiet_ms, polling=50, timeout=timeout_ms)


def one_latency(page, act, quiet_ms: float = 400, timeout_ms: float = 120_000) -> float:
    """Milliseconds from the input event ``act()`` causes to its first new picture on screen.

    Args:
        page: the Playwright page, with :func:`install` run on the widget's cell.
        act: a function that performs the input (a click, a typed seed and Enter, a key on a slider).
        quiet_ms: after the picture, wait this long without a new one (so the next input starts from rest).
        timeout_ms: the longest wait for the picture.

    Returns:
        ``shown - input`` in milliseconds.
    """
    before = arm(page)
    inputs = page.evaluate("() => window.__fsl.inputs.length")
    act()
    page.wait_for_function("(n) => { const p = window.__fsl.pictures[n]; return p && p.shown !== null; }",
                           arg=before, polling="raf", timeout=timeout_ms)
    wait_quiet(page, quiet_ms, timeout_ms)
    stamps = page.evaluate("(n) => [window.__fsl.inputs, window.__fsl.pictures[n]]", before)
    assert len(stamps[0]) > inputs, "the input event was not seen (no pointerdown, keydown or change)"
    t_input, picture = stamps[0][-1], stamps[1]
    assert picture["changed"] >= t_input, f"the picture changed before the input event {stamps}"
    return picture["shown"] - t_input


def summary(samples: list[float]) -> dict:
    """``{"median_ms", "max_ms", "samples"}`` of latency samples in milliseconds."""
    return {"median_ms": round(statistics.median(samples), 1), "max_ms": round(max(samples), 1),
            "samples": len(samples)}


def current_src(page) -> str | None:
    """The ``src`` of the watched picture now."""
    return page.evaluate("() => window.__fsl.last")


def drag(page, slider, moves: int = 20, round_trips: int = 2, settle_ms: float = 2000, steps_back: int = 12,
         timeout_ms: float = 180_000) -> dict:
    """Drag ``slider`` (a locator of an ipywidgets slider) to and fro along its track, and let the picture settle.

    The mouse presses the handle, moves ``round_trips`` times to 5% from the far end and back to 5% from the
    near end, and is released: ``moves`` mouse events each way, sent back to back (a quick drag: each event
    moves the value by a step or more, so values come faster than pictures can be drawn). The readout's
    values are counted in the page. After the release, the picture is settled once no new one has come for
    ``settle_ms``. Then ``steps_back`` arrow-key steps inwards and as many back must
    give a new picture and then exactly the settled one: the settled picture is the last value's (several
    steps, as neighbouring values may draw the same picture, e.g. the diffusion explorer's time slider).

    Returns:
        ``values`` (slider values the drag passed through), ``renders`` (new pictures from the press to the
        settled one), ``final`` (the readout at the end), ``settle_ms`` (release to the last picture on
        screen), ``last_value_shown`` (the check above), ``latency_after_ms`` (the input-to-picture latencies of
        those two key steps, in milliseconds: how fast the page drew just after the drag).
    """
    handle = slider.locator(".noUi-handle").first
    track = slider.locator(".noUi-target").first
    tb, hb = track.bounding_box(), handle.bounding_box()
    x0, y = hb["x"] + hb["width"] / 2, hb["y"] + hb["height"] / 2
    ends_left = x0 <= tb["x"] + tb["width"] / 2  # from the left half: right first, and back to the left
    far, near = (0.95, 0.05) if ends_left else (0.05, 0.95)
    page.evaluate(WATCH_READOUT, slider.locator(".widget-readout").first.element_handle())
    before = page.evaluate("() => window.__fsl.pictures.length")
    page.mouse.move(x0, y)
    page.mouse.down()
    for _ in range(round_trips):
        page.mouse.move(tb["x"] + far * tb["width"], y, steps=moves)
        page.mouse.move(tb["x"] + near * tb["width"], y, steps=moves)
    page.mouse.up()
    released = page.evaluate("() => performance.now()")
    wait_quiet(page, settle_ms, timeout_ms)
    w = page.evaluate("() => ({values: window.__fsl.values, pictures: window.__fsl.pictures.map(p => p.shown)})")
    renders = len(w["pictures"]) - before
    settled = current_src(page)
    result = {"values": len(w["values"]) - 1, "renders": renders, "final": w["values"][-1],
              "settle_ms": round(max(0.0, w["pictures"][-1] - released), 1) if renders else None}
    handle.focus()
    result["latency_after_ms"] = [  # input to picture right after the drag: the machine's pace at the time
        one_latency(page, lambda key=key: [handle.press(key) for _ in range(steps_back)], quiet_ms=settle_ms,
                    timeout_ms=timeout_ms)
        for key in (("ArrowRight", "ArrowLeft") if ends_left else ("ArrowLeft", "ArrowRight"))]
    result["last_value_shown"] = current_src(page) == settled
    return result
