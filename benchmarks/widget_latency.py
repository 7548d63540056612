"""Every widget in the browser: milliseconds from the input event to the new picture on screen, and slider drags.

Usage (from the repository root, on a quiet machine: other work on the CPU makes every figure wrong;
FSLCOURSE_DATA must point at the data; `make browser-deps` gives Chromium and Playwright):

    OMP_NUM_THREADS=1 FSLCOURSE_DEVICE=cpu FSLCOURSE_DATA=../shared/data \\
        .venv/bin/python benchmarks/widget_latency.py [--repeats 7] [--overwrite] [--only 02_protonet --out /tmp/some_widgets.json]

For every widget cell of the notebooks (``CASES`` in tests/browser/test_widgets_browser.py) it opens the
notebook reduced to that cell in JupyterLab, in headless Chromium, with a live kernel, exactly as the
browser test does; then it repeats the widget's input (a click, a typed seed, a new dropdown choice) and
times each, in the page, from the input event to the frame after the new picture is decoded
(tests/browser/browser_latency.py). Where the widget has a slider with many values, it drags it across
its track in one quick movement and counts the values the slider passed and the pictures drawn, and times
the release to the last picture. Targets (issue 20, part 5): median <= 300 ms from input to picture; a drag
leaves no queue (far fewer pictures than values: at most half; the last picture is the last value's).

Writes ``results/widget_latency.json`` (per widget: median, max and every sample in ms, the drag's values,
pictures and settle time, and the machine: CPU, load average at the start, versions) and prints a table.
Exit status 1 if a target is missed.
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "browser"))

import browser_latency as latency  # noqa: E402
import test_drawing_browser as drawing  # noqa: E402
import test_widgets_browser as harness  # noqa: E402

from fslcourse.io import atomic_write_json, check_record_target  # noqa: E402
from fslcourse.results import versions  # noqa: E402

TARGET_MS = 300.0
PEN_UP_TARGET_MS = 200.0  # the drawing board: from lifting the pen to the prediction on screen
DRAWING = "02_protonet:DrawingBoard"


def machine() -> dict:
    """The CPU, its cores, the load average when the run starts (a busy machine gives wrong figures), versions."""
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        chromium = subprocess.run([harness.CHROMIUM, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        chromium = None
    return {"cpu": cpu, "cores": os.cpu_count(), "load_average_1min": round(os.getloadavg()[0], 2),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "platform": platform.platform(),
            "chromium": chromium, "versions": versions()}


def verdict(entry: dict) -> bool:
    """Whether one widget meets the targets (a median within 300 ms; a drag without a queue)."""
    ok = entry["median_ms"] <= TARGET_MS
    d = entry.get("drag")
    if d:
        ok &= d["last_value_shown"] and d["renders"] <= max(1, d["values"] // 2)
    return ok


def run_case(case, lab, browser, repeats: int) -> dict:
    """Measure one widget: ``repeats`` inputs timed to the picture, and its drag if it has one."""
    with harness.widget_page(case, lab, browser) as (page, cell):
        result = harness.exercise(case, page, cell, repeats=repeats)
    entry = {"input": case.what, **latency.summary(result["latency"]),
             "latency_ms": [round(x, 1) for x in result["latency"]], "drag": result["drag"]}
    if entry["drag"]:
        entry["drag"]["slider"] = case.drag
    entry["meets_targets"] = verdict(entry)
    return entry


def run_drawing(lab, browser, repeats: int) -> dict:
    """The drawing board of notebook 02: milliseconds from pen-up on the query canvas to the new prediction shown.

    Three characters are drawn as in tests/browser/test_drawing_browser.py; then ``repeats`` times the query is
    cleared and a new query stroke drawn, alternating a horizontal and a vertical one, each timed from its
    ``pointerup`` to the new picture on screen.
    """
    import nbformat

    source = harness.ROOT / "notebooks" / drawing.NOTEBOOK
    nbformat.write(harness.widget_notebook(source, drawing.MARKER), lab.root / drawing.NOTEBOOK)
    blocked: list[str] = []
    harness._only_loopback(browser, lab, blocked)
    page = browser.new_page()
    page.set_default_timeout(drawing.TIMEOUT_MS)
    try:
        cell = harness.open_and_run_all(page, lab, drawing.NOTEBOOK)
        status = cell.locator(".widget-html-content")
        status.filter(has_text="at least two classes").wait_for()
        canvases = cell.locator("canvas")
        canvases.nth(3).wait_for()
        cell.scroll_into_view_if_needed()
        boxes = [canvases.nth(i).bounding_box() for i in range(4)]
        for box, stroke in zip(boxes, (drawing.HORIZONTAL, drawing.VERTICAL, drawing.CIRCLE)):
            drawing._stroke(page, box, stroke)
        status.filter(has_text="draw a query").wait_for()
        clear = cell.locator(".widget-vbox").filter(has_text="query").locator("button", has_text="clear").last
        latency.install(page, cell, inputs=("pointerup",))
        latency.wait_quiet(page, 600)  # the support strokes' pictures have all arrived
        queries = ([(25, 75), (70, 72), (115, 68)], [(72, 25), (70, 70), (68, 115)])
        samples = []
        for i in range(repeats + 1):  # the first pen-up warms the kernel's path and is not counted
            if i:  # clear the query, and wait for the cleared board's picture (it comes after the status line)
                before = page.evaluate("() => window.__fsl.pictures.length")
                clear.click()
                status.filter(has_text="draw a query").wait_for()
                page.wait_for_function("(n) => window.__fsl.pictures.length > n", arg=before, timeout=drawing.TIMEOUT_MS)
                latency.wait_quiet(page, 400)
            ms = latency.one_latency(page, lambda: drawing._stroke(page, boxes[3], queries[i % 2]))
            status.filter(has_text="the query is").filter(has_text=f"class {i % 2}").wait_for()  # its own class
            if i:
                samples.append(ms)
    finally:
        page.close()
        browser.unroute("**/*")
        lab.stop_kernels()
    entry = {"input": f"pen-up on the query (target {PEN_UP_TARGET_MS:.0f} ms)", **latency.summary(samples),
             "latency_ms": [round(x, 1) for x in samples], "drag": None, "target_ms": PEN_UP_TARGET_MS}
    entry["meets_targets"] = entry["median_ms"] <= PEN_UP_TARGET_MS
    return entry


def table(widgets: dict) -> str:
    """The results as a text table, with the targets."""
    lines = [f"{'widget':<44} {'input':<40} {'median':>8} {'max':>8}  {'drag: values -> pictures, settle':<34} ok",
             f"{'target':<44} {'':<40} {'<=300ms':>8} {'':>8}  {'pictures <= values / 2, last value':<34}"]
    for name, e in widgets.items():
        if "skipped" in e:
            lines.append(f"{name:<44} skipped: {e['skipped']}")
            continue
        d = e["drag"]
        drag = (f"{d['values']} -> {d['renders']}, {d['settle_ms']:.0f} ms{'' if d['last_value_shown'] else ' WRONG'}"
                if d else "-")
        lines.append(f"{name:<44} {e['input'][:40]:<40} {e['median_ms']:>6.0f}ms {e['max_ms']:>6.0f}ms  {drag:<34} "
                     f"{'OK' if e['meets_targets'] else 'MISSED'}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7,
                        help="inputs timed per widget (default 7: the diffusion explorer's 8 characters are each a new run)")
    parser.add_argument("--only", default=None, help="only the widgets whose name contains this text")
    parser.add_argument("--out", default=None,
                        help="the record (default: results/widget_latency.json; with --only, give one: a record of some "
                             "widgets must not replace the committed record of all)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out (the committed record by default)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats={args.repeats}; give at least 1")
    committed = ROOT / "results" / "widget_latency.json"
    if args.only and (args.out is None or Path(args.out).resolve() == committed.resolve()):
        parser.error("--only measures some widgets; give --out PATH elsewhere, so that the committed record of all "
                     "is kept")
    args.out = args.out or str(committed)
    try:
        check_record_target(args.out, args.overwrite)
    except ValueError as err:
        parser.error(str(err))
    problem = harness.missing_tools()
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    cases = [c for c in harness.CASES + harness.BENCHMARK_ONLY if args.only is None or args.only in c.name]
    if not cases and args.only not in DRAWING:
        parser.error(f"--only={args.only!r} matches no widget; names: {', '.join(c.name for c in harness.CASES)}")
    info = machine()
    if info["load_average_1min"] > 0.5 * (info["cores"] or 1):
        print(f"warning: load average {info['load_average_1min']} on {info['cores']} cores: the machine is busy, "
              "the figures will be too high", file=sys.stderr)
    widgets, started = {}, time.time()
    with harness.lab_server() as lab, harness.chromium() as browser:
        for case in cases:
            reason = harness.skip_reason(case)
            if reason:
                widgets[case.name] = {"skipped": reason}
                continue
            print(f"{case.name} ...", flush=True)
            widgets[case.name] = run_case(case, lab, browser, args.repeats)
        if args.only is None or args.only in DRAWING:
            print(f"{DRAWING} ...", flush=True)
            widgets[DRAWING] = run_drawing(lab, browser, args.repeats)
    record = {"benchmark": "widget_latency", "targets": {"median_ms": TARGET_MS, "pen_up_median_ms": PEN_UP_TARGET_MS,
                                                          "drag": "pictures <= values / 2, "
                                                          "the settled picture is the last value's"},
              "machine": info, "seconds": round(time.time() - started, 1), "widgets": widgets}
    atomic_write_json(record, Path(args.out))
    print(table(widgets))
    print(f"written to {args.out}")
    return 0 if all(e.get("meets_targets", True) for e in widgets.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
