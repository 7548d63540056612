"""Offline JavaScript for nbconvert's slides and HTML pages (used by build_slides.py and build_html.py).

nbconvert's templates load reveal.js, require.js, jQuery, MathJax and the Jupyter
widgets renderer from CDNs. ``npm ci`` (make target ``web-assets``) installs pinned
copies from the npm registry into ``node_modules/`` (package.json, package-lock.json);
:func:`copy_assets` puts the files the pages use under ``<site>/_static/`` and
:func:`offline_config` points nbconvert at them with relative URLs, so a built site
works from a USB stick or a lecture-hall laptop with no network.

The templates in ``scripts/templates/`` extend nbconvert's ``lab`` and ``reveal``
templates: they leave out the Mermaid loader (an ES module from a CDN that the
course's notebooks do not use) and tell require.js where the widgets renderer's modules
live, so its icon fonts load from ``_static/`` (``templates/base/fslcourse_widgets.html.j2``,
shared by both).
"""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from traitlets.config import Config

ROOT = Path(__file__).resolve().parent.parent
NODE_MODULES = ROOT / "node_modules"
TEMPLATES = Path(__file__).resolve().parent / "templates"
STATIC = "_static"
FIX = "run 'make web-assets' (npm ci: installs the pinned copies listed in package-lock.json into node_modules/)"

# destination under _static/ -> source under node_modules/ (a file, or a folder copied whole)
ASSETS = {
    "reveal.js/dist": "reveal.js/dist",
    "reveal.js/plugin/notes": "reveal.js/plugin/notes",
    "require.js": "requirejs/require.js",
    "jquery.min.js": "jquery/dist/jquery.min.js",
    # MathJax 2 (the API nbconvert's templates call): the TeX input, CommonHTML output and their fonts.
    "mathjax/MathJax.js": "mathjax/MathJax.js",
    "mathjax/config/TeX-AMS_CHTML-full.js": "mathjax/config/TeX-AMS_CHTML-full.js",
    "mathjax/config/Safe.js": "mathjax/config/Safe.js",
    "mathjax/extensions": "mathjax/extensions",
    "mathjax/jax/input/TeX": "mathjax/jax/input/TeX",
    "mathjax/jax/output/CommonHTML": "mathjax/jax/output/CommonHTML",
    "mathjax/jax/element/mml": "mathjax/jax/element/mml",
    "mathjax/fonts/HTML-CSS/TeX/woff": "mathjax/fonts/HTML-CSS/TeX/woff",
    "mathjax/localization/en": "mathjax/localization/en",
    # The widgets renderer shows the widget state saved in a notebook (ipywidgets 8).
    "html-manager": "@jupyter-widgets/html-manager/dist",
}
SKIP = shutil.ignore_patterns("*.map", "embed.js", "libembed-amd.js", "*.LICENSE.txt", "*.esm.js")
REMOTE_HOSTS = ("cdnjs.cloudflare.com", "unpkg.com", "cdn.jsdelivr.net", "code.jquery.com", "cdn.mathjax.org")


def missing_packages() -> list[str]:
    """The packages of package.json that ``node_modules/`` lacks, or whose version differs."""
    wanted = json.loads((ROOT / "package.json").read_text())["dependencies"]
    missing = []
    for name, version in wanted.items():
        meta = NODE_MODULES / name / "package.json"
        if not meta.is_file() or json.loads(meta.read_text()).get("version") != version:
            missing.append(f"{name}@{version}")
    return missing


def check_installed() -> None:
    """Raise ``FileNotFoundError`` naming the fix when the npm packages are not installed."""
    missing = missing_packages()
    if missing:
        raise FileNotFoundError(f"missing from {NODE_MODULES}: {', '.join(missing)}; {FIX}")


