"""Slides and the static HTML site (scripts/build_slides.py, scripts/build_html.py) work offline.

Both are built from the committed notebooks into a temporary folder. Every script and
style sheet a page loads must be a local file that exists (no http(s) URL, no CDN host),
and the local style sheets must not @import anything remote. The checker is first shown
to catch nbconvert's default, CDN-loading output, so it can fail. In headless Chromium at a projector's
1280x800, every slide of every deck must fit its frame or scroll inside it, with no code, table or
picture cut off on the right (shown to fail when the template's style is undone); a screenshot of a
title slide goes to build/browser/slides.png.
"""
import html.parser
import importlib.util
import os
import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
CDN_HOSTS = ("cdnjs.cloudflare.com", "unpkg.com", "cdn.jsdelivr.net", "code.jquery.com", "cdn.mathjax.org",
             "fonts.googleapis.com")


def _load(name):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(ROOT / "scripts"))


web_assets = _load("web_assets")
build_slides = _load("build_slides")
build_html = _load("build_html")
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


class _Tags(html.parser.HTMLParser):
    """Collects (tag, attribute, value) of script src / link href, and inline script text."""

    def __init__(self):
        super().__init__()
        self.refs, self.inline, self._in_script = [], [], False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script":
            self._in_script = True
            if attrs.get("src"):
                self.refs.append(("script", "src", attrs["src"]))
        elif tag == "link" and attrs.get("href"):
            self.refs.append(("link", "href", attrs["href"]))

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.inline.append(data)


def offline_problems(page: Path) -> list[str]:
    """Everything in ``page`` that would need the network or a file that is missing."""
    text = page.read_text(encoding="utf-8")
    tags = _Tags()
    tags.feed(text)
    problems = []
    for tag, attr, url in tags.refs:
        if re.match(r"^(https?:)?//", url):
            problems.append(f"<{tag} {attr}={url!r}> is remote")
        elif not url.startswith("data:") and not (page.parent / url.split("?")[0].split("#")[0]).is_file():
            problems.append(f"<{tag} {attr}={url!r}>: no such file beside {page.name}")
    inline = "\n".join(tags.inline)
    problems += [f"a <script> names the CDN {host}" for host in CDN_HOSTS if host in inline]
    # Paths in scripts (reveal's require([...]), the widgets renderer) and style sheets.
    for ref in sorted(set(re.findall(r"_static/[\w./@-]+", text))):
        if not (page.parent / ref).exists():
            problems.append(f"{ref} is referenced but missing")
    # a saved widget of a module the local renderer lacks would be fetched from a CDN when the page opens
    modules = {m.replace("\\/", "/") for m in re.findall(r'"model_module":\s*"([^"]+)"', text)}  # JSON may write \/
    for module in sorted(modules - set(web_assets.BUNDLED_WIDGET_MODULES)):
        problems.append(f"a saved widget of {module!r} would load its JavaScript from a CDN")
    for tag, attr, url in tags.refs:
        css = page.parent / url.split("?")[0]
        if tag == "link" and css.suffix == ".css" and css.is_file():
            for remote in re.findall(r"(?:@import\s+(?:url\()?|url\()\s*['\"]?((?:https?:)?//[^'\")\s]+)",
                                     css.read_text(encoding="utf-8", errors="replace")):
                problems.append(f"{css.name} loads {remote}")
    return problems


@pytest.fixture(scope="module")
def assets():
    """The npm packages; fails in CI when they are missing, skips elsewhere."""
    missing = web_assets.missing_packages()
    if missing:
        message = f"web assets missing ({', '.join(missing)}): {web_assets.FIX}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def slides(assets, tmp_path_factory):
    out = tmp_path_factory.mktemp("slides")
    return build_slides.build_slides(NOTEBOOKS, out)


@pytest.fixture(scope="module")
def site(assets, tmp_path_factory):
    out = tmp_path_factory.mktemp("html")
    return build_html.build_html(NOTEBOOKS, out)


def test_widgets_of_other_modules_become_placeholders():
    canvas = {"model_module": "ipycanvas", "model_module_version": "^0.14", "model_name": "CanvasModel",
              "state": {"_view_name": "CanvasView", "layout": "IPY_MODEL_lay", "_canvas_manager": "IPY_MODEL_mgr"}}
    manager = {"model_module": "ipycanvas", "model_module_version": "^0.14", "model_name": "CanvasManagerModel",
               "state": {"_view_name": None}}
    box = {"model_module": "@jupyter-widgets/controls", "model_module_version": "2.0.0", "model_name": "HBoxModel",
           "state": {"_view_name": "HBoxView", "children": ["IPY_MODEL_cv"]}}
    nb = nbformat.v4.new_notebook(metadata={"widgets": {web_assets.WIDGET_STATE: {"state": {
        "cv": canvas, "mgr": manager, "box": box}}}})
    assert web_assets.offline_widget_state(nb) == 2
    state = nb.metadata["widgets"][web_assets.WIDGET_STATE]["state"]
    assert {m["model_module"] for m in state.values()} <= set(web_assets.BUNDLED_WIDGET_MODULES)
    assert "mgr" not in state and state["box"] == box  # the box still shows its child, now a placeholder
    assert state["cv"]["model_name"] == "HTMLModel" and state["cv"]["state"]["layout"] == "IPY_MODEL_lay"
    assert state[state["cv"]["state"]["style"][len("IPY_MODEL_"):]]["model_name"] == "HTMLStyleModel"
    assert web_assets.offline_widget_state(nb) == 0


