"""Exercises of notebook 11: the references pass, typical mistakes fail with a hint."""
import math
import statistics

from fslcourse.exercises import check


def _ci(values, z=1.96, sd=statistics.stdev):
    return statistics.mean(values), z * sd(values) / math.sqrt(len(values))


def test_paired_ci95_exercise(capsys):
    assert check("paired_ci95", lambda a, b: _ci([x - y for x, y in zip(a, b)]))
    # unpaired: the half-widths of the two means added, not the CI of the differences
    assert not check("paired_ci95", lambda a, b: (statistics.mean(a) - statistics.mean(b), _ci(a)[1] + _ci(b)[1]))
    assert not check("paired_ci95", lambda a, b: _ci([y - x for x, y in zip(a, b)]))  # b - a
    assert "close to the right value" in capsys.readouterr().out


def test_mean_ci95_exercise(capsys):
    assert check("mean_ci95", _ci)
    assert not check("mean_ci95", lambda v: _ci(v, sd=statistics.pstdev))  # ddof=0
    assert not check("mean_ci95", lambda v: (statistics.mean(v), 1.96 * statistics.stdev(v)))  # no sqrt(n)
    assert "case 1 of 4" in capsys.readouterr().out


def test_a_right_answer_as_a_numpy_scalar_is_told_to_be_a_float(capsys):
    """The values are right, so 'expected a number close to the right value, got np.float32(20.0)' would mislead."""
    import numpy as np

    assert not check("paired_ci95", lambda a, b: tuple(np.float32(v) for v in _ci([x - y for x, y in zip(a, b)])))
    out = capsys.readouterr().out
    assert "expected a Python float, got a numpy scalar" in out and "float(" in out
