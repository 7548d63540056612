"""Lecture slides (reveal.js) from the notebooks' slide metadata, working offline.

    python scripts/build_slides.py [NOTEBOOK ...] [--out build/slides]

Every notebook becomes ``OUT/NAME.slides.html`` (nbconvert's ``--to slides``). A notebook whose
cells carry ``slideshow.slide_type`` metadata is cut as its author marked it; one without any gets
the default deck of :func:`default_slide_types` (a slide per section, a subslide per cell, the
parameters and setup cells skipped), so every notebook has a lecture deck. A slide taller than its
frame scrolls inside it, and wide code scrolls sideways (the ``fslcourse_reveal`` template's style;
tests/test_slides_html.py checks every slide in Chromium). The stored outputs are used as they are (the notebooks are
committed executed). reveal.js, require.js, jQuery, MathJax and the widgets renderer
are loaded from ``OUT/_static/`` (see scripts/web_assets.py), so the slides need no
network: open the file in a browser, or serve the folder (``python -m http.server``)
for the speaker notes window.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
from nbconvert import SlidesExporter

sys.path.insert(0, str(Path(__file__).resolve().parent))
import web_assets  # noqa: E402

from fslcourse.io import atomic_write_bytes  # noqa: E402

ROOT = web_assets.ROOT


def has_slides(nb) -> bool:
    """Whether any cell carries ``slideshow.slide_type`` metadata."""
    return any(c.get("metadata", {}).get("slideshow", {}).get("slide_type") for c in nb.cells)


def default_slide_types(nb) -> list[str]:
    """The deck of a notebook without slide metadata: one ``slide_type`` per cell.

    The title cell and every ``## `` section heading open a slide; every other cell is a subslide
    below it (one idea, figure or table per screen); the parameters cell and the setup cell are skipped.
    """
    types = []
    for i, cell in enumerate(nb.cells):
        src = cell.source.lstrip()
        if cell.cell_type == "markdown":
            types.append("slide" if i == 0 or src.startswith("## ") else "subslide")
        elif "parameters" in cell.get("metadata", {}).get("tags", []) or "fslcourse.setup(" in src:
            types.append("skip")
        else:
            types.append("subslide")
    return types


def slide_types(nb) -> list[str | None]:
    """Each cell's ``slide_type``: the notebook's own metadata, or :func:`default_slide_types` if it has none."""
    if has_slides(nb):
        return [c.get("metadata", {}).get("slideshow", {}).get("slide_type") for c in nb.cells]
    return default_slide_types(nb)


def build_slides(notebooks: list[Path], out: Path) -> list[Path]:
    """Write ``out/NAME.slides.html`` for each notebook, and ``out/_static``."""
    out.mkdir(parents=True, exist_ok=True)
    web_assets.copy_assets(out)
    exporter = SlidesExporter(config=web_assets.offline_config("fslcourse_reveal"))
    written = []
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        web_assets.offline_widget_state(nb)  # no widget module from a CDN (the drawing board's canvases)
        web_assets.carry_doc_links(nb, out, path.name)  # the glossary link points at a copy in the site
        if not has_slides(nb):  # the default deck (the notebook file is not changed)
            for cell, kind in zip(nb.cells, default_slide_types(nb)):
                cell.metadata.setdefault("slideshow", {})["slide_type"] = kind
        nb.metadata["title"] = web_assets.first_heading(nb, path.stem)
        body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": path.stem}})
        target = out / f"{path.stem}.slides.html"
        atomic_write_bytes(body.encode("utf-8"), target)
        print(f"slides: {target}")
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/NN_*.ipynb")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "slides")
    args = parser.parse_args(argv)
    notebooks = args.notebooks or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    try:
        web_assets.check_inputs(notebooks, args.out)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        written = build_slides(notebooks, args.out)
    except (FileNotFoundError, ValueError) as err:  # a missing asset, a link to no doc
        print(f"ERROR: {err}", file=sys.stderr)
        return 1
    if not written:
        print("ERROR: no notebook given; see docs/INSTRUCTORS.md", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
