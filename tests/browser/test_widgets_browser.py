"""The notebooks' widgets in a real browser: JupyterLab, headless Chromium, a live kernel.

For each notebook with a widget below, the test copies the notebook to a temporary
folder, keeping the parameters and setup cells, the statements the widget cell needs
(found by scripts/editions.py's program slice: imports and definitions, no
evaluations) and the widget cell itself, with every stored output and the saved
widget state removed, so what renders can only come from the kernel. It starts
JupyterLab on 127.0.0.1 (a free port, a random token, temporary config, data,
runtime and settings folders), opens the copy in Debian's Chromium driven by
Playwright, waits for the kernel to be idle, runs all cells from the Run menu, checks
that the widget renders, changes a control and checks that the picture and the status
line change, and saves a screenshot to build/browser/NAME.png. Then it repeats the
input a few times, timing each from the input event to the new picture on screen
(browser_latency.py; printed, never asserted: benchmarks/widget_latency.py reports
them), and, for a widget with a slider worth dragging, drags it across its track:
the picture must settle on the last value, with fewer pictures than values (stale
redraws dropped) and within about one redraw of the release (no queue). Every request that is not to the loopback server is aborted.

Needs `make browser-deps` (Debian's chromium, pip's playwright; never `playwright
install`). Without them the test fails under CI=true and is skipped elsewhere.
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import browser_latency as latency
import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("FSLCOURSE_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = ROOT / "build" / "browser"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
FIX = "run 'make browser-deps' (apt-get install chromium as root; pip install playwright into .venv)"
TIMEOUT_MS = 60_000


@dataclass
class WidgetCase:
    notebook: str
    marker: str  # text that identifies the widget cell
    status_contains: str | None  # what the widget's status line shows once it has drawn (None: no status line)
    button: str | None = None  # change the picture by clicking this button ...
    seed_field: str | None = None  # ... or by typing 1, 2, ... into the IntText with this label ...
    dropdown: str | None = None  # ... or by choosing the next option of this dropdown ...
    slider: str | None = None  # ... or by one arrow-key step of this slider
    status_changes: bool = False  # the status line must change too (not only the picture)
    requires: tuple[str, ...] = ()  # files (relative to the repository) the cells need, e.g. a checkpoint
    drag: str | None = None  # a slider to drag (many values: the picture must not queue behind it)
    setup: str = ""  # code run before the widget cell, for what the notebook's program slice cannot find
    what: str = ""  # the input, in words (for the benchmark's table)
    before_display: str = ""  # code run in the widget cell just before it shows the widget (e.g. a slider moved)
    label: str = ""  # told apart from another case of the same widget

    @property
    def name(self) -> str:
        """``notebook:Widget`` (a notebook may show several widgets)."""
        return f"{Path(self.notebook).stem}:{self.marker.rstrip('(')}{self.label}"


CHECKPOINTS = "fslcourse/checkpoints/"
CASES = [
    WidgetCase("01_episodes.ipynb", "EpisodeBrowser(", "classes: 0=", button="next seed", status_changes=True,
               what="click 'next seed'"),
    WidgetCase("02_protonet.ipynb", "LatentExplorer(", "queries misclassified", seed_field="episode seed",
               requires=(CHECKPOINTS + "protonet-quick.pt",), drag="N (n_way)", what="type a seed, Enter"),
    WidgetCase("02_protonet.ipynb", "PredictionViewer(", "episode", button="Next", status_changes=True,
               requires=(CHECKPOINTS + "protonet-quick.pt",), what="click 'Next'"),
    WidgetCase("03_relation_based.ipynb", "PredictionViewer(", "episode", button="Next", status_changes=True,
               requires=tuple(CHECKPOINTS + f"{m}-quick.pt" for m in ("protonet", "matching", "relation", "gnn")),
               what="click 'Next'"),
    WidgetCase("04_finetune_baseline.ipynb", "PredictionViewer(", "episode", button="Next", status_changes=True,
               requires=(CHECKPOINTS + "protonet-quick.pt", CHECKPOINTS + "finetune-quick.pt"), what="click 'Next'"),
    WidgetCase("05_maml.ipynb", "AdaptationStepper(", None, button="New task",
               requires=(CHECKPOINTS + "sinusoid-quick.pt",), what="click 'New task'"),
    WidgetCase("05_maml.ipynb", "PredictionViewer(", "episode", button="Next", status_changes=True,
               requires=(CHECKPOINTS + "maml-quick.pt",), what="click 'Next'",
               setup='models = {"maml": load_or_train("maml", profile, data=data, device=course.device)["model"]}'),
    WidgetCase("06_mtl.ipynb", "ScaleShiftViewer(", None, dropdown="layer",
               requires=(CHECKPOINTS + "mtl-quick.pt",), what="choose a layer",
               setup='models = {"mtl": load_or_train("mtl", profile, data=data, device=course.device)["model"]}'),
    WidgetCase("07_vae_augmentation.ipynb", "VAEExplorer(", "generated", button="generate for this support set",
               status_changes=False, requires=(CHECKPOINTS + "protonet-quick.pt", CHECKPOINTS + "vae-quick.pt"),
               drag="direction 1 (sd)", what="click 'generate'"),
    WidgetCase("08_gan_augmentation.ipynb", "GANExplorer(", "generated", seed_field="z seed",
               requires=(CHECKPOINTS + "protonet-quick.pt", CHECKPOINTS + "gan-quick.pt"), drag="z[0]",
               what="type a z seed, Enter"),
    WidgetCase("09_diffusion_augmentation.ipynb", "DiffusionExplorer(", "support drawings", dropdown="character",
               status_changes=True, requires=(CHECKPOINTS + "protonet-quick.pt", CHECKPOINTS + "diffusion-quick.pt"),
               drag="t (T", what="choose a character (a new run, shown at t = T)"),
    WidgetCase("10_learning_to_generate.ipynb", "PredictionViewer(", "episode", button="Next", status_changes=True,
               requires=tuple(CHECKPOINTS + f"{m}-quick.pt" for m in ("protonet", "hallucinating-protonet", "metagan",
                                                                     "parameter-prediction")), what="click 'Next'"),
]


# Timed by benchmarks/widget_latency.py only: the diffusion explorer computes a run only as far as its time slider,
# so a character chosen with the slider at t = 0 costs the whole DDIM run, its slowest input.
BENCHMARK_ONLY = [
    WidgetCase("09_diffusion_augmentation.ipynb", "DiffusionExplorer(", "support drawings", dropdown="character",
               status_changes=True, requires=(CHECKPOINTS + "protonet-quick.pt", CHECKPOINTS + "diffusion-quick.pt"),
               before_display="explorer.t.value = 0", label=" at t = 0",
               what="choose a character at t = 0 (a whole run)"),
]


def _unavailable(message: str):
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _load_editions():
    spec = importlib.util.spec_from_file_location("fslcourse_editions", ROOT / "scripts" / "editions.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def widget_notebook(path: Path, marker: str, setup: str = "", before_display: str = ""):
    """A copy of the notebook reduced to what its widget cell needs, with no outputs or widget state.

    ``setup`` is a cell put just before the widget cell, for what the program slice cannot find (a dict filled
    in a loop); the slice then also gathers what ``setup`` needs. ``before_display`` is inserted in the widget
    cell before its last line (the line that shows the widget).
    """
    editions = _load_editions()
    nb = nbformat.read(path, as_version=4)
    index = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and marker in c.source)
    cell = nb.cells[index]
    sources, unresolved = editions.program_slice(nb, editions.needed_names(f"{setup}\n{cell.source}"), index)
    assert not unresolved, f"{path.name}: the widget cell needs {unresolved}, which no earlier cell defines"
    out = nbformat.v4.new_notebook(metadata={k: v for k, v in nb.metadata.items() if k != "widgets"})
    out.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    source = cell.source
    if before_display:
        head, _, last = source.rstrip().rpartition("\n")
        source = f"{head}\n{before_display}\n{last}"
    out.cells = [nbformat.v4.new_code_cell(s) for s in sources + ([setup] if setup else []) + [source]]
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """A JupyterLab server on 127.0.0.1 serving ``root``; stopped by :meth:`stop`."""

    def __init__(self, root: Path, state: Path):
        self.root, self.token, self.port = root, secrets.token_hex(24), _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ)
        env.update(JUPYTER_CONFIG_DIR=str(state / "config"), JUPYTER_DATA_DIR=str(state / "data"),
                   JUPYTER_RUNTIME_DIR=str(state / "runtime"), IPYTHONDIR=str(state / "ipython"),
                   FSLCOURSE_DEVICE="cpu", MPLBACKEND="module://matplotlib_inline.backend_inline",
                   JUPYTER_PLATFORM_DIRS="1")
        settings = state / "settings" / "@jupyterlab" / "apputils-extension"
        settings.mkdir(parents=True)
        (settings / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false", "checkForUpdates": False}))
        self.log = (state / "jupyterlab.log").open("w")
        cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.open_browser=False",
               "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
               f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={root}",
               f"--LabApp.user_settings_dir={state / 'settings'}", f"--LabApp.workspaces_dir={state / 'workspaces'}",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
               "--ServerApp.disable_check_xsrf=False"]
        if os.geteuid() == 0:
            cmd.append("--allow-root")
        self.process = subprocess.Popen(cmd, cwd=root, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        self.log_path = state / "jupyterlab.log"

    def api(self, path: str, method: str = "GET"):
        req = urllib.request.Request(f"{self.url}{path}", method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=5) as r:
            body = r.read()
            return json.loads(body) if body else None

    def wait_ready(self, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {self.process.returncode}:\n{self.log_path.read_text()}")
            try:
                self.api("/api/status")
                return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.3)
        raise RuntimeError(f"JupyterLab did not answer in {seconds:.0f} s:\n{self.log_path.read_text()}")

    def stop_kernels(self) -> None:
        """Shut down every kernel the server runs (a finished case's kernel would only cost CPU)."""
        for kernel in self.api("/api/kernels") or []:
            self.api(f"/api/kernels/{kernel['id']}", method="DELETE")

    def stop(self) -> None:
        """Shut the kernels and the server down through the API, then make sure the process is gone."""
        if self.process.poll() is None:
            try:
                self.stop_kernels()
                self.api("/api/shutdown", method="POST")
                self.process.wait(timeout=15)
            except Exception:  # noqa: BLE001 (teardown: fall through to signals)
                pass
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.log.close()


def missing_tools() -> str | None:
    """Why the browser test cannot run here (no Chromium, Playwright or Omniglot), or ``None``."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return f"Chromium not found at {CHROMIUM}: {FIX}"
    if importlib.util.find_spec("playwright") is None:
        return f"playwright is not installed in {sys.prefix}: {FIX}"
    from fslcourse.data import find_omniglot

    if find_omniglot() is None:
        return "Omniglot not found (the widgets draw it): set FSLCOURSE_DATA"
    return None


@pytest.fixture(scope="module")
def browser_ready():
    """Chromium and Playwright are installed (fails in CI when not, skips elsewhere)."""
    problem = missing_tools()
    if problem:
        _unavailable(problem)


@contextlib.contextmanager
def lab_server():
    """JupyterLab serving a temporary folder (the committed notebooks are never opened in place)."""
    with tempfile.TemporaryDirectory(prefix="fslcourse-lab-") as tmp:
        root, state = Path(tmp) / "notebooks", Path(tmp) / "state"
        root.mkdir()
        state.mkdir()
        server = Lab(root, state)
        try:
            server.wait_ready()
            yield server
        finally:
            server.stop()


@contextlib.contextmanager
def chromium():
    """A headless Chromium context (a temporary profile) driven by Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p, tempfile.TemporaryDirectory(prefix="fslcourse-chromium-") as profile:
        context = p.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000})
        try:
            yield context
        finally:
            context.close()


