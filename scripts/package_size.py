"""Lines of code under a folder: lines that hold a token other than comments, blank lines and docstrings.

The count issue 14's closing notes give for ``fslcourse/`` (before and after), so anyone can repeat it:

    python scripts/package_size.py fslcourse          # the total
    python scripts/package_size.py fslcourse --top 10 # and the ten largest files
"""
from __future__ import annotations

import argparse
import ast
import io
import sys
import tokenize
from pathlib import Path

LAYOUT = (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER)


def code_lines(source: str) -> int:
    """How many lines of ``source`` hold code: a token other than layout, outside the docstrings."""
    docstrings = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                docstrings.update(range(first.lineno, first.end_lineno + 1))
    code = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type not in LAYOUT:
            code.update(range(tok.start[0], tok.end[0] + 1))
    return len(code - docstrings)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("folder", type=Path)
    p.add_argument("--top", type=int, default=0, help="also list the largest files")
    args = p.parse_args(argv)
    if args.top < 0:
        p.error(f"--top {args.top} is below 0; give how many of the largest files to list")
    if not args.folder.is_dir():
        p.error(f"{args.folder} is not a folder; give the package's folder, e.g. fslcourse")
    sizes = sorted(((code_lines(f.read_text()), f) for f in args.folder.rglob("*.py")), reverse=True)
    for n, f in sizes[:args.top]:
        print(f"{n:6d} {f}")
    print(sum(n for n, _ in sizes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
