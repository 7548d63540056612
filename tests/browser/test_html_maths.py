"""Every formula of the static HTML site (scripts/build_html.py) typesets in a real browser, with no TeX error.

The site is built from the committed notebooks into a temporary folder and each page is opened
(``file://``) in headless Chromium, one page reused for all of them. Before MathJax loads, a
``window.MathJax`` author configuration listens to MathJax's signals: the site's configuration
(``TeX-AMS_CHTML-full``) loads the ``noErrors`` and ``noUndefined`` extensions, so a parse error
(``$\\frac{a}{$``) is drawn as its boxed source and an unknown macro (``\\undefinedmacro``) in red,
with no ``merror`` message on the page; MathJax 2 announces them only by the signals
``TeX Jax - parse error`` and ``TeX Jax - undefined control sequence``. The signal history is
cleared at each ``Typeset`` (and the page typesets twice), so the listener must be in place before
MathJax starts; a TeX prefilter hook names the formula each message belongs to. Once MathJax's
queue has drained (a ``MathJax.Hub.Queue`` callback after the startup hook ``End``), the page is
also searched, independently of the signals, for element jax flagged ``texError``, red ``mtext``
nodes (noUndefined's output), ``MathJax_Error`` boxes (a processing error), and, in the rendered
text of the Markdown cells outside code, for ``$``, ``\\(``, ``\\[`` or ``\\begin{`` left over: a
formula MathJax never found (an unmatched delimiter, Markdown that split a formula). A failure
names the notebook, the cell's index and the TeX. The detector is first shown to catch a broken
notebook, so the test can fail.

The same visit records every file a page asks for and does not get: the site works offline, so everything it
loads lies beside it (the widgets renderer's icon fonts were asked for under ``@jupyter-widgets/`` beside the page).

Needs ``make web-assets`` and ``make browser-deps`` (Debian's chromium, pip's playwright); without
them the test fails under CI=true and is skipped elsewhere.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path

import nbformat
import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
TIMEOUT_MS = 120_000  # MathJax on the largest page of a busy 2-core machine


def _load_script(name):
    """A module of scripts/ (``web_assets``, ``build_html``), loaded as tests/test_slides_html.py loads it."""
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        return getattr(importlib.import_module("test_slides_html"), name)
    finally:
        sys.path.remove(str(ROOT / "tests"))


def _harness():
    """tests/browser/test_widgets_browser.py: Debian's Chromium driven by Playwright, and the fix to name."""
    sys.path.insert(0, str(HERE))
    try:
        return importlib.import_module("test_widgets_browser")
    finally:
        sys.path.remove(str(HERE))


def _unavailable(message: str):
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


# Runs in the page before any of its scripts: MathJax.js takes an object window.MathJax as the author's
# configuration and calls its AuthorInit once the Hub exists, before the page's own configuration and typesetting.
LISTEN_JS = r"""
window.__fslMaths = {signals: [], current: null};
window.MathJax = {AuthorInit: function () {
  var rec = window.__fslMaths, HUB = MathJax.Hub;
  HUB.Register.StartupHook("TeX Jax Ready", function () {
    MathJax.InputJax.TeX.prefilterHooks.Add(function (data) { rec.current = data.script; });
  });
  HUB.signal.Interest(function (message) {
    var name = String(message[0]);
    if (!/error|undefined/i.test(name)) return;
    var script = name.indexOf("TeX Jax") === 0 ? rec.current : (message[1] && message[1].nodeType ? message[1] : null);
    rec.signals.push({name: name, detail: String(name === "TeX Jax - parse error" ? message[1] : (message[1] && message[1].nodeType ? message[2] : message[1])),
                      script: script});
  });
}};
"""