def test_checker_catches_nbconvert_defaults(tmp_path):
    from nbconvert import HTMLExporter, SlidesExporter

    nb = nbformat.read(NOTEBOOKS[0], as_version=4)
    for exporter, name in ((HTMLExporter(), "page.html"), (SlidesExporter(), "slides.html")):
        body, _ = exporter.from_notebook_node(nb)
        (tmp_path / name).write_text(body, encoding="utf-8")
        problems = offline_problems(tmp_path / name)
        assert any("is remote" in p for p in problems), problems
        assert any("names the CDN" in p for p in problems), problems


def test_every_notebook_has_a_deck(slides):
    assert [p.name for p in slides] == [f"{p.stem}.slides.html" for p in NOTEBOOKS]


def test_the_default_deck_opens_a_slide_per_section_and_skips_the_setup():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# 99 · Title"),
        nbformat.v4.new_code_cell('profile = "quick"', metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("course = fslcourse.setup(seed=seed, profile=profile)"),
        nbformat.v4.new_markdown_cell("## 1. An idea"), nbformat.v4.new_code_cell("plot()"),
        nbformat.v4.new_markdown_cell("More text"), nbformat.v4.new_markdown_cell("## 2. Another")])
    assert build_slides.slide_types(nb) == ["slide", "skip", "skip", "slide", "subslide", "subslide", "slide"]
    nb.cells[4].metadata["slideshow"] = {"slide_type": "fragment"}  # an author's metadata wins, all of it
    assert build_slides.slide_types(nb) == [None, None, None, None, "fragment", None, None]


def test_slides_follow_the_metadata(slides):
    for page in slides:
        nb = nbformat.read(ROOT / "notebooks" / page.name.replace(".slides.html", ".ipynb"), as_version=4)
        types = build_slides.slide_types(nb)
        text = page.read_text(encoding="utf-8")
        # reveal.js nests subslides: each slide is <section><section>...</section>...</section>
        assert text.count("<section") == 2 * types.count("slide") + types.count("subslide"), page.name
        assert len(re.findall(r'class="fragment"', text)) == types.count("fragment"), page.name
        assert web_assets.first_heading(nb, "") in text


@pytest.mark.parametrize("kind", ["slides", "site"])
def test_pages_load_nothing_remote_and_their_assets_exist(kind, request):
    built = request.getfixturevalue(kind)
    pages = built if kind == "slides" else sorted(built.parent.glob("*.html"))
    assert pages
    for page in pages:
        assert offline_problems(page) == [], page.name
    linked = set()
    for page in pages:  # every relative link leads to a file of the built folder (the glossary: a copy there)
        links = re.findall(r'<a href="(?![a-z]+:)([^"#]+)', page.read_text(encoding="utf-8"))
        assert all((page.parent / html.unescape(href)).is_file() for href in links), (page.name, links)
        linked.update(links)
    assert "docs/GLOSSARY.md" in linked
    folder = pages[0].parent / web_assets.STATIC
    for local in ("require.js", "mathjax/MathJax.js", "mathjax/config/TeX-AMS_CHTML-full.js",
                  "html-manager/embed-amd.js", "reveal.js/dist/reveal.js", "reveal.js/plugin/notes/notes.js"):
        assert (folder / local).is_file(), local


def test_index_links_every_notebook_by_its_first_heading(site):
    index = site.read_text(encoding="utf-8")
    links = re.findall(r'<a href="([^"]+)">([^<]+)</a>', index)
    assert [href for href, _ in links] == [f"{p.stem}.html" for p in NOTEBOOKS]
    for (href, title), path in zip(links, NOTEBOOKS):
        nb = nbformat.read(path, as_version=4)
        assert html.unescape(title) == web_assets.first_heading(nb, path.stem)
        assert (site.parent / href).is_file()
    assert web_assets.first_heading(nbformat.read(NOTEBOOKS[0], as_version=4), "") == \
        "01 · Episodes: what few-shot learning is"


# ---------------------------------------------------------------- every slide fits its frame, in a real browser

