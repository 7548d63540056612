"""Prose never outruns the outputs: every percentage, point difference or duration written in a notebook's
markdown must appear in that notebook's own stored outputs, as written, or in a result file the same cell names
(``results/NAME.json``); an ``a ± b`` must be printed as that pair (more decimals allowed; a signed figure with
its sign). Backing by any committed record was too loose: the benchmark notebook's 500 records held half of all
one-decimal values from 0.0 to 100.0, so a stale sentence stayed "backed" by unrelated rows.

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


PAIR = re.compile(r"(?<![\w.,\\])([+\-−–]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?)\s*%?\s*(?:\\pm|±)\s*"
                  r"(\d+(?:\.\d+)?)")  # "a ± b", "$a \pm b$", "a% ± b"; not "$\mu_1 \pm ...$" nor "1,2|34 ± 5"
RECORD_FILE = re.compile(r"results/([\w.-]+\.json)")


def _decimals(text: str) -> int:
    return len(text.split(".")[1]) if "." in text else 0


def _value(text: str) -> float:
    return float(text.replace("−", "-").replace("–", "-").replace(",", ""))


def _pair_shown(a: str, b: str, pairs: list) -> bool:
    """Whether an output prints the pair ``a ± b``, at more decimals too; a signed ``a`` with the same sign (a gain is
    no loss; "hurt by 12.0 ± 2.4" quotes a magnitude)."""
    va, vb, signed = _value(a), _value(b), a[0] in "+-−–"
    return any(_rounds_to(abs(x), abs(va), _decimals(a)) and _rounds_to(y, vb, _decimals(b))
               and (not signed or va == 0 or (x < 0) == (va < 0)) for x, y in pairs)


def _rounds_to(printed: float, written: float, decimals: int) -> bool:
    """Whether ``written`` is ``printed`` rounded to ``decimals``, either way at an exact half (0.285 gives 0.28
    or 0.29: binary floats and people round halves differently)."""
    return abs(printed - written) <= 0.5 * 10 ** -decimals + 1e-9


def _record_numbers(names: list[str]) -> set:
    """The numbers of the result files a cell names (``results/NAME.json``), at 0, 1 and 2 decimals."""
    def walk(obj, out):
        if isinstance(obj, dict):
            for k, v in obj.items():
                if "episode_accuracies" not in k:
                    walk(v, out)
        elif isinstance(obj, list):
            for v in obj:
                walk(v, out)
        elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
            out.append(float(obj))
        return out
    values = [v for n in names if (ROOT / "results" / n).is_file()
              for v in walk(json.loads((ROOT / "results" / n).read_text()), [])]
    return {round(v, d) for v in values for d in (0, 1, 2)}


def unbacked(nb: dict, records: set = frozenset(), tables: str = "") -> list[str]:
    """The prose numbers of ``nb`` that none of its outputs prints (nor ``tables``, nor ``records``, nor a result
    file the same cell names); an ``a ± b`` must be printed as that pair (rounding allowed), not as two numbers
    found apart."""
    shown = _outputs(nb) + "\n" + tables
    pairs = [(_value(x), _value(y)) for x, y in PAIR.findall(shown)]
    missing = []
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "markdown":
            continue
        source = "".join(cell["source"])
        cited = records | _record_numbers(RECORD_FILE.findall(source))
        for line in source.splitlines():
            if CITED.search(line) or line.lstrip().startswith("**Runtime"):
                continue
            backed = []  # the spans of pairs an output prints: their numbers need no other backing
            for m in PAIR.finditer(line):
                a, b = m.groups()
                if _pair_shown(a, b, pairs):
                    backed.append(m.span())
                elif not (_value(b) in cited and ({round(_value(a), _decimals(a))} if a[0] in "+-−–" else
                                                  {abs(_value(a)), -abs(_value(a))}) & cited):  # a signed figure's sign
                    missing.append(f"cell {i}: the pair {m.group(0)!r} in {line.strip()[:100]!r}")
            for m in NUMBER.finditer(line):
                if any(start <= m.start() < end for start, end in backed):
                    continue
                if re.match(r"\$?\s*(%|\\%)\s*(CI|confidence|interval)", line[m.end():], re.IGNORECASE):
                    continue  # "95% CI" names an interval, it reports nothing
                text = next(g for g in m.groups() if g)
                plain = text.replace(",", "")
                if re.search(rf"(?<![\d.]){re.escape(text)}(?![\d])", shown) or \
                        re.search(rf"(?<![\d.]){re.escape(plain)}(?![\d])", shown):
                    continue
                value = round(float(plain), _decimals(plain))
                if value in cited or -value in cited:  # the number as written carries no sign here
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
    pair = r"-44.6 \pm 3.5"
    assert unbacked(nb) == [f"cell 0: the pair {pair!r} in {line!r}", f"cell 0: '44.6' in {line!r}",
                            f"cell 0: '3.5' in {line!r}"]
    assert unbacked(nb, records={-44.6, 3.5}) == []


def test_a_pair_printed_at_an_exact_half_backs_either_rounding():
    out = {"cell_type": "code", "source": [], "outputs": [{"text": ["gain +0.285 ± 0.26"]}]}
    for written in ("+0.29", "+0.28"):
        assert unbacked({"cells": [{"cell_type": "markdown", "source": [f"a gain of {written} ± 0.26 points"]}, out]}) == []
    nb = {"cells": [{"cell_type": "markdown", "source": ["a gain of +0.30 ± 0.26 points"]}, out]}
    assert unbacked(nb)[0].startswith("cell 0: the pair")


def test_a_pair_must_be_printed_as_a_pair_with_its_sign():
    """Both numbers printed apart backed '-0.0 ± 0.2' before; now the output must print the pair (rounding allowed),
    or the cell must name the result file that holds both."""
    out = {"cell_type": "code", "source": [], "outputs": [{"text": ["gain -12.04 ± 2.36; other 0.2 and 3.5"]}]}
    nb = {"cells": [{"cell_type": "markdown", "source": [r"it drops $-12.0 \pm 2.4$ points"]}, out]}
    assert unbacked(nb) == []
    nb["cells"][0]["source"] = [r"hurt by $12.0 \pm 2.4$ points"]  # a magnitude, no sign: backed
    assert unbacked(nb) == []
    nb["cells"][0]["source"] = [r"it gains $+12.0 \pm 2.4$ points"]  # the sign contradicts the output
    assert unbacked(nb)[0].startswith("cell 0: the pair '+12.0 ")
    nb["cells"][0]["source"] = [r"a change of $+3.5 \pm 0.2$ points"]  # both numbers shown, never together
    assert len(unbacked(nb)) == 1 and unbacked(nb)[0].startswith("cell 0: the pair '+3.5 ")


def test_a_pair_is_read_only_where_it_stands():
    """A formula's subscript is no pair, nor the tail of a thousands-separated number; a cited record backs a signed
    figure only with its sign."""
    nb = {"cells": [{"cell_type": "markdown", "source": [r"the interval $\mu_1 \pm 1.96\,\sigma$"]},
                    {"cell_type": "code", "source": [], "outputs": [{"text": ["1,234 ± 56 s"]}]}]}
    assert unbacked(nb) == []
    nb["cells"][0]["source"] = ["it took 234 ± 56 s"]
    assert unbacked(nb)[0].startswith("cell 0: the pair '234 ± 56'")
    nb["cells"][0]["source"] = ["it took 1,234 ± 56 s"]
    assert unbacked(nb) == []
    nb["cells"][0]["source"] = [r"a loss of $-4.4 \pm 0.4$ points"]
    assert unbacked(nb, records={-4.4, 0.4}) == [] and unbacked(nb, records={4.4, 0.4}) != []
