"""Student and instructor editions of the course notebooks.

    python scripts/editions.py student    [NOTEBOOK ...] [--out build/student]
    python scripts/editions.py instructor [NOTEBOOK ...] [--out build/instructor]

With no NOTEBOOK, every ``notebooks/NN_*.ipynb`` is written.

* The **instructor** edition is the notebook as committed: solutions, outputs, everything (the glossary
  link aside: see below).
* The **student** edition replaces every code cell tagged ``solution`` by a stub that keeps
  the imports, each function's (or method's) signature and docstring, and raises
  ``NotImplementedError``; ``fslcourse.exercises.check`` reports that as
  "✘ NAME: not implemented yet". The stub cell is tagged ``exercise`` instead of
  ``solution``. Outputs are cleared from the solution cell and from every later cell
  that uses a name it defines, directly or through names those cells define (so the
  passing check and results computed with the solution are not shown). Markdown cells,
  the exercise text included, are kept as they are.

In both, a link to the repository's docs (``../docs/GLOSSARY.md``) points at a copy written beside the
notebooks (``OUT/docs/GLOSSARY.md``): a Jupyter server opened on the edition's folder
(``make lab LAB_DIR=build/student``) cannot reach the files above it.

A solution cell may hold only imports, functions, classes and comments: they are what a
stub can keep. Anything else stops the build with a message naming the notebook, the
cell and the line.

``check_slice`` gives the few statements an exercise's check needs (used by
``tests/test_editions.py`` to run each check quickly with a kernel).
"""
from __future__ import annotations

import argparse
import ast
import builtins
import copy
import io
import symtable
import sys
import tokenize
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
from web_assets import carry_doc_links, check_inputs  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SOLUTION_TAG = "solution"
STUB_TAG = "exercise"
PARAMETERS_TAG = "parameters"
STUB_COMMENT = "# YOUR CODE HERE"
# Names an IPython kernel provides without an import.
KERNEL_NAMES = frozenset(dir(builtins)) | {"display", "get_ipython", "In", "Out", "exit", "quit", "_", "__", "___"}


def course_notebooks(root: Path = ROOT) -> list[Path]:
    """The course's notebooks, ``notebooks/NN_*.ipynb``, in order."""
    return sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def solution_cells(nb) -> list[int]:
    """Indexes (in ``nb.cells``) of the code cells tagged ``solution``."""
    return [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and SOLUTION_TAG in tags(c)]


# --------------------------------------------------------------------------------------
# Which names a piece of code defines and which it needs
# --------------------------------------------------------------------------------------

def python_source(source: str) -> str:
    """The cell's source as plain Python (IPython magics become ``get_ipython()`` calls)."""
    try:
        ast.parse(source)
        return source
    except SyntaxError:
        from IPython.core.inputtransformer2 import TransformerManager

        return TransformerManager().transform_cell(source)


def defined_names(source: str) -> set[str]:
    """Names bound at the top level of ``source`` (assignments, imports, defs, classes, loop targets)."""
    table = symtable.symtable(python_source(source), "<cell>", "exec")
    return {s.get_name() for s in table.get_symbols() if s.is_assigned() or s.is_imported()}


def needed_names(source: str) -> set[str]:
    """Global names ``source`` reads but does not define itself (builtins excluded).

    Names read inside functions, classes and comprehensions count too: a function
    body's ``torch.stack`` needs ``torch`` when the function is called.
    """
    table = symtable.symtable(python_source(source), "<cell>", "exec")
    used = {s.get_name() for s in table.get_symbols() if s.is_referenced()}
    stack = list(table.get_children())
    while stack:
        child = stack.pop()
        used |= {s.get_name() for s in child.get_symbols() if s.is_global() and s.is_referenced()}
        stack.extend(child.get_children())
    return used - defined_names(source) - KERNEL_NAMES


@dataclass
class Statement:
    """One top-level statement of a code cell."""

    cell: int
    source: str
    defines: set[str] = field(default_factory=set)
    needs: set[str] = field(default_factory=set)


def statements(nb, cell_index: int) -> list[Statement]:
    """The top-level statements of code cell ``cell_index``, each with what it defines and needs."""
    source = python_source(nb.cells[cell_index].source)
    lines = source.splitlines(keepends=True)
    out = []
    for node in ast.parse(source).body:
        start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        text = "".join(lines[start - 1:node.end_lineno])
        text = _dedent_first_line(text, node.col_offset).rstrip("\n")
        out.append(Statement(cell_index, text, defined_names(text), needed_names(text)))
    return out


def _dedent_first_line(text: str, col: int) -> str:
    return text[col:] if col and text[:col].strip(";") == "" else text


# --------------------------------------------------------------------------------------
# Stubs
# --------------------------------------------------------------------------------------

class SolutionCellError(ValueError):
    """A solution cell holds code a stub cannot keep."""


