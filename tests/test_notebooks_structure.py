"""Every notebook follows the course's shape: parameters cell, setup, goals, exercise, summary, stored outputs."""
import json
import re
from pathlib import Path

import pytest

from fslcourse.widgets.plotting import METHOD_COLOURS

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_structure(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    text = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    first = "".join(code[0]["source"])
    assert "parameters" in code[0].get("metadata", {}).get("tags", []), "first code cell must be tagged parameters"
    assert re.search(r'^profile = "quick"$', first, re.M) and re.search(r"^seed = \d+$", first, re.M)
    assert "fslcourse.setup(seed=seed, profile=profile)" in "".join(code[1]["source"])
    assert "Learning goals" in text and "Runtime" in text
    header = "".join(nb["cells"][0]["source"])  # STYLE.md: goals, runtime, prerequisites and modules at the top
    for part in ("Learning goals", "Runtime", "Prerequisites", "Modules"):
        assert f"**{part}" in header, f"the first cell names no {part} (README: each notebook lists them at the top)"
    assert "$" in text, "the maths is written in LaTeX"
    assert any("solution" in c.get("metadata", {}).get("tags", []) for c in code), "an exercise solution cell"
    assert any("check(" in "".join(c["source"]) for c in code), "an exercise with an automatic check"
    assert "Summary" in text or "summary" in text
    assert all(c.get("execution_count") for c in code), "executed and saved with outputs (nbval compares them)"
    if any(".widget" in "".join(c["source"]) for c in code):  # a reader without a kernel sees no widget
        assert "come alive" in "".join(nb["cells"][0]["source"]), "say at the top that widgets need their cell run"
    for c in code:
        src = "".join(c["source"])
        assert '"cuda"' not in src and ".cuda()" not in src, "never hard-code CUDA"
        if "NBVAL_IGNORE_OUTPUT" in src:
            lines = src.splitlines()
            i = lines.index("# NBVAL_IGNORE_OUTPUT")
            assert lines[i + 1].startswith("# (why:"), "say why a cell's output is not compared"


# a printed self-check: "<what is checked>: True" anywhere in a line (several may share one); dict reprs
# (a recipe's {'flag': False}) are settings, not checks
CHECK_LINE = re.compile(r"^[^{\n]*:\s*(?:True|False)\b[^\n]*$", re.M)
FAILED_CHECK = re.compile(r":\s*False\b")


def stored_checks(nb: dict) -> list[tuple[int, str]]:
    """``(cell, line)`` of every self-check line in the notebook's stored text outputs."""
    found = []
    for i, c in enumerate(nb["cells"]):
        for out in c.get("outputs", []):
            text = "".join(out.get("text", "")) + "".join(out.get("data", {}).get("text/plain", ""))
            found += [(i, m.group(0)) for m in CHECK_LINE.finditer(text)]
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_stored_self_checks_all_hold(path):
    """Lines a notebook prints for its own checks ("... matches the package: True") all say True.

    nbval only compares stored outputs with new ones, so a check that failed when the notebook
    was saved would pass nbval forever; this reads the stored outputs themselves.
    """
    failed = [f"cell {i}: {line}" for i, line in stored_checks(json.loads(path.read_text())) if FAILED_CHECK.search(line)]
    assert not failed, "a stored self-check failed:\n" + "\n".join(failed)


def test_the_self_check_scan_finds_a_failed_check_anywhere_in_a_line():
    text = ("same shape: True\nfrom scratch == package: False (largest difference below 1e-5: True)\n"
            "recipe {'zero_head': False}\nrows sum to 1:   False\n")
    nb = {"cells": [{"cell_type": "code", "outputs": [{"output_type": "stream", "text": text}]}]}
    checks = stored_checks(nb)
    assert len(checks) == 3 and [line for _, line in checks if FAILED_CHECK.search(line)] == [
        "from scratch == package: False (largest difference below 1e-5: True)", "rows sum to 1:   False"]
    assert len(stored_checks(json.loads(NOTEBOOKS[0].read_text()))) >= 5  # notebook 01 prints its checks


WIDGET_CELL = re.compile(r"^\s*(\w+)\.widget\s*$")


def widget_only_sections(nb: dict) -> list[str]:
    """Widget cells with no static picture (an ``image/png`` output) after them in their section (``##``)."""
    cells, found = nb["cells"], []
    for i, c in enumerate(cells):
        lines = [line for line in "".join(c["source"]).splitlines() if line.strip()]
        if c["cell_type"] != "code" or not lines or not WIDGET_CELL.match(lines[-1]):
            continue
        for later in cells[i + 1:]:
            if later["cell_type"] == "markdown" and "".join(later["source"]).lstrip().startswith("## "):
                found.append(f"cell {i} ({lines[-1].strip()})")
                break
            if any("image/png" in out.get("data", {}) for out in later.get("outputs", [])):
                break
        else:
            found.append(f"cell {i} ({lines[-1].strip()})")
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_every_widget_has_a_static_picture_in_its_section(path):
    """A widget shows nothing on GitHub, in the HTML pages or on a slide: its section also holds a static figure."""
    missing = widget_only_sections(json.loads(path.read_text()))
    assert not missing, ("a widget with no static figure after it in its section (add e.g. `Image(explorer.png())`): "
                         + ", ".join(missing))


def test_the_widget_check_finds_a_widget_only_section():
    md = {"cell_type": "markdown", "source": ["## 5. Explore\n"]}
    widget = {"cell_type": "code", "source": ["ex = Explorer()\n", "ex.widget"], "outputs": []}
    picture = {"cell_type": "code", "source": ["Image(ex.png())"], "outputs": [{"data": {"image/png": "..."}}]}
    assert widget_only_sections({"cells": [md, widget, md]}) == ["cell 1 (ex.widget)"]
    assert widget_only_sections({"cells": [md, widget]}) == ["cell 1 (ex.widget)"]
    assert widget_only_sections({"cells": [md, widget, picture, md]}) == []


def stored_stderr(nb: dict) -> list[str]:
    """Cells whose stored outputs include a stderr stream (a warning, a progress bar left behind)."""
    return [f"cell {i}: {''.join(out.get('text', ''))[:120]!r}" for i, c in enumerate(nb["cells"])
            for out in c.get("outputs", []) if out.get("output_type") == "stream" and out.get("name") == "stderr"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_no_stored_stderr(path):
    """A stored warning carries this machine's paths and library versions; nbval then fails on any other machine."""
    found = stored_stderr(json.loads(path.read_text()))
    assert not found, "a stored stderr output (fix or avoid the warning, then re-execute):\n" + "\n".join(found)


def test_the_stderr_check_finds_a_warning():
    warning = {"output_type": "stream", "name": "stderr", "text": ["/home/me/.venv/torch/x.py:1: FutureWarning\n"]}
    nb = {"cells": [{"cell_type": "code", "source": [], "outputs": [warning]}]}
    assert stored_stderr(nb) and not stored_stderr({"cells": [{"cell_type": "code", "source": [], "outputs": []}]})


def untagged_solutions(nb: dict) -> list[str]:
    """Functions handed to ``check("name", fn)`` that are not defined in a cell tagged ``solution``: the student
    edition (scripts/editions.py) stubs only tagged cells, so such a function ships with its answer."""
    cells = [c for c in nb["cells"] if c["cell_type"] == "code"]
    problems = []
    for c in cells:
        for name, fn in re.findall(r"check\(\s*\"(\w+)\",\s*(\w+)", "".join(c["source"])):
            home = [d for d in cells if re.search(rf"^def {fn}\(", "".join(d["source"]), re.M)]
            if not home or any("solution" not in d.get("metadata", {}).get("tags", []) for d in home):
                problems.append(f"check({name!r}, {fn}): {fn} is not defined in a cell tagged 'solution'")
    return problems


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_every_checked_exercise_is_a_tagged_solution(path):
    problems = untagged_solutions(json.loads(path.read_text()))
    assert not problems, "\n".join(problems) + "\n(put the answer alone in a cell tagged 'solution', the check after it)"


def test_the_solution_check_finds_an_answer_left_in_the_check_cell():
    both = {"cell_type": "code", "metadata": {}, "source": ["def my_f(x):\n", "    return x\n", "check(\"f\", my_f)"]}
    answer = {"cell_type": "code", "metadata": {"tags": ["solution"]}, "source": ["def my_f(x):\n", "    return x"]}
    call = {"cell_type": "code", "metadata": {}, "source": ["check(\"f\", my_f)"]}
    assert untagged_solutions({"cells": [both]}) == ["check('f', my_f): my_f is not defined in a cell tagged 'solution'"]
    assert untagged_solutions({"cells": [call]}) and not untagged_solutions({"cells": [answer, call]})


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_figures_follow_the_style_guides_conventions(path):
    """STYLE.md, Figures: green and red mean right/wrong (or within target/miss), never a method or a line of another
    meaning; a method is drawn in its one colour of every notebook (plotting.method_colour); a widget's static picture
    is drawn at scale 2 (at 1 its text was the smallest of the course)."""
    for i, cell in enumerate(json.loads(path.read_text())["cells"]):
        if cell["cell_type"] != "code":
            continue
        for line in "".join(cell["source"]).splitlines():
            code = line.split("#")[0]
            assert not re.search(r"\.png\(\s*\)", code), f"cell {i}: a widget picture at scale 1: use .png(scale=2)"
            own = re.search(rf"""["']({'|'.join(map(re.escape, METHOD_COLOURS))})["']\s*[:,]\s*"""
                            r"""["'](C\d|#[0-9a-fA-F]{6}|tab:[a-z]+)["']""", code)
            assert not own, f"cell {i}: a colour of its own for a method: use plotting.method_colour (STYLE.md): {line.strip()}"
            green_red = re.search(r"""["'](C2|C3|tab:green|tab:red|green|red)["']|f["']C\{""", code)
            assert not green_red or re.search(r"within|miss|right|wrong|RIGHT|WRONG", line), \
                f"cell {i}: {green_red.group(0)} outside right/wrong (STYLE.md, Figures): {line.strip()}"


def typed_published_figures(cells: list[dict]) -> list[str]:
    """``"cell N: METHOD"`` for each code cell that types two or more of one method's published figures as
    literals: the notebook should import them from ``fslcourse.report.PUBLISHED`` (one place for each thing)."""
    from fslcourse.report import PUBLISHED

    found = []
    for i, c in enumerate(cells):
        if c["cell_type"] != "code":
            continue
        literals = set(re.findall(r"(?<![\d.])\d+\.\d+(?![\d.])", "".join(c["source"])))  # "98.8" in (5, 1): 98.8
        found += [f"cell {i}: {method}" for method, (figures, _) in PUBLISHED.items()
                  if len({f"{x:g}" for x in figures} & literals) >= 2]
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_published_figures_are_imported_not_typed(path):
    typed = typed_published_figures(json.loads(path.read_text())["cells"])
    assert not typed, f"published figures typed in a notebook, import fslcourse.report.PUBLISHED instead: {typed}"


def test_the_published_figures_check_finds_a_typed_copy():
    cell = {"cell_type": "code", "source": ['published = {"protonet 5-way 1-shot": 98.8, "5-shot": 99.7}\n']}
    assert typed_published_figures([cell]) == ["cell 0: protonet"]
    one = {"cell_type": "code", "source": ["acc = 98.8  # one number alone is no copy of a table\n"]}
    assert typed_published_figures([one]) == []
