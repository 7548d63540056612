"""Exercises of notebook 10 (learning to generate): the reference passes, the typical mistakes fail."""
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


def test_fake_probability_exercise():
    assert check("fake_probability", lambda l, b: torch.exp(b) / (torch.exp(b) + torch.exp(l).sum(1)))
    # the usual slips: the fake logit left out of the denominator, or a sigmoid of b alone
    assert not check("fake_probability", lambda l, b: torch.exp(b) / torch.exp(l).sum(1))
    assert not check("fake_probability", lambda l, b: torch.sigmoid(b).expand(len(l)))


def test_recombined_character_exercise():
    assert check("recombined_character", lambda a, b: torch.where(a > b, a, b))
    # adding the two drawings overflows uint8 where strokes cross; averaging fades each stroke to half ink
    assert not check("recombined_character", lambda a, b: a + b)
    assert not check("recombined_character", lambda a, b: ((a.float() + b.float()) / 2).to(torch.uint8))
