"""MetaGAN: the fake-class probability in closed form, each player's gradient from its own loss only, ProtoNet at
test time, the running batch-norm statistics untouched by fakes, and ProtoNet's recipes (a matched budget)."""

import pytest
import torch
import torch.nn.functional as F

from fslcourse.data import Episode
from fslcourse.methods import ProtoNet
from fslcourse.methods.metagan import MetaGAN, with_fake_class


def _episode(random_episode, **kw):
    sx, sy, qx, qy = random_episode(**kw)
    n_way = int(sy.max()) + 1
    return Episode(sx, sy, qx, qy, torch.arange(n_way), n_way, len(sx) // n_way, len(qx) // n_way)


def test_the_fake_probability_is_the_threshold_softmax():
    logits = torch.tensor([[-1.0, -4.0, -9.0]])  # -||f(x) - c_k||^2
    b = torch.tensor([-2.0])
    p = F.softmax(with_fake_class(logits, b), 1)
    want = torch.exp(b) / (torch.exp(b) + torch.exp(logits).sum())
    torch.testing.assert_close(p[0, -1], want[0])
    assert p.shape == (1, 4)


def test_predict_is_protonets_the_fake_class_only_exists_in_training(random_episode):
    torch.manual_seed(0)
    m = MetaGAN(backbone_kwargs={"hidden": 8}).eval()
    p = ProtoNet(backbone_kwargs={"hidden": 8}).eval()
    p.backbone.load_state_dict(m.backbone.state_dict())
    sx, sy, qx, _ = random_episode()
    torch.testing.assert_close(m.predict(sx, sy, qx), p.predict(sx, sy, qx))
    assert m.predict(sx, sy, qx).shape == (len(qx), 4)


def test_each_player_gets_the_gradient_of_its_own_loss(random_episode):
    torch.manual_seed(0)
    m = MetaGAN(n_fake=2, backbone_kwargs={"hidden": 8}).train()
    ep = _episode(random_episode)
    batch = Episode(*(t[None] for t in (ep.support_x, ep.support_y, ep.query_x, ep.query_y, ep.classes)),
                    ep.n_way, ep.n_shot, ep.n_query)  # a meta-batch of one episode
    before = {k: v.clone() for k, v in m.state_dict().items()}
    torch.manual_seed(5)
    loss_d, loss_g, _ = m.discriminate(ep)
    disc = [p for n, p in m.named_parameters() if not n.startswith("generator.")]
    want_d = torch.autograd.grad(loss_d, disc, retain_graph=True)
    want_g = torch.autograd.grad(loss_g, list(m.generator.parameters()))
    m.load_state_dict(before)

    class Recorder(torch.optim.SGD):
        def step(self, closure=None):
            self.grads = [p.grad.clone() for p in self.param_groups[0]["params"]]

    opt = Recorder(disc + list(m.generator.parameters()), lr=0.1)
    torch.manual_seed(5)
    stats = m.train_step(batch, opt)
    for got, want in zip(opt.grads, want_d + want_g):
        torch.testing.assert_close(got, want)
    assert want_g[0].abs().sum() > 0 and set(stats) == {"loss", "accuracy", "generator_loss"}
    # the classifier's loss really does not move the generator: its gradient there is what L_D alone gives
    assert not torch.allclose(torch.autograd.grad(m.discriminate(ep)[0], m.generator.net[0].weight,
                                                  allow_unused=True)[0], want_g[0])


def test_fakes_never_enter_the_running_batch_norm_statistics(random_episode):
    torch.manual_seed(0)
    m = MetaGAN(n_fake=3, backbone_kwargs={"hidden": 8}).train()
    p = ProtoNet(backbone_kwargs={"hidden": 8}).train()
    p.backbone.load_state_dict(m.backbone.state_dict())
    ep = _episode(random_episode)
    m.discriminate(ep)
    p.predict(ep.support_x, ep.support_y, ep.query_x)  # the same real images, in one pass
    for (name, a), b in zip(m.backbone.state_dict().items(), p.backbone.state_dict().values()):
        if "running" in name:
            torch.testing.assert_close(a, b)
    assert all(mod.training for mod in m.backbone.modules())  # back in training mode


def test_fakes_and_their_probability_match_the_training_computation(random_episode):
    torch.manual_seed(0)
    m = MetaGAN(n_fake=2, backbone_kwargs={"hidden": 8}).eval()
    sx, sy, qx, _ = random_episode()
    fakes = m.draw_fakes(sx, sy, 3, torch.Generator().manual_seed(1))
    assert fakes.shape == (12, 1, 28, 28) and ((fakes >= 0) & (fakes <= 1)).all()
    assert torch.equal(fakes, m.draw_fakes(sx, sy, 3, torch.Generator().manual_seed(1)))
    with torch.no_grad():
        z_s, z_q = m.embed(sx), m.embed(qx)
        logits = -torch.cdist(z_q, torch.stack([z_s[sy == k].mean(0) for k in range(4)])).pow(2)
        want = torch.exp(m.fake_logit) / (torch.exp(m.fake_logit) + logits.exp().sum(1))
    torch.testing.assert_close(m.fake_probability(sx, sy, qx), want, atol=1e-5, rtol=1e-4)


def test_the_generator_losses_against_their_formulas(random_episode):
    torch.manual_seed(0)
    ep = _episode(random_episode)
    for kind in ("feature-matching", "non-saturating"):
        m = MetaGAN(n_fake=2, fake_weight=0.5, generator_loss=kind, backbone_kwargs={"hidden": 8}).train()
        with torch.no_grad():  # the fakes' class logits are near -10 here: with b = 0, p(fake) = 1 and log p = 0
            m.fake_logit.fill_(-10.0)
        before = {k: v.clone() for k, v in m.state_dict().items()}
        torch.manual_seed(3)
        loss_d, loss_g, _ = m.discriminate(ep)
        m.load_state_dict(before)  # the running statistics as they were
        torch.manual_seed(3)
        with torch.no_grad():
            z = m.embed(torch.cat([ep.support_x, ep.query_x]))  # the same draws, in the same order
            protos = torch.stack([z[:len(ep.support_x)][ep.support_y == k].mean(0) for k in range(4)])
            fakes = m.generator(protos.repeat_interleave(2, 0), torch.randn(8, m.z_dim))
            m.eval()
            z_fake, z_real = m.embed(fakes), m.embed(ep.query_x)  # running statistics, as for the fakes
            # L_D = CE over the n_way + 1 classes of the queries - lambda * mean log p(fake | G(c, z))
            query_logits = with_fake_class(-torch.cdist(z[len(ep.support_x):], protos).pow(2), m.fake_logit)
            fake_logits = with_fake_class(-torch.cdist(z_fake, protos).pow(2), m.fake_logit)
            fake_term = torch.log_softmax(fake_logits, 1)[:, -1].mean()
            assert fake_term < -0.1  # the term counts, so its sign and weight are tested
            want_d = F.cross_entropy(query_logits, ep.query_y) - 0.5 * fake_term
            if kind == "feature-matching":
                want = (z_real.mean(0) - z_fake.mean(0)).pow(2).sum()
            else:
                logits = with_fake_class(-torch.cdist(z_fake, protos).pow(2), m.fake_logit)
                want = -torch.log(1 - torch.softmax(logits, 1)[:, -1]).mean()
        torch.testing.assert_close(loss_g, want, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(loss_d, want_d, rtol=1e-4, atol=1e-5)


def test_bad_settings_name_the_fix():
    with pytest.raises(ValueError, match="n_fake=0 must be a whole number >= 1 .*use protonet"):
        MetaGAN(n_fake=0)
    with pytest.raises(ValueError, match="generator_loss='wgan' is not known; use one of feature-matching"):
        MetaGAN(generator_loss="wgan")
