"""The ensemble against its closed form (mean log-softmax) and its bad inputs."""
import pytest
import torch

from fslcourse.data import EpisodeSampler
from fslcourse.methods import ProtoNet
from fslcourse.methods.ensemble import Ensemble


class Fixed(torch.nn.Module):
    """A stand-in member that returns fixed logits."""

    name, test_batch_norm = "fixed", "running"

    def __init__(self, logits):
        super().__init__()
        self.logits = logits

    def predict(self, support_x, support_y, query_x):
        return self.logits


def test_mean_of_log_softmax_not_of_logits():
    a = torch.tensor([[10.0, 0.0, 0.0]])  # confident in class 0, large scale
    b = torch.tensor([[0.0, 0.4, 0.3]])  # mildly prefers class 1, small scale
    ens = Ensemble([Fixed(a), Fixed(b)])
    got = ens.predict(torch.zeros(3, 1, 28, 28), torch.arange(3), torch.zeros(1, 1, 28, 28))
    want = (torch.log_softmax(a, 1) + torch.log_softmax(b, 1)) / 2
    assert torch.allclose(got, want)
    # rescaling one member's logits by a constant shift changes nothing
    shifted = Ensemble([Fixed(a + 5.0), Fixed(b)]).predict(torch.zeros(3, 1, 28, 28), torch.arange(3),
                                                           torch.zeros(1, 1, 28, 28))
    assert torch.allclose(got, shifted, atol=1e-6)


def test_two_copies_of_one_model_agree_with_it(glyphs):
    torch.manual_seed(0)
    model = ProtoNet(backbone_kwargs={"hidden": 8}).eval()
    ep = EpisodeSampler(glyphs[2], 4, 1, 2, seed=0).sample()
    with torch.no_grad():
        one = torch.log_softmax(model.predict(ep.support_x, ep.support_y, ep.query_x), 1)
        two = Ensemble([model, model]).predict(ep.support_x, ep.support_y, ep.query_x)
    assert torch.allclose(one, two, atol=1e-5)


def test_records_name_every_member_file():
    a, b = ProtoNet(backbone_kwargs={"hidden": 8}), ProtoNet(backbone_kwargs={"hidden": 8})
    a.checkpoint_source = {"file": "a.pt", "sha256": "1", "split": "alphabet"}
    b.checkpoint_source = {"file": "b.pt", "sha256": "2", "split": "alphabet"}
    src = Ensemble([a, b]).checkpoint_source
    assert src["file"] == "a.pt + b.pt" and src["split"] == "alphabet" and src["sha256"] == ["1", "2"]


def test_one_member_is_refused():
    with pytest.raises(ValueError, match="at least 2 members, got 1"):
        Ensemble([ProtoNet()])
