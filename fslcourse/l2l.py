"""Import learn2learn quietly.

learn2learn 0.2.0 imports the unmaintained ``gym`` package at import time (for its
reinforcement-learning helpers, which this course does not use), and ``gym``
prints a deprecation notice to stderr. That notice says nothing about few-shot
learning and would clutter every notebook that uses learn2learn, so it is
dropped here; every other message and every error still comes through.
"""
from __future__ import annotations

import contextlib
import io
import sys


def import_learn2learn():
    """Return the ``learn2learn`` module, without gym's import-time notice.

    Raises:
        ImportError: with the fix (``make setup`` builds learn2learn from source).
    """
    if "learn2learn" in sys.modules:
        return sys.modules["learn2learn"]
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            import learn2learn
    except ImportError as err:
        raise ImportError(f"learn2learn is not importable ({err}); run `make setup`, which builds it from "
                          "source (its PyPI sdist does not build on Python 3.11)") from err
    rest = "\n".join(line for line in captured.getvalue().splitlines() if "Gym" not in line
                     and "gymnasium" not in line.lower() and line.strip())
    if rest:
        print(rest, file=sys.stderr)
    return learn2learn
