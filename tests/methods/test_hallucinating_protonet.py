"""The jointly trained hallucinator: ProtoNet when m = 0, the prototypes against a hand computation, the test
noise fixed and the training noise from the saved global stream, gradients into both networks, matched recipes."""

import pytest
import torch

from fslcourse.methods import ProtoNet, prototypes
from fslcourse.methods.hallucinating_protonet import HallucinatingProtoNet
from fslcourse.methods.protonet import protonet_logits


def test_without_hallucinations_it_is_protonet(random_episode):
    torch.manual_seed(0)
    h = HallucinatingProtoNet(n_generated=0, backbone_kwargs={"hidden": 8}).eval()
    p = ProtoNet(backbone_kwargs={"hidden": 8}).eval()
    p.backbone.load_state_dict(h.backbone.state_dict())
    sx, sy, qx, _ = random_episode()
    torch.testing.assert_close(h.predict(sx, sy, qx), p.predict(sx, sy, qx))


def test_the_prototypes_are_the_mean_of_real_and_hallucinated_embeddings(random_episode):
    torch.manual_seed(0)
    h = HallucinatingProtoNet(n_generated=3, backbone_kwargs={"hidden": 8}, test_seed=7).eval()
    sx, sy, qx, _ = random_episode()
    with torch.no_grad():
        z = h.backbone(torch.cat([sx, qx]))
        z_s, z_q = z[: len(sx)], z[len(sx):]
        gen, gen_y = h.hallucinator.hallucinate(z_s, sy, 3, torch.Generator().manual_seed(7))
        want = protonet_logits(z_q, prototypes(torch.cat([z_s, gen]), torch.cat([sy, gen_y]), 4))
        got = h.predict(sx, sy, qx)
    torch.testing.assert_close(got, want)
    assert not torch.allclose(got, protonet_logits(z_q, prototypes(z_s, sy, 4)))  # the hallucinations count
    torch.testing.assert_close(h.predict(sx, sy, qx), got)  # the same episode, the same hallucinations


def test_training_noise_comes_from_the_global_stream_and_gradients_reach_both_networks(random_episode):
    torch.manual_seed(0)
    h = HallucinatingProtoNet(n_generated=2, backbone_kwargs={"hidden": 8}).train()
    sx, sy, qx, qy = random_episode()
    torch.manual_seed(1)
    a = h.predict(sx, sy, qx)
    torch.manual_seed(1)
    b = h.predict(sx, sy, qx)
    c = h.predict(sx, sy, qx)
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)
    torch.nn.functional.cross_entropy(a, qy).backward()
    for net in (h.backbone, h.hallucinator):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters() if p.requires_grad)


@pytest.mark.parametrize("bad", [-1, 1.5, True])
def test_a_bad_number_of_hallucinations_is_refused(bad):
    with pytest.raises(ValueError, match="n_generated"):
        HallucinatingProtoNet(n_generated=bad)
