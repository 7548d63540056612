"""Offline JavaScript for nbconvert's slides and HTML pages (used by build_slides.py and build_html.py).

nbconvert's templates load reveal.js, require.js, jQuery, MathJax and the Jupyter
widgets renderer from CDNs. ``npm ci`` (make target ``web-assets``) installs pinned
copies from the npm registry into ``node_modules/`` (package.json, package-lock.json);
:func:`copy_assets` puts the files the pages use under ``<site>/_static/`` and
:func:`offline_config` points nbconvert at them with relative URLs, so a built site
works from a USB stick or a lecture-hall laptop with no network.

The templates in ``scripts/templates/`` extend nbconvert's ``lab`` and ``reveal``
templates and leave out only the Mermaid loader (an ES module from a CDN that the
course's notebooks do not use).
"""
from __future__ import annotations

import json
import os
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
    c.SlidesExporter.reveal_scroll = True  # a slide taller than the screen scrolls instead of overflowing
    return c


def first_heading(nb, default: str) -> str:
    """The text of the notebook's first Markdown heading (``# 01 · Episodes``), else ``default``."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return default
