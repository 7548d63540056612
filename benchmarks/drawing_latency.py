"""Drawing board latency: from pen-up to the new prediction on screen, the target is < 200 ms on the CPU.

Run: ``OMP_NUM_THREADS=1 FSLCOURSE_DEVICE=cpu .venv/bin/python benchmarks/drawing_latency.py`` on an idle machine.

Times :meth:`fslcourse.widgets.drawing.DrawingBoard.pen_up` after a query stroke (what a student waits for:
rasterise, preprocess, embed the query against the kept support embeddings, redraw the panels and encode the
PNG the widget shows) and after a support stroke (the support set is embedded again), on the scripted session
of notebook 02 (four characters), for the default model and a few others. The pen's moves before it are not
timed: the board predicts nothing while the pen moves. Prints the median and worst pen-up and the median's
ratio to the 200 ms target (the browser's round trip comes on top; the browser test checks the board works
there, not its speed).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from widgets import report as widgets_report  # noqa: E402  (benchmarks/widgets.py, beside this script)

TARGET_MS = 200.0
QUERY_STROKE = [(30.0, 100.0), (60.0, 40.0), (90.0, 100.0), (110.0, 45.0)]
SUPPORT_STROKE = [(20.0, 20.0), (30.0, 30.0)]


def pen_up_ms(board, target, stroke) -> float:
    """Milliseconds of the pen-up that ends ``stroke`` on ``target`` (then undone, so every repeat starts alike)."""
    board.pen_down(target, *stroke[0])
    for x, y in stroke[1:]:
        board.pen_move(target, x, y)
    t = time.perf_counter()
    board.pen_up(target)
    ms = 1000 * (time.perf_counter() - t)
    board.undo()
    return ms


def report(name: str, ms: list[float]) -> bool:
    """Print the median and worst pen-up against the 200 ms target; whether the median is under it."""
    return widgets_report(name, ms, TARGET_MS)


def main(repeats: int = 15, models: tuple[str, ...] | None = None) -> int:
    from fslcourse.predict import DEFAULT_METHOD
    from fslcourse.widgets.drawing import QUERY, DrawingBoard, committed_methods, example_session

    names = models or tuple(dict.fromkeys([DEFAULT_METHOD, "pixel", "maml", "matching"]))
    names = tuple(n for n in names if n in committed_methods())
    board = example_session(DrawingBoard(list(names), n_way=4), query_of=3, seed=0)
    ok = True
    for name in names:
        board.model.value = name  # loads the model; the first prediction embeds the support set
        pen_up_ms(board, QUERY, QUERY_STROKE)  # warm-up
        ok &= report(f"{name}: query pen-up", [pen_up_ms(board, QUERY, QUERY_STROKE) for _ in range(repeats)])
        ok &= report(f"{name}: support pen-up", [pen_up_ms(board, (0, 0), SUPPORT_STROKE) for _ in range(repeats)])
    return 0 if ok else 1


def cli(argv=None) -> int:
    """``--help``, ``--repeats N`` and ``--models a,b``; anything else is refused before the timing starts."""
    import argparse

    from fslcourse.cli import whole

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=whole(1), default=15, help="pen-ups timed per model and stroke (default 15)")
    p.add_argument("--models", default=None, help="comma-separated method names (default: the board's own)")
    args = p.parse_args(argv)
    return main(args.repeats, tuple(m for m in args.models.split(",") if m) if args.models else None)


if __name__ == "__main__":
    raise SystemExit(cli())
