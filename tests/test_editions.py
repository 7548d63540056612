"""Student and instructor editions (scripts/editions.py, `make student` / `make instructor`).

The student edition's checks must fail before an exercise is solved and pass once the
solution is put back: each exercise is run with a real kernel on the few statements
its check needs (parameters and setup cells, the imports and definitions the check
uses, the stub or the solution, the check cell).
"""
import ast
import copy
import importlib.util
import inspect
import json
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load_editions():
    spec = importlib.util.spec_from_file_location("fslcourse_editions", ROOT / "scripts" / "editions.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


E = _load_editions()
NOTEBOOKS = [p for p in E.course_notebooks(ROOT) if E.solution_cells(nbformat.read(p, as_version=4))]
EXERCISES = [(p, i) for p in NOTEBOOKS for i in E.solution_cells(nbformat.read(p, as_version=4))]


def _read(path):
    return nbformat.read(path, as_version=4)


def _functions(source):
    """``{qualified name: FunctionDef}`` of the functions and methods defined at the top of ``source``."""
    out = {}
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            out[node.name] = node
        elif isinstance(node, ast.ClassDef):
            out.update({f"{node.name}.{n.name}": n for n in node.body
                        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))})
    return out


def _exercise_name(check_source):
    """The first argument of the ``check("name", fn)`` call in a check cell."""
    for node in ast.walk(ast.parse(E.python_source(check_source))):
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "check":
            return node.args[0].value
    raise AssertionError(f"no check(...) call in {check_source!r}")


def _output_text(cell):
    parts = []
    for out in cell.get("outputs", []):
        parts.append("".join(out.get("text", "")))
        for value in out.get("data", {}).values():
            parts.append(value if isinstance(value, str) else json.dumps(value))
    return "\n".join(parts)


# ---------------------------------------------------------------- stubs (against the original functions)

STUB_CASES = {
    "multi-line signature, decorator, annotations, lambda default": '''
import functools

# a comment the student keeps
@functools.lru_cache(maxsize=None)
def f(a: int = 1,
      b=lambda x: {"k": x}) -> dict[str, int]:
    """Doc.

    More doc."""
    secret_line = a + 1  # the answer
    return {"a": secret_line}
''',
    "one-liner without docstring": "def g(x, *args, y=2, **kw): return x * 41",
    "class with methods": '''
class Model:
    """A model."""
    size = 3

    def __init__(self, n):
        self.n = n * 1234

    async def run(self, x, /, scale=1.0):
        """Run it."""
        return x * 5678
''',
}


@pytest.mark.parametrize("source", list(STUB_CASES.values()), ids=list(STUB_CASES))
def test_stub_keeps_signatures_and_docstrings_and_raises(source):
    stub = E.stub_source(source)
    original_ns, stub_ns = {}, {}
    exec(compile(source, "<solution>", "exec"), original_ns)
    exec(compile(stub, "<stub>", "exec"), stub_ns)
    for name, node in _functions(source).items():
        owner, _, attr = name.rpartition(".")
        get = (lambda ns: getattr(ns[owner], attr)) if owner else (lambda ns: ns[name])
        want, got = get(original_ns), get(stub_ns)
        sig_got, sig_want = inspect.signature(got), inspect.signature(want)
        assert [(p.name, p.kind, p.annotation) for p in sig_got.parameters.values()] == \
            [(p.name, p.kind, p.annotation) for p in sig_want.parameters.values()], name
        assert sig_got.return_annotation == sig_want.return_annotation, name
        assert got.__doc__ == want.__doc__, name
        stub_node = _functions(stub)[name]
        assert ast.dump(stub_node.args) == ast.dump(node.args), name  # defaults, as written
        assert [ast.dump(d) for d in stub_node.decorator_list] == [ast.dump(d) for d in node.decorator_list]
        assert isinstance(stub_node.body[-1], ast.Raise)
        assert ast.unparse(stub_node.body[-1].exc.func) == "NotImplementedError"
    assert "secret_line" not in stub and "1234" not in stub and "5678" not in stub and "41" not in stub
    assert "import functools" in stub or "functools" not in source
    if "# a comment the student keeps" in source:
        assert "# a comment the student keeps" in stub
    if "size = 3" in source:
        assert "size = 3" in stub  # class attributes are part of the interface