# Runs once MathJax's queue has drained: every formula, every error, and what looks like a formula left as text.
COLLECT_JS = r"""(timeoutMs) => new Promise((resolve, reject) => {
  if (!window.MathJax || !MathJax.Hub) { reject(new Error("MathJax did not load")); return; }
  setTimeout(() => reject(new Error(`MathJax had not finished after ${timeoutMs} ms`)), timeoutMs);
  // (the hook must not return the queue's callback: the startup signal would wait on it and the queue never run)
  MathJax.Hub.Register.StartupHook("End", () => { MathJax.Hub.Queue(() => { try {
    const cells = [...document.querySelectorAll("main > .jp-Cell")];
    const where = (node) => {
      const cell = node && node.closest ? node.closest(".jp-Cell") : null;
      return {cell: cells.indexOf(cell), id: cell ? cell.id : null,
              part: !cell ? "page" : node.closest(".jp-OutputArea") ? "output" : "markdown"};
    };
    const tex = (script) => script ? MathJax.HTML.getScript(script) : null;
    const errors = [];
    for (const s of window.__fslMaths.signals)
      errors.push({...where(s.script), tex: tex(s.script), message: `${s.name}: ${s.detail}`, how: "signal"});
    // independent of the signals: the typeset trees and the page
    const redText = (node, out) => {
      if (!node) return;
      if (node.type === "mtext" && node.mathcolor === "red") out.push(node.data.map(c => c.toString()).join(""));
      for (const child of node.data || []) if (child && typeof child === "object") redText(child, out);
    };
    const jaxes = MathJax.Hub.getAllJax();
    for (const jax of jaxes) {
      const script = jax.SourceElement(), red = [];
      if (jax.texError) errors.push({...where(script), tex: jax.originalText, message: "the formula is a TeX error", how: "tree"});
      redText(jax.root, red);
      for (const name of red) errors.push({...where(script), tex: jax.originalText, message: `undefined control sequence ${name}`, how: "tree"});
    }
    for (const box of document.querySelectorAll(".MathJax_Error"))
      errors.push({...where(box), tex: tex(box.nextElementSibling), message: `MathJax error: ${box.textContent}`, how: "page"});
    // formulas per cell, and text that is still TeX in the Markdown cells (code and maths themselves left out)
    const skip = "script, code, pre, textarea, .MathJax_CHTML, .mjx-chtml, .MJXc-display, .MathJax_Preview, .MathJax_Error, .MJX_Assistive_MathML";
    const leftover = /\$|\\\(|\\\)|\\\[|\\\]|\\begin\{|\\end\{/;
    const report = cells.map((cell, i) => {
      const scripts = [...cell.querySelectorAll('script[type^="math/tex"]')];
      const untypeset = [];
      for (const md of cell.querySelectorAll(".jp-MarkdownCell .jp-RenderedMarkdown")) {
        const walker = document.createTreeWalker(md, NodeFilter.SHOW_TEXT);
        for (let t = walker.nextNode(); t; t = walker.nextNode()) {
          if (t.parentElement.closest(skip) || !leftover.test(t.data)) continue;
          const block = (t.parentElement.closest("p, li, td, th, h1, h2, h3, h4, h5, h6, blockquote") || t.parentElement)
            .cloneNode(true);  // its text, each typeset formula written back as $TeX$
          for (const s of block.querySelectorAll('script[type^="math/tex"]')) s.replaceWith(`$${s.textContent}$`);
          for (const el of block.querySelectorAll(skip)) el.remove();
          untypeset.push(block.textContent.replace(/\s+/g, " ").trim().slice(0, 160));
        }
      }
      return {cell: i, id: cell.id, kind: cell.classList.contains("jp-MarkdownCell") ? "markdown" : "code",
              formulas: scripts.filter(s => !s.closest(".jp-OutputArea")).length,
              output_formulas: scripts.filter(s => s.closest(".jp-OutputArea")).length,
              untypeset: [...new Set(untypeset)]};
    });
    resolve({cells: report, errors, jax: jaxes.length, version: MathJax.version});
  } catch (e) { reject(e); } }); });
})"""


def page_maths(page, html_page: Path) -> dict:
    """Open ``html_page`` (a page of the built site) and return what MathJax made of its formulas.

    ``page`` is a Playwright page whose context ran :data:`LISTEN_JS` first. Returns
    ``{"cells": [{"cell", "id", "kind", "formulas", "output_formulas", "untypeset"}], "errors": [{"cell", "part",
    "tex", "message", "how"}], "jax": N, "version": "2.7.7", "failed_requests": [url]}``; an error is found once
    by its signal and again in the typeset tree or on the page (``how``); ``failed_requests`` are the files the
    page asked for and did not get (the site works offline: everything it loads lies beside it).
    """
    failed = []
    listen = lambda request: failed.append(request.url)  # noqa: E731 (a file the page asked for and did not get)
    page.on("requestfailed", listen)
    try:
        page.goto(html_page.as_uri(), wait_until="load")
        found = page.evaluate(COLLECT_JS, TIMEOUT_MS)
        page.wait_for_load_state("networkidle")  # the widgets' styles and fonts, requested as they render
    finally:
        page.remove_listener("requestfailed", listen)
    return {**found, "failed_requests": failed}


