"""Notebook 09's guidance exercise: the package's convention passes, the usual slips fail."""
from fslcourse.exercises import check


def test_guidance_accepts_the_combination_and_rejects_the_usual_slips(capsys):
    assert check("cfg_guidance", lambda c, u, w: u + w * (c - u))
    assert check("cfg_guidance", lambda c, u, w: w * c + (1 - w) * u)  # the same line, written differently
    for wrong in (lambda c, u, w: c + w * (u - c),  # conditional and unconditional swapped
                  lambda c, u, w: (1 + w) * c - w * u,  # the other paper's w, one more than ours
                  lambda c, u, w: c + w * (c - u)):  # starts from the conditional prediction
        assert not check("cfg_guidance", wrong)
    assert "values differ" in capsys.readouterr().out