@pytest.fixture(scope="module")
def lab(browser_ready):
    with lab_server() as server:
        yield server


@pytest.fixture(scope="module")
def browser(browser_ready):
    with chromium() as context:
        yield context


def open_and_run_all(page, lab, notebook: str):
    """Open ``notebook`` in a fresh JupyterLab workspace, run all its cells; the locator of its last code cell."""
    page.goto(f"{lab.url}/lab/tree/{notebook}?reset&token={lab.token}")  # ?reset: only this notebook is open
    # The kernel must be idle before cells are run, or the run is flaky.
    page.locator("#jp-main-statusbar").get_by_text("Python 3 (ipykernel) | Idle").wait_for()
    page.locator(".jp-Notebook .jp-Cell").first.wait_for()
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
    return page.locator(".jp-Notebook .jp-CodeCell").last


def _only_loopback(context, lab: Lab, blocked: list[str]):
    def handle(route):
        url = route.request.url
        if url.startswith((lab.url + "/", "data:", "blob:")):
            route.continue_()
        else:
            blocked.append(url)
            route.abort()

    context.route("**/*", handle)


def skip_reason(case: WidgetCase) -> str | None:
    """Why ``case`` cannot run in this checkout (its notebook or a checkpoint it loads is missing), or ``None``."""
    if not (ROOT / "notebooks" / case.notebook).exists():
        return f"{case.notebook} does not exist yet"
    missing = [r for r in case.requires if not (ROOT / r).exists()]
    if missing:
        return f"{case.notebook}: {', '.join(missing)} not committed yet (its widget cell would train)"
    return None