def test_stub_calls_raise_not_implemented():
    ns = {}
    exec(E.stub_source(STUB_CASES["one-liner without docstring"]), ns)
    with pytest.raises(NotImplementedError, match="g: replace this line"):
        ns["g"](1)


@pytest.mark.parametrize("source", ["x = 1\ndef f():\n    return x", "%time 1\ndef f():\n    pass",
                                    "def f():\n    pass\nprint(f())"])
def test_stub_refuses_code_it_cannot_keep(source):
    with pytest.raises(E.SolutionCellError, match="cell 7"):
        E.stub_source(source, where="01_x.ipynb cell 7")


def test_dependent_cells_are_transitive():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("import torch"),
        nbformat.v4.new_code_cell("def my_fn(x):\n    return x + 1", metadata={"tags": ["solution"]}),
        nbformat.v4.new_code_cell("ok = check('e', my_fn)"),
        nbformat.v4.new_code_cell("y = my_fn(torch.ones(2))"),
        nbformat.v4.new_code_cell("z = torch.zeros(2)"),  # independent
        nbformat.v4.new_code_cell("print(y.sum())"),  # through y
        nbformat.v4.new_code_cell("def helper(a):\n    return my_fn(a)"),  # inside a function body
        nbformat.v4.new_code_cell("print(helper(z))"),
    ])
    assert E.dependent_cells(nb, 1) == [2, 3, 5, 6, 7]
    assert E.check_cell(nb, 1) == 2


def test_a_solution_cells_imports_taint_nothing():
    # the stub keeps the solution cell's imports: a later cell using only them keeps its outputs (notebook 10's
    # solution imported torch, and the student edition cleared every later cell that used torch)
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("x = 1"),
        nbformat.v4.new_code_cell("import torch\nfrom math import pi\n\ndef my_fn(x):\n    return torch.ones(x) * pi",
                                  metadata={"tags": ["solution"]}),
        nbformat.v4.new_code_cell("ok = check('e', my_fn)"),
        nbformat.v4.new_code_cell("z = torch.zeros(2) + pi"),  # uses only the imports
        nbformat.v4.new_code_cell("print(my_fn(2))"),
    ])
    assert E.dependent_cells(nb, 1) == [2, 4]
    assert E.check_cell(nb, 1) == 2


def test_check_slice_takes_only_the_imports_it_needs():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell('profile = "quick"\nseed = 0', metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("import fslcourse\ncourse = fslcourse.setup(seed=seed, profile=profile)"),
        nbformat.v4.new_code_cell("import torch\ndata = load_everything_slowly()\nscale = 2"),
        nbformat.v4.new_code_cell("labels = data.labels"),  # a global with the same name as a parameter
        nbformat.v4.new_code_cell("def f(features, labels):\n    return torch.stack([features * scale])",
                                  metadata={"tags": ["solution"]}),
        nbformat.v4.new_code_cell("from fslcourse.exercises import check\npassed = check('e', f)"),
    ])
    piece = E.check_slice(nb, 4)
    assert piece.preamble[2:] == ["import torch", "scale = 2"]
    assert (piece.solution_index, piece.check_index, piece.unresolved) == (4, 5, set())


# ---------------------------------------------------------------- the course's notebooks

