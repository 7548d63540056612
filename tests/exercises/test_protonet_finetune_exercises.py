"""Exercises of notebooks 02 and 04: the references pass, typical mistakes fail with a hint."""
import torch.nn.functional as F

from fslcourse.exercises import check


def test_cosine_logits_exercise(capsys):
    good = lambda q, c, s: s * F.normalize(q, dim=1) @ F.normalize(c, dim=1).T  # noqa: E731
    assert check("protonet_cosine_logits", good)
    assert not check("protonet_cosine_logits", lambda q, c, s: q @ c.T)  # forgot to normalise
    assert not check("protonet_cosine_logits", lambda q, c, s: F.normalize(q, dim=1) @ F.normalize(c, dim=1).T)
    assert "values differ" in capsys.readouterr().out


def test_entropy_exercise(capsys):
    good = lambda l: -(l.softmax(1) * l.log_softmax(1)).sum(1).mean()  # noqa: E731
    assert check("entropy_regulariser", good)
    assert not check("entropy_regulariser", lambda l: -(l.softmax(1) * l.log_softmax(1)).sum(1))  # no mean
    assert not check("entropy_regulariser", lambda l: -(l.softmax(1) * l.log_softmax(1)).sum())  # sum not mean
    naive = lambda l: -(l.softmax(1) * l.softmax(1).log()).sum(1).mean()  # noqa: E731  (fine until p underflows)
    assert not check("entropy_regulariser", naive)
    assert "expected shape ()" in capsys.readouterr().out