def stub_source(source: str, where: str = "solution cell") -> str:
    """The student's version of a solution cell's ``source``.

    Imports, comments and blank lines between statements are kept; every function and
    method keeps its decorators, signature and docstring and gets the body
    ``raise NotImplementedError(...)``; a class keeps its header, docstring and
    non-function statements, and its methods are stubbed.

    Raises:
        SolutionCellError: the cell has IPython magics or top-level code other than
            imports, functions, classes and strings (the message names ``where`` and the line).
    """
    try:
        tree = ast.parse(source)
    except SyntaxError as err:
        raise SolutionCellError(f"{where}: line {err.lineno} is not plain Python ({err.msg}); "
                                "a solution cell holds only imports, functions and classes") from err
    lines = source.splitlines(keepends=True)
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    edits: list[tuple[int, int, str]] = []  # (first line, last line, replacement), 1-based, inclusive
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.Pass)) or _is_string(node):
            continue
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            edits.append(_stub_function(node, lines, tokens))
        elif isinstance(node, ast.ClassDef):
            edits.extend(_stub_function(n, lines, tokens) for n in node.body
                         if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))
        else:
            raise SolutionCellError(
                f"{where}: line {node.lineno} is {type(node).__name__} code "
                f"({lines[node.lineno - 1].strip()!r}); a solution cell may hold only imports, "
                "functions, classes and comments, whose bodies the student edition replaces by stubs. "
                "Move this line to the next cell, or into the function.")
    out, line = [], 1
    for first, last, text in sorted(edits):
        out.extend(lines[line - 1:first - 1])
        out.append(text)
        line = last + 1
    out.extend(lines[line - 1:])
    return "".join(out).rstrip("\n")


def _is_string(node) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def _stub_function(node, lines: list[str], tokens) -> tuple[int, int, str]:
    """``(first line, last line, text)``: ``node`` with its body replaced by a stub."""
    start = min([node.lineno] + [d.lineno for d in node.decorator_list])
    colon_line, colon_col = _header_colon(node, tokens)
    header = "".join(lines[start - 1:colon_line - 1]) + lines[colon_line - 1][:colon_col + 1] + "\n"
    body = node.body
    starts_on_own_line = body[0].lineno > colon_line
    indent = " " * (body[0].col_offset if starts_on_own_line else node.col_offset + 4)
    doc = ""
    if _is_string(body[0]):
        if starts_on_own_line:
            doc = "".join(lines[body[0].lineno - 1:body[0].end_lineno])
        else:
            doc = f'{indent}"""{ast.get_docstring(node, clean=False)}"""\n'
    stub = (f"{indent}{STUB_COMMENT}\n"
            f'{indent}raise NotImplementedError("{node.name}: replace this line with your solution")\n')
    return start, node.end_lineno, header + doc + stub


def _header_colon(node, tokens) -> tuple[int, int]:
    """Line and column of the ``:`` that ends the ``def`` header of ``node``."""
    depth, seen_def = 0, False
    for tok in tokens:
        if not seen_def:
            seen_def = tok.type == tokenize.NAME and tok.string == "def" and tok.start[0] >= node.lineno
            continue
        if tok.type == tokenize.OP:
            if tok.string in "([{":
                depth += 1
            elif tok.string in ")]}":
                depth -= 1
            elif tok.string == ":" and depth == 0:
                return tok.start
    raise SolutionCellError(f"could not find the end of the header of {node.name}()")


# --------------------------------------------------------------------------------------
# Editions
# --------------------------------------------------------------------------------------

def stubbed_names(source: str) -> set[str]:
    """Names a solution cell binds that its stub changes: its functions and classes, not its imports (the stub
    keeps those, so a later cell that only uses an imported name does not depend on the solution)."""
    table = symtable.symtable(python_source(source), "<cell>", "exec")
    return {s.get_name() for s in table.get_symbols() if s.is_assigned()}


def dependent_cells(nb, solution_index: int) -> list[int]:
    """Later code cells that use a name the solution cell's stub changes, directly or transitively."""
    tainted = stubbed_names(nb.cells[solution_index].source)
    out = []
    for i in range(solution_index + 1, len(nb.cells)):
        cell = nb.cells[i]
        if cell.cell_type != "code" or SOLUTION_TAG in tags(cell):
            continue
        if needed_names(cell.source) & tainted:
            out.append(i)
            tainted |= defined_names(cell.source)
    return out


def check_cell(nb, solution_index: int) -> int:
    """Index of the first later code cell that calls ``check(...)`` with a name the solution defines."""
    names = defined_names(nb.cells[solution_index].source)
    for i in range(solution_index + 1, len(nb.cells)):
        cell = nb.cells[i]
        if cell.cell_type == "code" and "check(" in cell.source and needed_names(cell.source) & names:
            return i
    raise ValueError(f"solution cell {solution_index} defines {sorted(names)} but no later cell calls "
                     "fslcourse.exercises.check with them; add the check cell after the solution")


def _clear(cell) -> None:
    cell.outputs = []
    cell.execution_count = None


