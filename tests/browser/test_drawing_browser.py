"""The drawing board in a real browser: JupyterLab, headless Chromium, a live kernel, strokes drawn with the mouse.

Same conventions as ``test_widgets_browser.py`` (whose server, browser and notebook helpers this file
reuses): notebook 02 is reduced to what its drawing-board cell needs, with no stored output or widget
state, and opened from a temporary folder in JupyterLab on 127.0.0.1 (a free port, a random token);
every request that is not to the loopback server is aborted. The test draws three invented characters
(a horizontal bar, a vertical bar, a circle) and a query with the mouse on the ipycanvas canvases,
waits for the prediction in the status line, clears the query and draws another, and checks that the
prediction and the picture change; then the model picker and undo. Nothing waits on a clock: every step
waits for what the page shows. The screenshot goes to build/browser/drawing.png.

Needs `make browser-deps`; without them the test fails under CI=true and is skipped elsewhere.
"""
from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import nbformat
import pytest

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("fslcourse_widgets_browser", HERE / "test_widgets_browser.py")
wb = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = wb
_spec.loader.exec_module(wb)

# the fixtures of test_widgets_browser.py, shared (pytest finds fixtures by name in this module)
browser_ready, lab, browser = wb.browser_ready, wb.lab, wb.browser

NOTEBOOK = "02_protonet.ipynb"
MARKER = "board = DrawingBoard("
REQUIRES = ("fslcourse/checkpoints/protonet-quick.pt",)
TIMEOUT_MS = 120_000  # a cold kernel imports torch and loads a checkpoint on a busy 2-core machine


def _stroke(page, box, points) -> None:
    """Press the mouse at the first point (canvas pixels), move through the others, release."""
    x0, y0 = box["x"], box["y"]
    page.mouse.move(x0 + points[0][0], y0 + points[0][1])
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(x0 + x, y0 + y, steps=4)
    page.mouse.up()


HORIZONTAL = [(20, 70), (70, 70), (120, 70)]
VERTICAL = [(70, 20), (70, 70), (70, 120)]
CIRCLE = [(70 + 40 * math.cos(a / 12 * 2 * math.pi), 70 + 40 * math.sin(a / 12 * 2 * math.pi)) for a in range(13)]


def test_drawing_with_the_mouse_gives_a_prediction_that_follows_the_query(lab, browser):
    from fslcourse.predict import DEFAULT_METHOD

    source = wb.ROOT / "notebooks" / NOTEBOOK
    missing = [r for r in REQUIRES if not (wb.ROOT / r).exists()]
    if missing:
        pytest.skip(f"{', '.join(missing)} not committed yet (the board would have no model)")
    nbformat.write(wb.widget_notebook(source, MARKER), lab.root / NOTEBOOK)

    blocked: list[str] = []
    wb._only_loopback(browser, lab, blocked)
    page = browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    shots = wb.SCREENSHOTS
    try:
        cell = wb.open_and_run_all(page, lab, NOTEBOOK)
        status = cell.locator(".widget-html-content").filter(has_text="at least two classes")
        status.wait_for()
        canvases = cell.locator("canvas")
        canvases.nth(3).wait_for()
        assert canvases.count() == 4  # three classes and the query
        cell.scroll_into_view_if_needed()
        boxes = [canvases.nth(i).bounding_box() for i in range(4)]

        for box, stroke in zip(boxes, (HORIZONTAL, VERTICAL, CIRCLE)):
            _stroke(page, box, stroke)
        cell.locator(".widget-html-content").filter(has_text="draw a query").wait_for()

        # a horizontal query: class 0 (the horizontal bar)
        _stroke(page, boxes[3], [(25, 75), (70, 72), (115, 68)])
        line = cell.locator(".widget-html-content").filter(has_text="the query is")
        line.filter(has_text="class 0").wait_for()
        assert DEFAULT_METHOD in line.inner_text()
        picture = cell.locator(".widget-output img").first
        picture.wait_for()
        first_src, first_text = picture.get_attribute("src"), line.inner_text()
        assert first_src.startswith("data:image/png")

        # clear the query, draw a vertical one: class 1, and a new picture
        cell.locator(".widget-vbox").filter(has_text="query").locator("button", has_text="clear").last.click()
        cell.locator(".widget-html-content").filter(has_text="draw a query").wait_for()
        _stroke(page, boxes[3], [(72, 25), (70, 70), (68, 115)])
        line.filter(has_text="class 1").wait_for()
        page.wait_for_function("""([cell, old]) => { const img = cell.querySelector('.widget-output img');
                                                     return img && img.src !== old; }""",
                               arg=[cell.element_handle(), first_src])
        assert line.inner_text() != first_text
        assert picture.get_attribute("src") != first_src

        # another course model from the picker answers too
        cell.locator("select").select_option("pixel")
        line.filter(has_text="pixel").wait_for()
        SCREEN = shots / "drawing.png"
        shots.mkdir(parents=True, exist_ok=True)
        cell.screenshot(path=str(SCREEN))

        # undo takes the query's stroke back
        cell.locator("button", has_text="undo").click()
        cell.locator(".widget-html-content").filter(has_text="draw a query").wait_for()
        assert not [e for e in errors if "widget" in e.lower() or "canvas" in e.lower()], errors
    except Exception:
        shots.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shots / "drawing-failure.png"), full_page=True)
        raise
    finally:
        page.close()
        browser.unroute("**/*")
        lab.stop_kernels()
        print(f"{NOTEBOOK} drawing board: aborted {len(blocked)} non-loopback requests {sorted(set(blocked))[:5]}")