def _link_or_copy(src: str, dst: str) -> str:
    """Hard-link (cheap, same disk) or else copy one file."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
    return dst


def copy_assets(site: Path) -> Path:
    """Put the offline assets under ``site/_static`` (replacing what was there); returns that folder."""
    check_installed()
    static = site / STATIC
    if static.exists():
        shutil.rmtree(static)
    for dest, source in ASSETS.items():
        src, dst = NODE_MODULES / source, static / dest
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=SKIP, copy_function=_link_or_copy)
        else:
            _link_or_copy(str(src), str(dst))
    return static


def offline_config(template: str) -> Config:
    """nbconvert settings that load every script from ``_static/`` beside the page."""
    c = Config()
    for exporter in ("HTMLExporter", "SlidesExporter"):
        c[exporter].require_js_url = f"{STATIC}/require.js"
        c[exporter].jquery_url = f"{STATIC}/jquery.min.js"
        c[exporter].mathjax_url = f"{STATIC}/mathjax/MathJax.js?config=TeX-AMS_CHTML-full,Safe"
        c[exporter].widget_renderer_url = f"{STATIC}/html-manager/embed-amd.js"
        c[exporter].extra_template_basedirs = [str(TEMPLATES)]
        c[exporter].template_name = template
    c.SlidesExporter.reveal_url_prefix = f"{STATIC}/reveal.js"
    # "white" uses the fonts shipped in reveal.js/dist/theme/fonts; nbconvert's default "simple"
    # (like most reveal.js themes) @imports Google Fonts.
    c.SlidesExporter.reveal_theme = "white"
    # a slide taller than the frame scrolls inside it: the template's own style (nbconvert's reveal_scroll missed the
    # first slide and sized slides by the window, not the frame)
    c.SlidesExporter.reveal_scroll = False
    return c


# The widget modules the renderer in _static/html-manager holds; a saved model of any other module (ipycanvas,
# the drawing board's canvases) would make the page fetch that module's JavaScript from a CDN.
BUNDLED_WIDGET_MODULES = ("@jupyter-widgets/base", "@jupyter-widgets/controls", "@jupyter-widgets/output")
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
CANVAS_PLACEHOLDER = ("<div style='padding:6px;font-size:85%;line-height:1.3;color:#555'>"
                      "a drawing canvas: run the notebook in Jupyter to draw here</div>")


def offline_widget_state(nb) -> int:
    """Replace the saved widget models the page could only render with JavaScript from a CDN; returns how many.

    A model with a view (an ``ipycanvas`` canvas) becomes an HTML placeholder of the same layout (a saved
    canvas is blank anyway: its pixels live in the browser); a model without a view (ipycanvas's canvas
    manager) is dropped. ``nb`` is changed in place (its ``metadata.widgets``).
    """
    state = nb.get("metadata", {}).get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    replaced = 0
    for model_id in list(state):
        model = state[model_id]
        if model.get("model_module") in BUNDLED_WIDGET_MODULES:
            continue
        replaced += 1
        old = model.get("state", {})
        if not old.get("_view_name"):
            del state[model_id]
            continue
        style_id = f"{model_id}-style"
        controls = {"_model_module": "@jupyter-widgets/controls", "_model_module_version": "2.0.0",
                    "_view_count": None, "_view_module": "@jupyter-widgets/base", "_view_module_version": "2.0.0"}
        state[style_id] = {"model_module": "@jupyter-widgets/controls", "model_module_version": "2.0.0",
                           "model_name": "HTMLStyleModel",
                           "state": {**controls, "_model_name": "HTMLStyleModel", "_view_name": "StyleView",
                                     "background": None, "description_width": "", "font_size": None,
                                     "text_color": None}}
        state[model_id] = {"model_module": "@jupyter-widgets/controls", "model_module_version": "2.0.0",
                           "model_name": "HTMLModel",
                           "state": {**controls, "_model_name": "HTMLModel", "_view_module": "@jupyter-widgets/controls",
                                     "_view_name": "HTMLView", "_dom_classes": [], "description": "",
                                     "description_allow_html": False, "layout": old.get("layout"),
                                     "placeholder": "", "style": f"IPY_MODEL_{style_id}", "tabbable": None,
                                     "tooltip": None, "value": CANVAS_PLACEHOLDER}}
    return replaced


def first_heading(nb, default: str) -> str:
    """The text of the notebook's first Markdown heading (``# 01 · Episodes``), else ``default``."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return default


def check_inputs(notebooks: list[Path], out: Path) -> None:
    """Refuse, before any folder is made, a missing or non-notebook input and an ``--out`` that is a file:
    a ValueError whose one line names the path and the fix."""
    import nbformat

    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder (it is made if missing)")
    above = next((p for p in out.parents if p.exists()), None)  # the folder it would be made in
    if above is not None and not above.is_dir():
        raise ValueError(f"--out {out} cannot be made: {above} is a file, not a folder; give another folder")
    for path in notebooks:
        if path.is_dir():
            raise ValueError(f"{path} is a folder; give the notebooks' paths, e.g. {path / '02_protonet.ipynb'}")
        if not path.is_file():
            raise ValueError(f"{path} does not exist; give the notebooks' paths, e.g. notebooks/02_protonet.ipynb")
        try:
            nbformat.read(path, as_version=4)
        except Exception as err:  # nbformat raises anything from UnicodeDecodeError to its own validation errors
            raise ValueError(f"{path} is not a notebook ({type(err).__name__}); give .ipynb files") from None


DOC_LINK = re.compile(r"\]\(\.\./(docs/[^)#\s]+)")  # a Markdown link from notebooks/ to the docs: ](../docs/X.md


def carry_doc_links(nb, out_dir: Path, name: str = "notebook") -> None:
    """Point ``nb``'s links to the repository's docs at copies in ``out_dir/docs/``, and write the copies: a
    Jupyter server opened on a built folder (``make lab LAB_DIR=build/student``), or a site copied elsewhere,
    cannot reach the files above it (used by editions.py, build_html.py and build_slides.py). A link to no
    file of ``docs/`` is refused in one line naming ``name`` (the notebook) before anything is copied."""
    docs = (ROOT / "docs").resolve()
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for rel in DOC_LINK.findall(cell.source):
                source = (ROOT / rel).resolve()
                if not source.is_file() or not source.is_relative_to(docs):
                    raise ValueError(f"{name}: its link ../{rel} names no file of docs/; link a file that is there")
            for rel in DOC_LINK.findall(cell.source):
                (out_dir / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(ROOT / rel, out_dir / rel)
            cell.source = DOC_LINK.sub(r"](\1", cell.source)