FIT_JS = r"""() => {
  // Every slide of the deck, one at a time: the slide's frame must lie inside the window, content taller than
  // the frame must scroll inside it, and wide code, tables, pictures and outputs must either fit or sit in a
  // box that scrolls sideways (nothing cut off with no way to reach it).
  const R = require('_static/reveal.js/dist/reveal.js');
  R.configure({transition: 'none', backgroundTransition: 'none'});
  const reachable = (el, sec) => {
    const r = el.getBoundingClientRect();
    const scale = el.offsetWidth ? r.width / el.offsetWidth : 1;
    const right = r.left + el.scrollWidth * scale;
    for (let a = el; a && a !== sec.parentElement; a = a.parentElement) {
      const o = getComputedStyle(a).overflowX;
      if (o === 'auto' || o === 'scroll') return true;
      if (o === 'hidden' || o === 'clip') return right <= a.getBoundingClientRect().right + 1;
    }
    return right <= window.innerWidth + 1;
  };
  const problems = [];
  const stacks = R.getHorizontalSlides();
  for (let h = 0; h < stacks.length; h++) {
    const n = stacks[h].querySelectorAll(':scope > section').length || 1;
    for (let v = 0; v < n; v++) {
      R.slide(h, v);
      R.layout();
      const sec = R.getCurrentSlide();
      const r = sec.getBoundingClientRect();
      const where = `slide ${h}/${v} "${sec.innerText.trim().slice(0, 40).replace(/\s+/g, ' ')}"`;
      if (r.bottom > window.innerHeight + 1 || r.right > window.innerWidth + 1)
        problems.push(`${where}: its frame ends at (${Math.round(r.right)}, ${Math.round(r.bottom)}), outside the window`);
      const scrolls = ['auto', 'scroll'].includes(getComputedStyle(sec).overflowY);
      if (sec.scrollHeight > sec.clientHeight + 1 && !scrolls)
        problems.push(`${where}: ${sec.scrollHeight} px of content in a ${sec.clientHeight} px frame that does not scroll`);
      for (const el of sec.querySelectorAll('pre, table, img, svg, .jp-OutputArea-output'))
        if (!reachable(el, sec)) { problems.push(`${where}: a ${el.tagName.toLowerCase()} is cut off on the right`); break; }
    }
  }
  return {slides: stacks.length, problems};
}"""


@pytest.fixture(scope="module")
def chromium_page():
    """A headless Chromium page at a lecture-hall projector's 1280x800; fails in CI without it, skips elsewhere."""
    sys.path.insert(0, str(ROOT / "tests" / "browser"))
    try:
        harness = importlib.import_module("test_widgets_browser")
    finally:
        sys.path.remove(str(ROOT / "tests" / "browser"))
    if not (os.path.isfile(harness.CHROMIUM) and importlib.util.find_spec("playwright")):
        message = f"Chromium or playwright missing: {harness.FIX}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with harness.chromium() as browser:
        page = browser.new_page()
        page.set_viewport_size({"width": 1280, "height": 800})
        yield page


def _fit_problems(page, deck: Path, style: str = "") -> list[str]:
    page.goto(deck.as_uri())
    page.wait_for_function("() => { try { return require('_static/reveal.js/dist/reveal.js').isReady(); } "
                           "catch (e) { return false; } }", timeout=60_000)
    if style:
        page.add_style_tag(content=style)
    return page.evaluate(FIT_JS)["problems"]


def test_every_slide_fits_its_frame_or_scrolls(slides, chromium_page):
    problems = {deck.name: _fit_problems(chromium_page, deck) for deck in slides}
    assert not any(problems.values()), {k: v[:3] for k, v in problems.items() if v}
    shot = ROOT / "build" / "browser" / "slides.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    chromium_page.goto(slides[1].as_uri() + "#/0")
    chromium_page.screenshot(path=str(shot))


def test_the_fit_check_catches_clipped_slides(slides, chromium_page):
    """Without the template's style (slides as tall as their content, code boxes that clip), it reports problems."""
    undo = ("html body .reveal .slides section { height: auto !important; overflow: visible !important; }"
            "html body .reveal pre { overflow-x: hidden !important; }")
    problems = _fit_problems(chromium_page, slides[0], style=undo)
    assert any("outside the window" in p for p in problems), problems
    assert any("cut off on the right" in p for p in problems), problems


@pytest.mark.parametrize("script", [build_html, build_slides], ids=["build_html", "build_slides"])
def test_bad_inputs_are_refused_in_one_line_before_any_folder_is_made(script, tmp_path, capsys):
    """A PNG given as a notebook was a UnicodeDecodeError traceback, --out at a file a FileExistsError, and the
    output folder was made before the inputs were looked at."""
    png, a_file = tmp_path / "q1.png", tmp_path / "plain"
    png.write_bytes(b"\x89PNG\r\n\x1a\n")
    a_file.write_text("x")
    for argv, says in (([str(png), "--out", str(tmp_path / "site")], "q1.png is not a notebook"),
                       ([str(tmp_path / "none.ipynb"), "--out", str(tmp_path / "site")], "none.ipynb does not exist"),
                       (["--out", str(a_file)], "is a file; give a folder"),
                       # a folder given as a notebook was said not to exist; --out under a file was a traceback
                       ([str(tmp_path), "--out", str(tmp_path / "site")], f"{tmp_path} is a folder; give the notebooks'"),
                       (["--out", str(a_file / "site")], f"cannot be made: {a_file} is a file, not a folder")):
        assert script.main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and says in err and err.count("\n") == 1, err
    assert not (tmp_path / "site").exists()