@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_student_edition_hides_solutions_and_their_results(path):
    nb = _read(path)
    student = E.student_edition(nb, name=path.name)
    nbformat.validate(student)
    assert [c.get("id") for c in student.cells] == [c.get("id") for c in nb.cells]
    changed = set()
    for i in E.solution_cells(nb):
        original, stub = nb.cells[i].source, student.cells[i].source
        assert "solution" not in E.tags(student.cells[i]) and "exercise" in E.tags(student.cells[i])
        for name, node in _functions(original).items():
            stub_node = _functions(stub)[name]
            assert ast.dump(stub_node.args) == ast.dump(node.args), f"{name}: signature changed"
            assert ast.get_docstring(stub_node) == ast.get_docstring(node), f"{name}: docstring changed"
            body = node.body[1:] if ast.get_docstring(node) is not None else node.body
            for stmt in body:  # no line of the solution's body survives anywhere in the notebook
                for line in ast.get_source_segment(original, stmt).splitlines():
                    if len(line.strip()) > 12:
                        assert all(line.strip() not in c.source for c in student.cells), line
        check_index = E.check_cell(nb, i)
        name = _exercise_name(nb.cells[check_index].source)
        if nb.cells[check_index].outputs:  # executed and committed: it shows the pass
            assert f"✔ {name}" in _output_text(nb.cells[check_index])
        cleared = [i, check_index, *E.dependent_cells(nb, i)]
        for j in cleared:
            assert student.cells[j].outputs == [] and student.cells[j].execution_count is None, j
        assert all(f"✔ {name}" not in _output_text(c) for c in student.cells)
        changed |= set(cleared)
    for j, (a, b) in enumerate(zip(nb.cells, student.cells)):  # everything else is untouched
        if j not in changed:
            assert a == b, f"cell {j} changed"


def test_student_edition_of_notebook_10_keeps_the_results_its_exercise_does_not_touch():
    # its solution cell imports torch: the MetaGAN and task-synthesis results, quoted in the prose, must stay
    nb = _read(next(p for p in NOTEBOOKS if p.name.startswith("10_")))
    student = E.student_edition(nb)
    for text in ("median p(fake)", "five alphabets"):
        cells = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and text in _output_text(c)]
        assert cells, f"no output of notebook 10 says {text!r} any more; update this test"
        for i in cells:
            assert text in _output_text(student.cells[i]), f"cell {i}'s output is cleared in the student edition"


def test_a_link_to_no_doc_is_refused_in_one_line_before_anything_is_copied(tmp_path, capsys):
    nb = _read(NOTEBOOKS[0])
    for target in ("../docs/NO_SUCH.md", "../docs/../../escape.md"):
        broken = copy.deepcopy(nb)
        broken.cells[0].source += f"\n[a link]({target})"
        bad = tmp_path / "bad.ipynb"
        nbformat.write(broken, bad)
        assert E.main(["student", str(bad), "--out", str(tmp_path / "out")]) == 1
        err = capsys.readouterr().err.strip()
        assert err == f"ERROR: bad.ipynb: its link {target} names no file of docs/; link a file that is there"
        assert not (tmp_path / "out" / "docs").exists()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_instructor_edition_keeps_everything(path, tmp_path):
    (written,) = E.write_edition("instructor", [path], tmp_path)
    committed = _read(path)
    for cell in committed.cells:  # but its links to the docs, which point at the copies beside it
        if cell.cell_type == "markdown":
            cell.source = cell.source.replace("](../docs/", "](docs/")
    assert _read(written) == committed


def test_cli_writes_both_editions(tmp_path):
    paths = E.course_notebooks(ROOT)
    for edition in ("student", "instructor"):
        assert E.main([edition, *map(str, paths), "--out", str(tmp_path / edition)]) == 0
        assert sorted(p.name for p in (tmp_path / edition).glob("*.ipynb")) == [p.name for p in paths]
        # the glossary link points inside the edition's folder, where a server opened on it can follow it
        first = nbformat.read(tmp_path / edition / paths[0].name, as_version=4)
        text = "".join(c.source for c in first.cells if c.cell_type == "markdown")
        assert "](docs/GLOSSARY.md)" in text and "](../docs/" not in text
        assert (tmp_path / edition / "docs" / "GLOSSARY.md").read_text() == (ROOT / "docs" / "GLOSSARY.md").read_text()


RECORD_CHECKS = """\
import fslcourse.exercises as _fsl_exercises, fslcourse.exercises.core as _fsl_core
_fsl_checks = []
def _fsl_recording_check(name, fn, *args, _check=_fsl_core.check, **kwargs):
    ok = _check(name, fn, *args, **kwargs)
    _fsl_checks.append([name, ok])
    return ok
_fsl_exercises.check = _fsl_core.check = _fsl_recording_check"""


