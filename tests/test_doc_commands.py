"""Every command line the docs give people is accepted by today's code, without running anything.

Sources: README.md, STYLE.md, docs/*.md, the markdown cells of notebooks/*.ipynb, and the module docstrings of
fslcourse/**/*.py, benchmarks/*.py and scripts/*.py. From each it takes the fenced code lines and the inline code
spans (and, in docstrings, the indented usage lines) that hold ``python -m fslcourse ...``, a bare
``train|evaluate|predict|report|doctor|download ...`` subcommand span, or ``[python] benchmarks/X.py ...`` /
``scripts/X.py ...``.

* ``python -m fslcourse``: parsed by the real parser (``fslcourse.cli._parser``). A concrete ``train`` then runs
  the real ``cli._train`` -> ``training.api.train`` checks (name, recipe, options a generator family or sinusoid
  refuses) up to the first write, where a patched ``check_target`` stops it; a concrete ``evaluate`` runs the real
  ``cli._evaluate`` (method, profile, generator, the checkpoint it would load) up to loading Omniglot, where a
  patched ``load_omniglot`` stops it. Nothing is trained, evaluated, downloaded or written.
* ``benchmarks/X.py`` and ``scripts/X.py``: the file must exist; every ``--flag`` must appear in its
  ``add_argument`` calls (AST); then its ``main(argv)`` is called with ``ArgumentParser.parse_args`` patched to stop
  right after a successful parse, so types, choices and positionals are checked by its own parser.

Placeholders (``NAME``, ``R``, ``<name>``, ``K``, ``FILE`` ...) are parsed with a stand-in value and skip the
semantic checks; synopses (``a|b``, ``[--flag]``) are checked flag by flag and alternative by alternative.

Not checked: whether a ``train`` command's file exists already (so that it would need ``--overwrite``). The docs
say how each committed file was made ("made by ``train protonet --recipe paper``"), and those descriptions name
existing files on purpose; an instruction to retrain one must add ``--overwrite`` by review, not by this test.
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import io
import itertools
import json
import re
import runpy
import shlex
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SUBCOMMANDS = ("doctor", "download", "evaluate", "predict", "report", "train")
PLACEHOLDER = re.compile(r"^(<[^>]+>|[A-Z][A-Z0-9_]*(\.\.\.)?)$")  # NAME, R, RECIPE, K, FILE, DIR_OR_FILES, <name>
FSL = re.compile(r"(?:\S*python3?\s+-m\s+fslcourse)(?=\s|$)")
SCRIPT = re.compile(r"(?:\S*python3?\s+)?(?<![\w/])((?:benchmarks|scripts)/\w+\.py)\b")
BARE_SUB = re.compile(rf"^(?:{'|'.join(SUBCOMMANDS)})(?:\s+\S|$)")


# ---- extraction ----------------------------------------------------------------------------------------------

def _sources() -> list[tuple[str, str, bool]]:
    """``(where, text, is_docstring)`` for every place a command may be written for people."""
    out = []
    for path in [ROOT / "README.md", ROOT / "STYLE.md", *sorted((ROOT / "docs").glob("*.md"))]:
        out.append((path.relative_to(ROOT).as_posix(), path.read_text(encoding="utf-8"), False))
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for i, cell in enumerate(json.loads(nb.read_text(encoding="utf-8"))["cells"]):
            if cell["cell_type"] == "markdown":
                out.append((f"{nb.relative_to(ROOT).as_posix()} cell {i}", "".join(cell["source"]), False))
    for folder, pattern in (("fslcourse", "**/*.py"), ("benchmarks", "*.py"), ("scripts", "*.py")):
        for py in sorted((ROOT / folder).glob(pattern)):
            doc = ast.get_docstring(ast.parse(py.read_text(encoding="utf-8")), clean=False)
            if doc:
                out.append((py.relative_to(ROOT).as_posix(), doc, True))
    return out


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _candidates(text: str, docstring: bool) -> list[tuple[int, str, bool]]:
    """``(line, command text, from a code block)`` for every fenced line, inline span or docstring usage line."""
    found = []
    fence = re.compile(r"^[ \t]*```[^\n]*\n(.*?)^[ \t]*```", re.S | re.M)
    for m in fence.finditer(text):
        body = re.sub(r"\\\n\s*", " ", m.group(1))  # shell line continuations
        first = _line_of(text, m.start()) + 1
        for k, line in enumerate(body.splitlines()):
            found.append((first + k, line, True))
    rest = fence.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    for m in re.finditer(r"(`+)(.+?)\1", rest, re.S):
        found.append((_line_of(rest, m.start()), " ".join(m.group(2).split()), False))
    if docstring:  # indented usage lines ("    OMP_NUM_THREADS=1 python benchmarks/x.py --flag")
        lines = rest.splitlines()
        k = 0
        while k < len(lines):
            start, line = k, lines[k]
            while line.rstrip().endswith("\\") and k + 1 < len(lines):  # a shell continuation
                k += 1
                line = line.rstrip().rstrip("\\") + " " + lines[k].strip()
            if line.startswith("    ") and "`" not in line:
                found.append((start + 1, line.strip(), True))
            k += 1
    return found


def _cut(s: str) -> str:
    """The command alone: no trailing comment, nothing after a shell separator, a colon or the end of a sentence."""
    s = re.split(r"\s#\s|\s#$|\s&&\s|\s;\s|\s\|\|\s|:\s|:$", s + " ")[0]
    return s.strip().rstrip(".,;)")


def doc_commands() -> list[tuple[str, str, bool]]:
    """``(where, command, complete)``: ``command`` starts with ``python -m fslcourse`` or ``python SCRIPT``.

    ``complete`` is False for a mention in prose (``predict``, ``evaluate --augment``, ``benchmarks/x.py``,
    ``train ... --numerics portable``) and for a synopsis (``a|b``, ``[--flag]``): those are checked flag by flag,
    not parsed whole."""
    cmds = []
    for where, text, docstring in _sources():
        for line, cand, block in _candidates(text, docstring):
            m, s = FSL.search(cand), SCRIPT.search(cand)
            if m:
                rest = _cut(cand[m.end():])
                cmd, args = ("python -m fslcourse " + rest).strip(), rest.split()[1:]
            elif s:
                rest = _cut(cand[s.start(1):])
                cmd, args = "python " + rest, rest.split()[1:]
            elif not block and BARE_SUB.match(cand) and not re.search(r"[(){}=,]", cand):
                rest = _cut(cand)
                cmd, args = "python -m fslcourse " + rest, []  # prose: "train protonet --recipe lake"
            else:
                continue
            synopsis = any(c in cmd for c in "[]|") or "..." in cmd
            complete = (block or bool(args)) and not synopsis and (bool(m) or bool(s))
            cmds.append((f"{where}:{line}", cmd, complete))
    return cmds


# ---- the fslcourse command line ------------------------------------------------------------------------------

class Reached(Exception):
    """The command got past every check the code makes before its first write or long computation."""


def _parser():
    from fslcourse.cli import _parser as build
    return build()


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[name]


def _stand_in(sub: argparse.ArgumentParser, tokens: list[str], i: int) -> str:
    """A value the parser accepts where ``tokens[i]`` is a placeholder."""
    prev = tokens[i - 1] if i else ""
    action = sub._option_string_actions.get(prev)
    if action is None:  # a positional (NAME) or the second value of an nargs option
        return "protonet"
    if action.choices:
        return sorted(action.choices)[0] if "quick" not in action.choices else "quick"
    kind = getattr(action.type, "__name__", "")
    return "1" if kind in ("whole number", "int") else "placeholder"


def _alternatives(tokens: list[str]) -> list[list[str]]:
    """Expand ``a|b`` tokens (synopses) into one token list per combination."""
    options = [t.split("|") if "|" in t and t != "|" else [t] for t in tokens]
    combos = list(itertools.product(*options))
    return [list(c) for c in combos[:64]]


def _run_stopped(fn, *args):
    """Call ``fn`` and return None if it reached the first write, else the error message."""
    try:
        fn(*args)
    except Reached:
        return None
    except SystemExit as err:
        return f"exit {err.code}"
    except (ValueError, FileNotFoundError, KeyError) as err:
        return f"{type(err).__name__}: {err}"
    return "finished without reaching a stop: nothing was patched there"


@pytest.fixture(autouse=True)
def leaves_no_trace(monkeypatch):
    """Running scripts' top levels and the commands' checks must not change the process for later tests: the
    import path (scripts insert their folders), matplotlib's settings and torch's global random stream (a script's
    ``matplotlib.use("Agg")`` stays: the tests draw with Agg anyway)."""
    import matplotlib
    import torch

    monkeypatch.setattr(sys, "path", list(sys.path))  # restored after the test
    with matplotlib.rc_context(), torch.random.fork_rng(devices=[]):
        yield


@pytest.fixture
def no_work(monkeypatch):
    """Stop ``train`` and ``evaluate`` right before their first write or data load."""
    import torch

    import fslcourse.config
    import fslcourse.data
    import fslcourse.io
    import fslcourse.numerics
    import fslcourse.training.api as api
    import fslcourse.training.generators as generators
    import fslcourse.training.sinusoid as sinusoid

    def stop(*_a, **_k):
        raise Reached

    cpu = lambda *_a, **_k: torch.device("cpu")  # noqa: E731  (a GPU command line is checked on any machine)
    monkeypatch.setattr(fslcourse.numerics, "use_numerics", lambda *_a, **_k: None)
    for module in (api, generators, sinusoid):
        monkeypatch.setattr(module, "check_target", stop)
    monkeypatch.setattr(api, "get_device", cpu)
    monkeypatch.setattr(generators, "get_device", cpu)
    monkeypatch.setattr(fslcourse.config, "get_device", cpu)
    monkeypatch.setattr(fslcourse.io, "check_writable", lambda path, *_a, **_k: Path(path))
    monkeypatch.setattr(fslcourse.data, "load_omniglot", stop)
    return stop


def check_fslcourse(command: str, complete: bool = True) -> list[str]:
    """Problems with one ``python -m fslcourse ...`` command (empty: accepted); ``complete=False``: a mention or a
    synopsis, whose subcommand, flags and recipe are checked but which is not parsed whole."""
    from fslcourse import cli

    tokens = [t for t in shlex.split(command.replace("[", " ").replace("]", " "))[3:] if t != "..."]
    synopsis = not complete or any(c in command for c in "[]|")
    if "|" in tokens:  # "doctor | download | evaluate": alternatives of the subcommand
        groups = [[]]
        for t in tokens:
            groups.append([]) if t == "|" else groups[-1].append(t)
        return [f"{g[0]!r} is not a subcommand ({', '.join(SUBCOMMANDS)})" for g in groups
                if g and g[0] not in SUBCOMMANDS]
    if not tokens:
        return [] if synopsis else ["no subcommand"]
    if PLACEHOLDER.match(tokens[0]):  # python -m fslcourse COMMAND
        return []
    if tokens[0] not in SUBCOMMANDS:
        return [f"{tokens[0]!r} is not a subcommand ({', '.join(SUBCOMMANDS)})"]
    parser = _parser()
    sub = _subparser(parser, tokens[0])
    problems = []
    for toks in _alternatives(tokens):
        flags = [t.split("=")[0] for t in toks if t.startswith("--")]
        unknown = [f for f in flags if f not in sub._option_string_actions]
        if unknown:
            problems.append(f"{toks[0]}: no option {', '.join(unknown)}")
            continue
        concrete = not any(PLACEHOLDER.match(t) for t in toks)
        if synopsis:  # [--out] [--seed]: flags checked above; a recipe named in it is checked below
            given = {t: toks[i + 1] for i, t in enumerate(toks[:-1]) if t in ("--recipe", "--profile")}
            recipe = given.get("--recipe", given.get("--profile", "quick"))
            name = toks[1] if len(toks) > 1 and not toks[1].startswith("-") else None
            if toks[0] == "train" and name and not PLACEHOLDER.match(name) and not PLACEHOLDER.match(recipe):
                problems += check_recipe(name, recipe)
            continue
        argv = [(_stand_in(sub, toks, i) if PLACEHOLDER.match(t) else t) for i, t in enumerate(toks)]
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err):
                args = parser.parse_args(argv)
        except SystemExit:
            problems.append(f"parser: {err.getvalue().strip().splitlines()[-1]}")
            continue
        if not concrete:
            continue
        if args.command == "train":
            why = _run_stopped(cli._train, args)
        elif args.command == "evaluate":
            why = _run_stopped(cli._evaluate, args)
        else:
            why = None
        if why:
            problems.append(why)
    return problems


def check_recipe(name: str, recipe: str) -> list[str]:
    """Whether ``train NAME --recipe R`` names a recipe ``NAME`` has (a method, a generator family or sinusoid)."""
    from fslcourse import methods  # noqa: F401  (registers every method)
    from fslcourse.methods.base import METHODS
    from fslcourse.methods.maml_regression import RECIPES as SINUSOID
    from fslcourse.training.generators import FAMILY_RECIPES

    known = ({n: list(getattr(c, "RECIPES", {})) for n, c in METHODS.items() if c.trainable}
             | {f: list(r) for f, r in FAMILY_RECIPES.items()} | {"sinusoid": list(SINUSOID)})
    if name not in known:
        return [f"train {name}: not a trainable method, generator family or sinusoid"]
    return [] if recipe in known[name] else [f"train {name}: no recipe {recipe!r} ({', '.join(known[name])})"]


# ---- benchmark and build scripts -----------------------------------------------------------------------------

class Parsed(Exception):
    pass


def _declared_arguments(path: Path) -> tuple[set[str], int]:
    """The option strings of the script's ``add_argument`` calls, and how many such calls it has; a call of a
    shared ``fslcourse.cli.add_*_arguments(parser)`` helper counts as that helper's own calls."""
    flags, calls = set(), 0
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        helper = getattr(node.func, "id", None) if isinstance(node, ast.Call) else None
        if helper and helper.startswith("add_") and helper.endswith("_arguments") and path != CLI:
            more, n = _declared_arguments_of(helper)
            flags, calls = flags | more, calls + n
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_argument":
            calls += 1
            flags |= {a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)
                      and a.value.startswith("-")}
    return flags, calls


