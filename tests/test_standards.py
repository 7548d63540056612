"""The rules of STYLE.md that a machine can check, checked over the package, the benchmarks and the scripts.

Each rule names the file and line that breaks it, so a failure says what to fix.
"""
import ast
import io
import json
import re
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = sorted((ROOT / "fslcourse").rglob("*.py"))
EVERYWHERE = PACKAGE + sorted((ROOT / "benchmarks").rglob("*.py")) + sorted((ROOT / "scripts").rglob("*.py"))
ALGORITHMS = [p for folder in ("methods", "generative", "models") for p in sorted((ROOT / "fslcourse" / folder).glob("*.py"))
              if p.name not in ("__init__.py", "base.py", "augment.py")]  # augment: the protocol, not an algorithm

# calls that change a tensor's shape or the order of its axes
RESHAPE = re.compile(r"\.(view|reshape|flatten|unflatten|stack|permute|transpose|movedim|expand|expand_as|view_as|reshape_as)\(")
# a shape: parentheses holding a comma, e.g. `(n, C*H*W)` or `(n,)`, or `(*param.shape)`; an arrow; `scalar`
SHAPE_COMMENT = re.compile(r"\((?:[^()]*,[^()]*|\*[\w.]+)\)|->|scalar")
SAMPLERS = {"rand", "randn", "randint", "randperm", "multinomial", "normal", "bernoulli", "poisson"}


def statements(path: Path):
    """``(first line, last line, code with every string as '', comments)`` of each logical line of ``path``."""
    code, comments, start, end = [], [], None, None
    for tok in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
        if tok.type == tokenize.COMMENT:
            comments.append(tok.string)
        elif tok.type in (tokenize.NEWLINE, tokenize.ENDMARKER):
            if start is not None:
                yield start, end, "".join(code), comments
            code, comments, start = [], [], None
        elif tok.type not in (tokenize.NL, tokenize.INDENT, tokenize.DEDENT):
            start, end = tok.start[0] if start is None else start, tok.end[0]
            code.append("''" if tok.type == tokenize.STRING else tok.string)


def where(path: Path, line: int, root: Path = ROOT) -> str:
    return f"{path.relative_to(root)}:{line}"


def breaking_reshape_rule(path: Path, root: Path = ROOT) -> list[str]:
    return [where(path, line, root) for line, _, code, comments in statements(path)
            if RESHAPE.search(code) and not any(SHAPE_COMMENT.search(c) for c in comments)]


def test_every_reshape_view_flatten_stack_permute_or_expand_has_a_shape_comment():
    bad = [w for p in PACKAGE for w in breaking_reshape_rule(p)]
    assert not bad, "add a shape comment, e.g. `# (n, C*H*W)`, to: " + ", ".join(bad)


def test_the_reshape_rule_can_fail(tmp_path):
    src = tmp_path / "x.py"
    src.write_text("a = x.flatten(1)\nb = x.view(2, -1)  # (2, n)\nc = torch.stack(v,\n    0)  # here\nd = f('.view(')\n"
                   "e = x.permute(0, 2, 1)\nf = x.expand(4, -1)  # (4, n)\ng = x.view(2, -1)  # flatten (see above)\n")
    assert [int(w.rsplit(":", 1)[1]) for w in breaking_reshape_rule(src, tmp_path)] == [1, 3, 6, 8]


