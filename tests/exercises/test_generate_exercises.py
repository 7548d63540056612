"""Exercises of notebook 09 (learning to generate): the reference passes, the typical mistakes fail."""
import torch

from fslcourse.exercises import check


def test_predicted_weights_exercise(capsys):

    def mine(z, y, n_way, psi):
        return psi(torch.stack([z[y == k].mean(0) for k in range(n_way)]))

    def predictor_first(z, y, n_way, psi):  # the usual slip: predict from each shot, then average
        w = psi(z)
        return torch.stack([w[y == k].mean(0) for k in range(n_way)])

    assert check("predicted_weights", mine)
    assert not check("predicted_weights", predictor_first)
    assert not check("predicted_weights", lambda z, y, n, psi: torch.stack([z[y == k].mean(0) for k in range(n)]))
    assert "values differ" in capsys.readouterr().out
