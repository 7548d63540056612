"""Exercise checks: a right answer passes, wrong ones get a hint, the solution is never shown."""
import torch

from fslcourse.exercises import check


def test_prototypes_exercise(capsys):
    good = lambda f, y, n: torch.stack([f[y == k].mean(0) for k in range(n)])  # noqa: E731
    assert check("prototypes", good)
    assert "all 3 cases pass" in capsys.readouterr().out
    assert not check("prototypes", lambda f, y, n: f[:n])
    assert not check("prototypes", lambda f, y, n: torch.zeros(n, 2))
    out = capsys.readouterr().out
    assert "values differ" in out and "expected shape (2, 3), got (2, 2)" in out

    def unsolved(f, y, n):
        raise NotImplementedError

    assert not check("prototypes", unsolved)
    assert "not implemented yet" in capsys.readouterr().out