def student_edition(nb, name: str = "notebook"):
    """A copy of ``nb`` with every solution replaced by a stub and the outputs that depend on it cleared."""
    nb = copy.deepcopy(nb)
    for i in solution_cells(nb):
        cell = nb.cells[i]
        cell.source = stub_source(cell.source, where=f"{name} cell {i} (tagged {SOLUTION_TAG!r})")
        cell.metadata["tags"] = [STUB_TAG if t == SOLUTION_TAG else t for t in tags(cell)]
        _clear(cell)
        for j in dependent_cells(nb, i):
            _clear(nb.cells[j])
    return nb


def instructor_edition(nb):
    """The notebook as committed (solutions and outputs kept)."""
    return copy.deepcopy(nb)


EDITIONS = {"student": student_edition, "instructor": lambda nb, name="": instructor_edition(nb)}


def write_edition(edition: str, notebooks: list[Path], out_dir: Path) -> list[Path]:
    """Write ``edition`` of each notebook to ``out_dir`` (same file names); returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        result = EDITIONS[edition](nb, name=path.name)
        carry_doc_links(result, out_dir, path.name)
        target = out_dir / path.name
        tmp = target.with_suffix(".ipynb.tmp")
        nbformat.write(result, tmp)
        tmp.replace(target)
        n = len(solution_cells(nb))
        print(f"{edition}: {target} ({n} solution cell{'s' * (n != 1)}"
              f"{' stubbed' if edition == 'student' else ' kept'})")
        written.append(target)
    return written


# --------------------------------------------------------------------------------------
# The few statements a check needs (for tests)
# --------------------------------------------------------------------------------------

@dataclass
class CheckSlice:
    """What to run to try one exercise: ``preamble`` cells, then the solution (or stub), then ``check``."""

    preamble: list[str]
    solution: str
    check: str
    solution_index: int
    check_index: int
    unresolved: set[str]


def head_cells(nb) -> list[int]:
    """The parameters cell and the setup cell: the first two code cells."""
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    params = next((i for i in code if PARAMETERS_TAG in tags(nb.cells[i])), code[0] if code else None)
    return [i for i in code[:2] if i >= params]


def program_slice(nb, needed: set[str], before: int, skip: set[int] = frozenset()) -> tuple[list[str], set[str]]:
    """The code that defines ``needed``, taken from the code cells before cell ``before``.

    Returns ``(sources, unresolved)``: the sources of the parameters and setup cells,
    then the earlier top-level statements that define the needed names (and,
    transitively, the names those statements need), in notebook order; and the names
    no earlier statement defines. Cells in ``skip`` are left out. Imports are taken
    alone, so code that needs ``torch`` does not load a data set.
    """
    head = [i for i in head_cells(nb) if i < before and i not in skip]
    head_defines = set().union(*(defined_names(nb.cells[i].source) for i in head))
    needed = set(needed) - head_defines
    candidates = [s for i, c in enumerate(nb.cells[:before])
                  if c.cell_type == "code" and i not in skip and i not in head for s in statements(nb, i)]
    chosen = []
    for stmt in reversed(candidates):
        if stmt.defines & needed:
            chosen.append(stmt)
            needed = (needed - stmt.defines) | (stmt.needs - head_defines)
    chosen.reverse()
    return [nb.cells[i].source for i in head] + [s.source for s in chosen], needed


def check_slice(nb, solution_index: int) -> CheckSlice:
    """What one exercise needs: the parameters and setup cells, plus the earlier top-level
    statements that define (transitively) the names the solution cell and its check cell need.
    """
    check_index = check_cell(nb, solution_index)
    solution = nb.cells[solution_index].source
    check = nb.cells[check_index].source
    needed = needed_names(solution) | (needed_names(check) - defined_names(solution))
    preamble, unresolved = program_slice(nb, needed, check_index, skip={solution_index})
    return CheckSlice(preamble, solution, check, solution_index, check_index, unresolved)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("edition", choices=sorted(EDITIONS))
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/NN_*.ipynb")
    parser.add_argument("--out", type=Path, help="default: build/EDITION")
    args = parser.parse_args(argv)
    notebooks = args.notebooks or course_notebooks()
    if not notebooks:
        print("no notebooks found in notebooks/", file=sys.stderr)
        return 1
    out = args.out or ROOT / "build" / args.edition
    try:  # before any folder is made: a missing or broken notebook, an --out that is a file or a source's folder
        check_inputs(notebooks, out)
        sources = [p for p in notebooks if out.resolve() == p.resolve().parent]
        if sources:  # the edition has the notebook's own name: it would replace the source
            raise ValueError(f"--out {out} holds {sources[0].name}, which the {args.edition} edition would "
                             "replace; give --out another folder (default: build/EDITION)")
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        write_edition(args.edition, notebooks, out)
    except (SolutionCellError, ValueError) as err:
        print(f"ERROR: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