@contextlib.contextmanager
def widget_page(case: WidgetCase, lab: Lab, browser):
    """Open the reduced notebook of ``case`` in JupyterLab, run all cells and yield ``(page, cell)`` once it has drawn.

    On an error the whole page is saved to build/browser/NAME-failure.png; the page and the kernel are closed after.
    """
    name = case.name.replace(":", "-")
    notebook = f"{name}.ipynb"
    nbformat.write(widget_notebook(ROOT / "notebooks" / case.notebook, case.marker, case.setup, case.before_display), lab.root / notebook)
    blocked: list[str] = []
    _only_loopback(browser, lab, blocked)
    page = browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    try:
        cell = open_and_run_all(page, lab, notebook)
        cell.locator(".widget-output img").first.wait_for(timeout=4 * TIMEOUT_MS)  # loading models takes a while
        yield page, cell
    except Exception:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{name}-failure.png"), full_page=True)
        raise
    finally:
        page.close()
        browser.unroute("**/*")
        lab.stop_kernels()
        print(f"{case.name}: aborted {len(blocked)} non-loopback requests {sorted(set(blocked))[:5]}")


def action(case: WidgetCase, page, cell):
    """The case's input as a function ``act(i)`` (``i`` = 0, 1, ...: each call changes the picture)."""
    if case.button:
        button = cell.locator("button", has_text=case.button).first
        return lambda i: button.click()
    if case.seed_field:
        field = cell.locator(".widget-text", has_text=case.seed_field).locator("input").first
        start = int(field.input_value())

        def type_seed(i):
            field.fill(str(start + i + 1))
            field.press("Enter")
        return type_seed
    if case.dropdown:
        select = cell.locator(".widget-dropdown", has_text=case.dropdown).locator("select").first
        n_options = select.locator("option").count()
        start = select.evaluate("s => s.selectedIndex")
        return lambda i: select.select_option(index=(start + i + 1) % n_options)
    if case.slider:
        handle = cell.locator(".widget-slider", has_text=case.slider).locator(".noUi-handle").first

        def step(i):
            handle.focus()
            handle.press("ArrowRight" if i % 2 == 0 else "ArrowLeft")
        return step
    raise ValueError(f"{case.name}: no input given; set button, seed_field, dropdown or slider")


