"""learn2learn imported quietly: gym's import-time notice dropped, every other message kept, a missing install named."""
import subprocess
import sys

import pytest


def test_the_import_prints_no_gym_notice():
    """In a fresh interpreter (this one may have learn2learn imported already, which skips the capture)."""
    run = subprocess.run([sys.executable, "-c", "from fslcourse.l2l import import_learn2learn as f; "
                          "m = f(); print(m.__name__, f() is m)"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["learn2learn", "True"]
    assert "gym" not in run.stderr.lower()


def test_a_missing_learn2learn_names_make_setup(monkeypatch):
    from fslcourse.l2l import import_learn2learn

    monkeypatch.delitem(sys.modules, "learn2learn", raising=False)  # not imported yet, and not importable:
    monkeypatch.setattr("builtins.__import__", _refuse("learn2learn"))
    with pytest.raises(ImportError, match=r"learn2learn is not importable .*run `make setup`, which builds it from source"):
        import_learn2learn()


def _refuse(name):
    real = __import__

    def fake(module, *args, **kwargs):
        if module == name:
            raise ImportError(f"No module named {name!r}")
        return real(module, *args, **kwargs)
    return fake
