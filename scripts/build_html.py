"""A static site of the executed notebooks, working offline.

    python scripts/build_html.py [NOTEBOOK ...] [--out build/html]

Writes ``OUT/NAME.html`` for every notebook (nbconvert's ``lab`` template, with the
outputs stored in the notebook) and ``OUT/index.html`` linking them, each titled by
the notebook's first heading. require.js, MathJax and the widgets renderer (which
shows the widget state saved in a notebook) are loaded from ``OUT/_static/`` (see
scripts/web_assets.py); CSS is inlined by nbconvert. Open ``OUT/index.html`` in a
browser, or copy the folder to any static web server.
"""
from __future__ import annotations

import argparse
import html
import sys
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter

sys.path.insert(0, str(Path(__file__).resolve().parent))
import web_assets  # noqa: E402

from fslcourse.io import atomic_write_bytes  # noqa: E402

ROOT = web_assets.ROOT

INDEX = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 46rem; margin: 3rem auto; padding: 0 1rem; line-height: 1.5; }}
li {{ margin: 0.4rem 0; }}
.file {{ color: #666; font-size: 0.9em; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p>The course's notebooks with their stored outputs. Run them yourself with <code>make lab</code>.</p>
<ol>
{items}
</ol>
</body>
</html>
"""


def build_html(notebooks: list[Path], out: Path, title: str = "fslcourse: learn few-shot learning by doing") -> Path:
    """Write ``out/NAME.html`` for each notebook, ``out/index.html`` and ``out/_static``; returns the index."""
    out.mkdir(parents=True, exist_ok=True)
    web_assets.copy_assets(out)
    exporter = HTMLExporter(config=web_assets.offline_config("fslcourse_lab"))
    items = []
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        web_assets.offline_widget_state(nb)  # no widget module from a CDN (the drawing board's canvases)
        web_assets.carry_doc_links(nb, out, path.name)  # the glossary link points at a copy in the site
        heading = web_assets.first_heading(nb, path.stem)
        nb.metadata["title"] = heading
        body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": path.stem}})
        target = out / f"{path.stem}.html"
        atomic_write_bytes(body.encode("utf-8"), target)
        print(f"html: {target}")
        items.append(f'<li><a href="{html.escape(target.name)}">{html.escape(heading)}</a> '
                     f'<span class="file">{html.escape(path.name)}</span></li>')
    index = out / "index.html"
    atomic_write_bytes(INDEX.format(title=html.escape(title), items="\n".join(items)).encode("utf-8"), index)
    print(f"html: {index} ({len(items)} notebooks)")
    return index


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/NN_*.ipynb")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "html")
    args = parser.parse_args(argv)
    notebooks = args.notebooks or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if not notebooks:
        print("ERROR: no notebooks found in notebooks/", file=sys.stderr)
        return 1
    try:
        web_assets.check_inputs(notebooks, args.out)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        build_html(notebooks, args.out)
    except (FileNotFoundError, ValueError) as err:  # a missing asset, a link to no doc
        print(f"ERROR: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