def calls(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            yield node


def test_every_torch_load_is_weights_only():
    bad = [where(p, c.lineno) for p in EVERYWHERE + sorted((ROOT / "tests").rglob("*.py")) for c in calls(p)
           if isinstance(c.func, ast.Attribute) and c.func.attr == "load" and ast.unparse(c.func.value) == "torch"
           and not any(k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
                       for k in c.keywords)]
    assert not bad, "load checkpoints with torch.load(..., weights_only=True): " + ", ".join(bad)


def test_no_hard_coded_cuda_and_no_num_workers():
    """Devices come from ``config.get_device()``; a line that only reads the chosen device says so (``# cuda-ok:``)."""
    bad = []
    for p in EVERYWHERE:
        if p.name == "config.py" and p.parent.name == "fslcourse":  # the one place that parses device names
            continue
        for line, last, code, comments in statements(p):
            src = "".join(p.read_text().splitlines(keepends=True)[line - 1:last])
            if re.search(r"[\"']cuda|\.cuda\(", src) and not any("cuda-ok:" in c for c in comments):
                bad.append(where(p, line))
            if "num_workers" in code:
                bad.append(where(p, line))
    assert not bad, "use fslcourse.config.get_device(), never 'cuda' or num_workers: " + ", ".join(bad)


def test_float64_only_on_the_cpu():
    """Apple's MPS has no float64: ``.double()`` on a tensor that may sit on the device failed there (predict, the
    drawing board, the diffusion schedule). Move it first (``.cpu().double()``), or say why it is on the CPU."""
    bad = [where(p, line) for p in PACKAGE for line, last, code, comments in statements(p)
           if ".double()" in code and ".cpu().double()" not in code and not any("CPU" in c for c in comments)]
    assert not bad, "float64 on the device fails on MPS; use .cpu().double(): " + ", ".join(bad)


def test_torch_samplers_take_a_generator():
    """A draw from torch's global generator is allowed only where a comment says who seeds and saves it."""
    notes = {(p, line): comments for p in PACKAGE for line, _, _, comments in statements(p)}
    bad = []
    for p in PACKAGE:
        starts = sorted(line for q, line in notes if q == p)
        for c in calls(p):
            if (isinstance(c.func, ast.Attribute) and c.func.attr in SAMPLERS and ast.unparse(c.func.value) == "torch"
                    and not any(k.arg == "generator" for k in c.keywords)):
                stmt = max(s for s in starts if s <= c.lineno)
                if not any("generator" in n for n in notes[(p, stmt)]):
                    bad.append(where(p, c.lineno))
    assert not bad, "pass generator=... (a seeded torch.Generator) to: " + ", ".join(bad)


@pytest.mark.parametrize("path", ALGORITHMS, ids=lambda p: str(p.relative_to(ROOT / "fslcourse")))
def test_algorithm_modules_cite_their_paper_and_notebook(path):
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    assert doc, f"{path.name}: add a module docstring (a one-line summary, the paper, the notebook that teaches it)"
    assert re.search(r"\b(19|20)\d\d\b", doc), f"{path.name}: the docstring names no paper (authors, year, arXiv id)"
    assert re.search(r"arXiv:\d{4}\.\d{4,5}|no arXiv version", doc), (
        f"{path.name}: the docstring's paper has no arXiv id (arXiv:NNNN.NNNNN); a paper with none says 'no arXiv version'")
    assert re.search(r"notebooks/\d\d_\w+\.ipynb", doc), f"{path.name}: the docstring names no notebook that teaches it"


def package_names() -> set[str]:
    """Top-level functions and classes of the package (public ones)."""
    return {n.name for p in PACKAGE for n in ast.parse(p.read_text()).body
            if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and not n.name.startswith("_")}


def redefinitions(notebook: Path, names: set[str]) -> list[str]:
    """``cell N: name`` for each function or class a notebook defines under a name the package already uses."""
    found = []
    for i, cell in enumerate(json.loads(notebook.read_text())["cells"]):
        if cell["cell_type"] == "code":
            src = "\n".join(line for line in "".join(cell["source"]).splitlines() if not line.lstrip().startswith(("%", "!")))
            found += [f"cell {i}: {n.name}" for n in ast.parse(src).body
                      if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name in names]
    return found


NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebooks_import_never_redefine(path):
    """A from-scratch version gets its own name (``my_…``, ``…_from_scratch``), so the package's stays reachable."""
    bad = redefinitions(path, package_names())
    assert not bad, f"{path.name} redefines package names; import them, or name your own version my_NAME: {bad}"


def test_the_redefinition_check_finds_one(tmp_path):
    nb = tmp_path / "00_x.ipynb"
    nb.write_text(json.dumps({"cells": [{"cell_type": "code", "source": ["%matplotlib inline\n", "def verdict(d, ci):\n",
                                                                         "    return d > ci\n", "def mine(): pass\n"]}]}))
    assert redefinitions(nb, package_names()) == ["cell 0: verdict"]


ARXIV = re.compile(r"\[arXiv:(\d{4}\.\d{4,5})\]\(https://arxiv\.org/abs/(\d{4}\.\d{4,5})\)|arXiv:\d{4}\.\d{4,5}")


def unlinked_arxiv(notebook: Path) -> list[str]:
    """``cell N: arXiv:ID`` for each arXiv id in a markdown cell that is not a link to itself."""
    bad = []
    for i, cell in enumerate(json.loads(notebook.read_text())["cells"]):
        if cell["cell_type"] == "markdown":
            for m in ARXIV.finditer("".join(cell["source"])):
                if m.group(1) is None or m.group(1) != m.group(2):
                    bad.append(f"cell {i}: {m.group(0)}")
    return bad


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebooks_link_their_papers(path):
    bad = unlinked_arxiv(path)
    assert not bad, f"{path.name}: write [arXiv:ID](https://arxiv.org/abs/ID): {bad}"


def test_the_arxiv_link_check_can_fail(tmp_path):
    nb = tmp_path / "00_x.ipynb"
    nb.write_text(json.dumps({"cells": [{"cell_type": "markdown", "source": [
        "[arXiv:1703.05175](https://arxiv.org/abs/1703.05175), arXiv:1703.03400, "
        "[arXiv:1703.05175](https://arxiv.org/abs/1703.03400)"]}]}))
    assert unlinked_arxiv(nb) == ["cell 0: arXiv:1703.03400", "cell 0: [arXiv:1703.05175](https://arxiv.org/abs/1703.03400)"]