def maths_problems(notebook: Path, found: dict) -> list[str]:
    """One line per TeX error or untypeset formula of ``found`` (:func:`page_maths`), naming notebook, cell, TeX."""
    nb = nbformat.read(notebook, as_version=4)
    problems = []
    if len(found["cells"]) != len(nb.cells):
        problems.append(f"{notebook.name}: the page shows {len(found['cells'])} cells, the notebook has {len(nb.cells)}")
    named = {(e["cell"], e["tex"]) for e in found["errors"] if e["how"] == "signal"}
    for e in found["errors"]:
        if e["how"] != "signal" and (e["cell"], e["tex"]) in named:
            continue  # the typeset tree's or the page's view of an error its signal already named
        problems.append(f"{notebook.name} cell {e['cell']} ({e['part']}): {e['message']} in ${e['tex']}$")
    for c in found["cells"]:
        for text in c["untypeset"]:
            problems.append(f"{notebook.name} cell {c['cell']}: TeX left as text, not typeset: '{text}'")
    return problems


@pytest.fixture(scope="module")
def maths_page():
    """A headless Chromium page listening to MathJax; fails in CI without the tools, skips elsewhere."""
    web_assets = _load_script("web_assets")
    missing = web_assets.missing_packages()
    if missing:
        _unavailable(f"web assets missing ({', '.join(missing)}): {web_assets.FIX}")
    harness = _harness()
    if not (os.path.isfile(harness.CHROMIUM) and importlib.util.find_spec("playwright")):
        _unavailable(f"Chromium or playwright missing: {harness.FIX}")
    with harness.chromium() as browser:
        browser.add_init_script(LISTEN_JS)
        page = browser.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        yield page


@pytest.fixture(scope="module")
def site(maths_page, tmp_path_factory):
    return _load_script("build_html").build_html(NOTEBOOKS, tmp_path_factory.mktemp("html"))


BROKEN = [  # Markdown cells put after cell 2 of notebook 01: a fine formula, then each kind of problem
    "A fine one $x^2$, a double exponent $a^b^c$, an unknown macro $\\undefinedmacro x$.",
    "An open brace $\\frac{a}{$ hides the closing dollar from MathJax, so this text stays TeX.",
    "A display never closed: $$ y + 1",
]


def test_the_maths_check_catches_tex_errors_and_untypeset_formulas(maths_page, tmp_path):
    """A copy of notebook 01 with broken Markdown cells: each problem is named, with its cell and TeX."""
    nb = nbformat.read(NOTEBOOKS[0], as_version=4)
    nb.cells[3:3] = [nbformat.v4.new_markdown_cell(text) for text in BROKEN]
    broken = tmp_path / NOTEBOOKS[0].name
    nbformat.write(nb, broken)
    _load_script("build_html").build_html([broken], tmp_path / "html")
    found = page_maths(maths_page, tmp_path / "html" / f"{broken.stem}.html")
    problems = maths_problems(broken, found)
    expected = ["01_episodes.ipynb cell 3 (markdown): TeX Jax - parse error: Double exponent: use braces to clarify in $a^b^c$",
                "01_episodes.ipynb cell 3 (markdown): TeX Jax - undefined control sequence: \\undefinedmacro in $\\undefinedmacro x$",
                "01_episodes.ipynb cell 4: TeX left as text, not typeset: 'An open brace $\\frac{a}{$ hides the closing dollar "
                "from MathJax, so this text stays TeX.'",
                "01_episodes.ipynb cell 5: TeX left as text, not typeset: 'A display never closed: $$ y + 1'"]
    assert sorted(problems) == sorted(expected), problems
    assert found["cells"][3]["formulas"] == 3  # x^2 is typeset (and counted) beside the two errors
    # both views saw the two errors: MathJax's signals and, independently, the typeset trees
    assert sorted((e["how"], e["tex"]) for e in found["errors"]) == sorted([
        ("signal", "a^b^c"), ("signal", "\\undefinedmacro x"), ("tree", "a^b^c"), ("tree", "\\undefinedmacro x")]), found["errors"]


def test_every_formula_of_the_html_site_typesets_without_a_tex_error(site, maths_page):
    problems, typeset, missing = [], 0, []
    for notebook in NOTEBOOKS:
        found = page_maths(maths_page, site.parent / f"{notebook.stem}.html")
        typeset += sum(c["formulas"] for c in found["cells"])
        problems += maths_problems(notebook, found)
        missing += [f"{notebook.stem}.html asked for {url}, which is not there" for url in found["failed_requests"]]
    assert not problems, "\n".join(problems)
    assert typeset > 0  # the check saw formulas at all
    # and every file a page asks for loads: the widgets renderer's icon fonts were asked for under @jupyter-widgets/
    # beside the page (scripts/templates/fslcourse_lab/index.html.j2 names their folder)
    assert not missing, "\n".join(missing[:6])
