"""scripts/paper_runs.py: the one command that re-prints INSTRUCTORS' table of paper runs into the docs."""
import importlib.util
from pathlib import Path

import pytest

from fslcourse.report import paper_runs_table

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "paper_runs.py"
spec = importlib.util.spec_from_file_location("paper_runs", SCRIPT)
paper_runs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(paper_runs)

DOC = "intro\n\n<!-- paper-runs: how it is made -->\n\n| old | table |\n\n<!-- /paper-runs -->\n\nafter\n"


def test_write_replaces_only_the_table_between_the_markers(tmp_path, capsys):
    doc = tmp_path / "INSTRUCTORS.md"
    doc.write_text(DOC)
    assert paper_runs.main(["--write", "--doc", str(doc)]) == 0
    text = doc.read_text()
    assert text.startswith("intro\n\n<!-- paper-runs: how it is made -->\n\n") and text.endswith(
        "\n\n<!-- /paper-runs -->\n\nafter\n")
    assert "| old | table |" not in text and paper_runs_table().strip() in text
    assert paper_runs.main(["--write", "--doc", str(doc)]) == 0 and doc.read_text() == text  # idempotent


def test_the_committed_doc_is_what_write_would_make():
    """The script's layout is the committed doc's: writing the current table into it changes nothing (as the
    check in tests/test_committed_results.py requires of an up-to-date table)."""
    text = paper_runs.INSTRUCTORS.read_text()
    assert paper_runs.with_table(text, paper_runs_table()) == text


@pytest.mark.parametrize("text", ["no markers\n", DOC.replace("<!-- /paper-runs -->", ""),
                                  DOC + "<!-- paper-runs: again -->\n",
                                  "<!-- /paper-runs -->\n<!-- paper-runs: late -->\n"])
def test_write_refuses_a_doc_without_one_pair_of_markers_and_leaves_it(tmp_path, capsys, text):
    doc = tmp_path / "INSTRUCTORS.md"
    doc.write_text(text)
    with pytest.raises(SystemExit):
        paper_runs.main(["--write", "--doc", str(doc)])
    assert "put them back around the table" in capsys.readouterr().err and doc.read_text() == text