CLI = ROOT / "fslcourse" / "cli.py"


def _declared_arguments_of(helper: str) -> tuple[set[str], int]:
    """The options that ``fslcourse.cli``'s function ``helper`` adds to a parser."""
    (fn,) = [n for n in ast.parse(CLI.read_text(encoding="utf-8")).body
             if isinstance(n, ast.FunctionDef) and n.name == helper]
    flags, calls = set(), 0
    for node in ast.walk(fn):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_argument":
            calls += 1
            flags |= {a.value for a in node.args if isinstance(a, ast.Constant) and a.value.startswith("-")}
    return flags, calls


def check_script(command: str, complete: bool = True) -> list[str]:
    """Problems with one ``python benchmarks/X.py ...`` or ``python scripts/X.py ...`` command; ``complete=False``:
    a mention or synopsis, whose path and flags are checked but which is not parsed whole."""
    tokens = shlex.split(command.replace("[", " ").replace("]", " "))[1:]
    path = ROOT / tokens[0]
    if not path.is_file():
        return [f"{tokens[0]} does not exist"]
    args = tokens[1:]
    declared, calls = _declared_arguments(path)
    unknown = [t.split("=")[0] for t in args if t.startswith("--") and t.split("=")[0] not in declared]
    if unknown:
        return [f"{tokens[0]}: no option {', '.join(unknown)} (its add_argument calls: "
                f"{', '.join(sorted(declared)) or 'none'})"]
    if not calls:
        return [f"{tokens[0]} takes no arguments, given {' '.join(args)}"] if args else []
    if not complete or any(c in command for c in "[]|"):  # a mention or a synopsis: flags checked above
        return []
    argv = [("x" if PLACEHOLDER.match(a) else a) for a in args]
    original = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):
        raise Parsed(original(self, args, namespace))

    err = io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
        module = runpy.run_path(str(path), run_name="doc_command_check")
        try:
            with contextlib.redirect_stderr(err):
                module["main"](argv)
        except Parsed:
            return []
        except SystemExit:
            return [f"parser: {(err.getvalue().strip().splitlines() or ['exit'])[-1]}"]
    return [f"{tokens[0]}: main() returned without parsing its arguments"]