@pytest.mark.parametrize("path,index", EXERCISES, ids=[f"{p.name}:cell{i}" for p, i in EXERCISES])
def test_student_check_fails_until_the_solution_is_put_back(path, index, tmp_path, monkeypatch):
    from nbclient import NotebookClient

    nb = _read(path)
    student = E.student_edition(nb, name=path.name)
    piece = E.check_slice(nb, index)  # what the solution and its check need
    assert not piece.unresolved, f"names the check needs but no earlier cell defines: {piece.unresolved}"
    name = _exercise_name(piece.check)
    cells = [*piece.preamble, RECORD_CHECKS,
             student.cells[index].source, piece.check,  # the student edition's stub
             piece.solution, piece.check,  # the solution put back
             "import json; print(json.dumps(_fsl_checks))"]
    run = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in cells])
    n = len(piece.preamble) + 1
    # Tagged so that an error is recorded, not raised: the assertion below names it.
    run.cells[n + 1].metadata["tags"] = ["raises-exception"]
    monkeypatch.setenv("FSLCOURSE_DEVICE", "cpu")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    NotebookClient(run, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for o in run.cells[n + 1].outputs if o.output_type == "error"]
    # With the stub the check says so in one line; code after it that calls the function runs only once it passes
    # (`if passed:`), so that the student sees no traceback under the line and "Run All" goes on.
    assert not errors, f"the check cell raised {errors[0].ename} under its line with the stub: guard what follows the check"
    before, after = _output_text(run.cells[n + 1]), _output_text(run.cells[n + 3])
    assert f"✘ {name}: not implemented yet" in before, before
    assert f"✔ {name}" in after, after
    assert json.loads(_output_text(run.cells[-1])) == [[name, False], [name, True]]


def test_a_check_names_the_stub_that_a_students_function_calls(capsys):
    """Notebook 05: a student who writes the meta-gradient but skipped the inner loop it calls is told which
    function is still a stub, not that the meta-gradient is (the stub's text and the check's reading of it agree)."""
    from fslcourse.exercises import check

    namespace = {}
    exec(E.stub_source('def my_helper(f, y, n):\n    """Help."""\n    return f[:n]\n'), namespace)

    def prototypes_of(f, y, n):
        return namespace["my_helper"](f, y, n)

    assert not check("prototypes", prototypes_of)
    out = capsys.readouterr().out
    assert "✘ prototypes: my_helper, which your function calls, is not implemented yet" in out, out
    assert not check("prototypes", namespace["my_helper"])
    assert "✘ prototypes: not implemented yet; fill in the function" in capsys.readouterr().out


def test_bad_inputs_and_an_out_onto_the_sources_are_refused_before_anything_is_written(tmp_path, capsys):
    """--out notebooks replaced the committed notebooks with their student edition (solutions stubbed), and a
    missing notebook, a folder, a broken .ipynb or an --out that is a file were raw tracebacks."""
    source = ROOT / "notebooks" / "02_protonet.ipynb"
    before = source.read_bytes()
    assert E.main(["student", str(source), "--out", str(source.parent)]) == 2
    assert "holds 02_protonet.ipynb, which the student edition would replace; give --out another folder" in \
        capsys.readouterr().err
    assert source.read_bytes() == before and not (source.parent / "docs").exists()
    (tmp_path / "broken.ipynb").write_text("{}")
    (tmp_path / "a-file").write_text("")
    for argv, says in ((["student", str(tmp_path / "missing.ipynb")], "missing.ipynb does not exist"),
                       (["student", str(tmp_path / "broken.ipynb")], "broken.ipynb is not a notebook"),
                       (["student", str(source), "--out", str(tmp_path / "a-file")], "a-file is a file; give a folder")):
        assert E.main(argv + ([] if "--out" in argv else ["--out", str(tmp_path / "out")])) == 2
        err = capsys.readouterr().err
        assert says in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()
