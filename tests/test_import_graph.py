"""The package's import graph: data, models, methods and generative never import how things are trained,
and no module imports itself back through others (imports inside functions count too)."""
import ast
from pathlib import Path

import pytest

import fslcourse

ROOT = Path(fslcourse.__file__).parent
FORBIDDEN = ("fslcourse.training", "fslcourse.pretrained", "fslcourse.cli", "fslcourse.report")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every ``fslcourse`` module ``path`` imports, anywhere in the file, as absolute names."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("fslcourse"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.startswith("fslcourse"):
                found.add(mod)
                found.update(f"{mod}.{a.name}" for a in node.names)  # `from . import x` imports module x
    return found


GRAPH = {module_name(p): imports_of(p) for p in ROOT.rglob("*.py")}


def resolve(target: str) -> str | None:
    """The module a dotted import name refers to (``a.b.func`` -> ``a.b``), or None."""
    while target and target not in GRAPH:
        target = target.rpartition(".")[0]
    return target or None


@pytest.mark.parametrize("layer", ["fslcourse.data", "fslcourse.models", "fslcourse.methods", "fslcourse.generative"])
def test_lower_layers_never_import_training_store_cli_or_report(layer):
    bad = sorted(f"{m} imports {t}" for m, targets in GRAPH.items() if m == layer or m.startswith(layer + ".")
                 for t in targets if any(t == f or t.startswith(f + ".") for f in FORBIDDEN))
    assert not bad, "\n".join(bad)


def test_no_import_cycles():
    edges = {m: {r for t in ts if (r := resolve(t)) and r != m} for m, ts in GRAPH.items()}
    # a package imports its own submodules by design (its __init__); only count the other direction
    edges = {m: {t for t in ts if not t.startswith(m + ".")} for m, ts in edges.items()}
    cycles, state = [], {}

    def visit(m, stack):
        state[m] = "open"
        for t in sorted(edges.get(m, ())):
            if state.get(t) == "open":
                cycles.append(" -> ".join(stack[stack.index(t):] + [t]))
            elif t not in state:
                visit(t, stack + [t])
        state[m] = "done"

    for m in sorted(edges):
        if m not in state:
            visit(m, [m])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)