# ---- the tests -----------------------------------------------------------------------------------------------

COMMANDS = doc_commands()


def test_commands_found():
    """The extraction finds the commands it is meant to check (a broken regex must not pass silently)."""
    text = "\n".join(c for _, c, _ in COMMANDS)
    assert len(COMMANDS) > 50
    for needed in ("python -m fslcourse train maml --recipe quick --overwrite",
                   "python -m fslcourse evaluate protonet --augment vae --n-generated 5 --n-shot 1",
                   "python benchmarks/gpu_check.py --device cpu --steps 2 --data glyphs --out /tmp/gpu_check.json",
                   "python -m fslcourse train protonet --recipe lake"):
        assert needed in text


@pytest.mark.parametrize("where, command, complete", COMMANDS, ids=[f"{w} {c}"[:150] for w, c, _ in COMMANDS])
def test_doc_command_is_accepted(where, command, complete, no_work):
    if command.startswith("python -m fslcourse"):
        problems = check_fslcourse(command, complete)
    else:
        problems = check_script(command, complete)
    assert not problems, f"{where}: `{command}`: {'; '.join(problems)}"


@pytest.mark.parametrize("command, expected", [
    ("python -m fslcourse train maml --recipe quick --overwrit", "no option --overwrit"),  # a misspelt flag
    ("python -m fslcourse evaluate pixel --n-way 5 --episodes 1", "parser"),   # below the parser's minimum
    ("python -m fslcourse train maml --recipe lake", "no recipe 'lake'"),       # a recipe maml lacks
    ("python -m fslcourse train vae --recipe paper-20way", "no recipe"),        # a family's unknown recipe
    ("python -m fslcourse train sinusoid --recipe quick --resume", "methods only"),
    ("python -m fslcourse evalute pixel", "not a subcommand"),
    ("python -m fslcourse evaluate protonet --augment vea", "parser"),
    ("python -m fslcourse train NAME --recipe quick --n-way 5", "no option --n-way"),
    ("python -m fslcourse train vae|gann --recipe quick", "not a trainable method"),
    ("python -m fslcourse train NAME --recipe quick|ful [--overwrite]", ""),   # placeholder name: flags only
])
def test_the_check_can_fail(command, expected, no_work):
    problems = check_fslcourse(command)
    if expected:
        assert any(expected in p for p in problems), problems
    else:
        assert not problems, problems


@pytest.mark.parametrize("command, expected", [
    ("python benchmarks/course_benchmark.py --method protonet", "no option --method"),
    ("python benchmarks/gpu_check.py --data glyph", "parser"),
    ("python benchmarks/no_such_script.py", "does not exist"),
    ("python benchmarks/step_cost.py relation paper-20way", "parser"),
])
def test_the_script_check_can_fail(command, expected):
    problems = check_script(command)
    assert any(expected in p for p in problems), problems
