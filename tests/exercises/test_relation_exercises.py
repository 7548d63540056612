"""Exercises of notebook 03 (the relation-based family): the reference passes, the usual mistakes fail."""
import torch

from fslcourse.exercises import check


def test_gnn_adjacency_accepts_the_masked_softmax_and_rejects_the_usual_mistakes(capsys):
    def solution(scores):
        eye = torch.eye(scores.shape[-1], dtype=torch.bool)
        return torch.softmax(scores.masked_fill(eye, float("-inf")), dim=-1)

    assert check("gnn_adjacency", solution)
    mistakes = {
        "no mask (each node is its own neighbour)": lambda s: torch.softmax(s, dim=-1),
        "masked with 0 instead of -inf (exp(0) still counts)": lambda s: torch.softmax(
            s.masked_fill(torch.eye(s.shape[-1], dtype=torch.bool), 0.0), dim=-1),
        "softmax over the wrong dimension": lambda s: torch.softmax(
            s.masked_fill(torch.eye(s.shape[-1], dtype=torch.bool), float("-inf")), dim=1),
        "mask after the softmax (rows no longer sum to 1)": lambda s: torch.softmax(s, dim=-1) * (1 - torch.eye(s.shape[-1])),
    }
    for name, wrong in mistakes.items():
        assert not check("gnn_adjacency", wrong), name
    assert "✘ gnn_adjacency" in capsys.readouterr().out
