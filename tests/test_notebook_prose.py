"""Prose never outruns the outputs: every percentage, point difference or duration written in a notebook's
markdown must appear in that notebook's own stored outputs, as written. (Backing by any committed record was too
loose: the benchmark notebook's 500 records held half of all one-decimal values from 0.0 to 100.0, so a stale
sentence stayed "backed" by unrelated rows; a number worth writing is worth printing.)

Left out: a line that cites its source (``et al.``, ``arXiv``, ``published``: a published figure) and the
notebook's ``**Runtime.**`` estimate at the top, which is a planning figure, not a result.
"""
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
UNIT = r"\$?\s*(?:%|\\%|percent\b|points?\b|CPU-seconds\b|CPU-minutes\b|CPU-s\b|seconds?\b|s\b|min(?:utes)?\b)"
# a number with its unit ("97.5%", "$-37.6$ points"), or "a ± b" before a unit ("$-37.6 \pm 3.9$ points"): both numbers
NUMBER = re.compile(r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)(?=" + UNIT + r"|\s*(?:\\pm|±)\s*\d+(?:\.\d+)?" + UNIT + r")"
                    r"|(?<=\\pm )(\d+(?:\.\d+)?)(?=" + UNIT + r")|(?<=± )(\d+(?:\.\d+)?)(?=" + UNIT + r")")
CITED = re.compile(r"et al\.|arXiv|published", re.IGNORECASE)


def _outputs(nb: dict) -> str:
    texts = []
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            texts.append("".join(out.get("text", "")))
            for kind, data in out.get("data", {}).items():
                if kind.startswith("text/"):
                    texts.append("".join(data) if isinstance(data, list) else data)
    return "\n".join(texts)


def unbacked(nb: dict, records: set = frozenset(), tables: str = "") -> list[str]:
    """The prose numbers of ``nb`` found in none of its outputs, not in ``tables`` and not in ``records``."""
    shown = _outputs(nb) + "\n" + tables
    missing = []
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "markdown":
            continue
        for line in "".join(cell["source"]).splitlines():
            if CITED.search(line) or line.lstrip().startswith("**Runtime"):
                continue
            for m in NUMBER.finditer(line):
                if re.match(r"\$?\s*(%|\\%)\s*(CI|confidence|interval)", line[m.end():], re.IGNORECASE):
                    continue  # "95% CI" names an interval, it reports nothing
                text = next(g for g in m.groups() if g)
                plain = text.replace(",", "")
                if re.search(rf"(?<![\d.]){re.escape(text)}(?![\d])", shown) or \
                        re.search(rf"(?<![\d.]){re.escape(plain)}(?![\d])", shown):
                    continue
                decimals = len(plain.split(".")[1]) if "." in plain else 0
                if round(float(plain), decimals) in records:
                    continue
                missing.append(f"cell {i}: {m.group(0)!r} in {line.strip()[:100]!r}")
    return missing


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_number_in_the_prose_comes_from_an_output(path):
    missing = unbacked(json.loads(path.read_text()))
    assert not missing, f"{path.name}: numbers in the text that no output shows:\n" + "\n".join(missing)



def test_the_check_catches_a_number_that_no_output_shows():
    nb = {"cells": [{"cell_type": "markdown", "source": ["ProtoNet reaches 12.3456% here."]},
                    {"cell_type": "code", "source": [], "outputs": [{"text": ["accuracy 12.3455%"]}]}]}
    assert unbacked(nb) == ["cell 0: '12.3456' in 'ProtoNet reaches 12.3456% here.'"]
    nb["cells"][1]["outputs"][0]["text"] = ["accuracy 12.3456%"]
    assert unbacked(nb) == []
    line = r"it loses $-44.6 \pm 3.5$ points, with a 95% CI"  # LaTeX, and an interval's name
    nb["cells"][0]["source"] = [line]
    assert unbacked(nb) == [f"cell 0: '44.6' in {line!r}", f"cell 0: '3.5' in {line!r}"]
    assert unbacked(nb, records={44.6, 3.5}) == []
