"""scripts/package_size.py: the line count issue 14's notes give (code lines: no comments, blanks or docstrings)."""
import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "package_size.py"
spec = importlib.util.spec_from_file_location("package_size", SCRIPT)
package_size = importlib.util.module_from_spec(spec)
spec.loader.exec_module(package_size)

SOURCE = '''"""Module docstring,
on two lines."""
import os  # a comment


def f(x):
    """Docstring."""
    # a comment line
    s = """a string
that is not a docstring"""
    return (x +
            1)
'''


def test_code_lines_counts_code_and_multi_line_strings_not_docstrings_comments_or_blanks():
    assert package_size.code_lines(SOURCE) == 6  # import, def, s = (2 lines), return (2 lines)


def test_the_folder_total_and_a_negative_top(tmp_path, capsys):
    (tmp_path / "a.py").write_text(SOURCE)
    (tmp_path / "b.py").write_text("x = 1\n")
    assert package_size.main([str(tmp_path), "--top", "1"]) == 0
    assert capsys.readouterr().out.split() == ["6", str(tmp_path / "a.py"), "7"]
    with pytest.raises(SystemExit):
        package_size.main([str(tmp_path), "--top", "-3"])  # listed all but the last three files
    assert "--top -3 is below 0" in capsys.readouterr().err
