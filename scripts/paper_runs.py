"""Print, or write into docs/INSTRUCTORS.md, the table of where each paper-recipe run stands.

    python scripts/paper_runs.py           # print the table
    python scripts/paper_runs.py --write   # and replace the copy between INSTRUCTORS' paper-runs markers

The table comes from the committed checkpoints and training states (``fslcourse.report.paper_runs_table``);
``tests/test_committed_results.py`` fails while the copy in the docs is out of date. Run it after committing a
run's training state, or a finished run's checkpoint (docs/INSTRUCTORS.md, "When a run across sittings finishes").
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

OPEN, CLOSE = "<!-- paper-runs:", "<!-- /paper-runs -->"
INSTRUCTORS = Path(__file__).resolve().parent.parent / "docs" / "INSTRUCTORS.md"


def with_table(text: str, table: str) -> str:
    """``text`` with the part between the paper-runs markers replaced by ``table`` (the opening marker's comment,
    which says how the table is made, is kept).

    Raises:
        ValueError: the markers are missing, repeated or out of order.
    """
    if text.count(OPEN) != 1 or text.count(CLOSE) != 1 or text.index(OPEN) > text.index(CLOSE):
        raise ValueError(f"expected one {OPEN} ... --> marker followed by one {CLOSE}; put them back around the table")
    head, rest = text.split(OPEN, 1)
    comment, rest = rest.split("-->", 1)
    _, tail = rest.split(CLOSE, 1)
    return f"{head}{OPEN}{comment}-->\n\n{table.strip()}\n\n{CLOSE}{tail}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--write", action="store_true", help=f"replace the table in {INSTRUCTORS.name}")
    p.add_argument("--doc", type=Path, default=INSTRUCTORS, help=argparse.SUPPRESS)  # the tests' copy
    args = p.parse_args(argv)
    from fslcourse.io import atomic_write_bytes
    from fslcourse.report import paper_runs_table

    table = paper_runs_table()
    print(table)
    if args.write:
        try:
            new = with_table(args.doc.read_text(), table)
        except (OSError, ValueError) as err:
            p.error(f"{args.doc}: {err}")
        atomic_write_bytes(new.encode(), args.doc)
        print(f"wrote the table into {args.doc}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