def exercise(case: WidgetCase, page, cell, repeats: int, drag: bool = True) -> dict:
    """Check that the widget reacts, then time ``repeats`` inputs and drag its slider; returns the measurements.

    Returns:
        ``{"latency": [ms, ...], "drag": drag result or None}`` (see :func:`browser_latency.drag`).
    """
    status = cell.locator(".widget-html-content")
    if case.status_contains:
        status.filter(has_text=case.status_contains).first.wait_for()
    picture = cell.locator(".widget-output img").first
    before_src = picture.get_attribute("src")
    before_status = status.filter(has_text=case.status_contains).first.inner_text() if case.status_contains else None
    assert before_src and before_src.startswith("data:image/png")
    latency.install(page, cell)
    act = action(case, page, cell)
    samples = [latency.one_latency(page, lambda: act(0))]
    assert picture.get_attribute("src") != before_src
    if case.status_contains:
        status.filter(has_text=case.status_contains).first.wait_for()
    if case.status_changes:  # e.g. the episode browser lists the new episode's classes
        page.wait_for_function("""([cell, text, old]) => [...cell.querySelectorAll('.widget-html-content')]
                                      .some(el => el.textContent.includes(text) && el.textContent !== old)""",
                               arg=[cell.element_handle(), case.status_contains, before_status])
    if case.button == "next seed":  # the seed field follows the button (0 -> 1)
        assert cell.locator(".widget-text", has_text="seed").locator("input").input_value() == "1"
    samples += [latency.one_latency(page, lambda i=i: act(i)) for i in range(1, repeats)]
    dragged = None
    if drag and case.drag:
        slider = cell.locator(".widget-slider", has_text=case.drag).first
        slider.scroll_into_view_if_needed()
        dragged = latency.drag(page, slider)
    assert not [e for e in page.errors if "widget" in e.lower()], page.errors
    return {"latency": samples, "drag": dragged}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_widget_renders_and_reacts_in_jupyterlab(case, lab, browser):
    reason = skip_reason(case)
    if reason:
        pytest.skip(reason)
    with widget_page(case, lab, browser) as (page, cell):
        result = exercise(case, page, cell, repeats=3)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        cell.scroll_into_view_if_needed()
        cell.screenshot(path=str(SCREENSHOTS / f"{case.name.replace(':', '-')}.png"))
    print(f"{case.name}: input to picture {latency.summary(result['latency'])}, drag {result['drag']}")
    if result["drag"]:  # the picture settles on the last value, and stale values were dropped, not queued
        d = result["drag"]
        assert d["last_value_shown"], d
        assert d["values"] >= 10, f"the drag passed only {d['values']} values; drag further"
        # Stale values were dropped: fewer pictures than values. How many fewer depends on the machine's speed
        # (2 cores here drew 26 of 62, CI's machine 32 of 62); the ratio target lives in benchmarks/widget_latency.py,
        # and tests/widgets/test_explorer.py pins the coalescing itself without a clock.
        assert 1 <= d["renders"] < d["values"], d
        # Not queued: the last picture arrives within about one redraw of the release, not after a backlog of
        # values (a queue of 62 values at ~70 ms a picture would take seconds to drain after the release). A redraw
        # is the slowest measured before the drag or right after it: a machine busy with other work draws slower
        # throughout, and a bound from the earlier samples alone failed by 10% there (576 ms against 525).
        bound = 2 * max(result["latency"] + d["latency_after_ms"]) + 250
        assert d["settle_ms"] is not None and d["settle_ms"] <= bound, f"{d}: settled {d['settle_ms']} ms after the release, more than {bound:.0f} ms"
