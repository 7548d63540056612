"""The DAGAN: gradient penalty against its definition, the two losses, spectral norm, seeded sampling,
conditioning, the NaN/divergence guard, and the committed checkpoint."""
import os
import signal

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fslcourse.data import EpisodeSampler
from fslcourse.generative.augment import AugmentedClassifier, ModelGenerator
from fslcourse.generative.gan import (
    DAGAN,
    RECIPES,
    DAGANGenerator,
    PairCritic,
    critic_loss,
    generator_loss,
    gradient_penalty,
    make_pair,
    quality,
)
from fslcourse.io import load_checkpoint
from fslcourse.training import Hook
from fslcourse.training.generators import GANDiverged, checkpoint_file, train_gan
from fslcourse.training.loop import TrainingStopped


def _r(steps, n_way, lr=2e-4, state_every=0, **options):
    """The quick DAGAN recipe, shrunk for glyphs."""
    return RECIPES["quick"].replace(steps=steps, n_way=n_way, lr=lr, val_every=0, state_every=state_every,
                                    options={"n_critic": 1, "mismatch": False, **options})


class InjectNaN(Hook):
    def after_step(self, model, step, stats):
        if step == 7:
            with torch.no_grad():
                model.critic.net[0].weight[0, 0, 0, 0] = float("nan")


def test_gradient_penalty_of_a_linear_critic_is_closed_form():
    # D(x) = w.x + b has gradient w at every x, so the penalty is (||w|| - 1)^2 and d/dw = 2 (||w|| - 1) w / ||w||
    g = torch.Generator().manual_seed(0)
    critic = nn.Linear(5, 1)
    real, fake, eps = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g), torch.rand(6, generator=g)
    gp = gradient_penalty(lambda x: critic(x).squeeze(1), real, fake, eps)
    w = critic.weight.detach()[0]
    assert torch.allclose(gp, (w.norm() - 1) ** 2, atol=1e-6)
    gp.backward()  # create_graph=True: the penalty trains the critic
    assert torch.allclose(critic.weight.grad[0], 2 * (w.norm() - 1) * w / w.norm(), atol=1e-5)


def test_gradient_penalty_equals_its_definition_on_a_tiny_conv_critic():
    torch.manual_seed(0)
    critic = PairCritic(hidden=4)
    g = torch.Generator().manual_seed(1)
    real, fake = torch.rand(3, 2, 28, 28, generator=g), torch.rand(3, 2, 28, 28, generator=g)
    eps = torch.tensor([0.0, 0.3, 1.0])
    want = []
    for i in range(3):  # one example at a time, straight from the definition
        x_hat = (eps[i] * real[i:i + 1] + (1 - eps[i]) * fake[i:i + 1]).requires_grad_(True)
        grad, = torch.autograd.grad(critic(x_hat).sum(), x_hat)
        want.append((grad.norm() - 1) ** 2)
    assert torch.allclose(gradient_penalty(critic, real, fake, eps), torch.stack(want).mean(), rtol=1e-5)


def test_losses_match_their_formulas():
    torch.manual_seed(0)
    critic = PairCritic(hidden=4)
    g = torch.Generator().manual_seed(2)
    real, fake = torch.rand(4, 2, 28, 28, generator=g), torch.rand(4, 2, 28, 28, generator=g)
    d_real, d_fake = critic(real), critic(fake)
    loss, stats = critic_loss(critic, real, fake, "standard")
    want = F.binary_cross_entropy_with_logits(d_real, torch.ones(4)) + F.binary_cross_entropy_with_logits(
        d_fake, torch.zeros(4))
    assert torch.allclose(loss, want, atol=1e-6)
    assert torch.allclose(generator_loss(critic, fake, "standard"),
                          F.binary_cross_entropy_with_logits(d_fake, torch.ones(4)), atol=1e-6)
    loss, stats = critic_loss(critic, real, fake, "wgan-gp", 10.0, torch.Generator().manual_seed(3))
    eps = torch.rand(4, generator=torch.Generator().manual_seed(3))
    want = d_fake.mean() - d_real.mean() + 10 * gradient_penalty(critic, real, fake, eps)
    assert torch.allclose(loss, want, atol=1e-5) and stats["wasserstein"] == pytest.approx(
        (d_real.mean() - d_fake.mean()).item(), abs=1e-5)
    assert torch.allclose(generator_loss(critic, fake, "wgan-gp"), -d_fake.mean())
    with pytest.raises(ValueError, match="loss='hinge' is not known"):
        critic_loss(critic, real, fake, "hinge")


def test_spectral_norm_makes_each_layer_1_lipschitz():
    torch.manual_seed(0)
    critic = PairCritic(hidden=4, spectral=True).train()
    x = torch.rand(2, 2, 28, 28)
    for _ in range(30):  # power iterations run in training-mode forward passes
        critic(x)
    linear = critic.net[-1]
    assert torch.linalg.matrix_norm(linear.weight.detach(), ord=2).item() == pytest.approx(1.0, abs=1e-3)
    conv = critic.net[0].weight.detach().flatten(1)  # (out, in*k*k): the matrix spectral_norm normalises
    assert torch.linalg.matrix_norm(conv, ord=2).item() == pytest.approx(1.0, abs=1e-3)


def test_seeded_sampling_is_reproducible(glyphs):
    torch.manual_seed(0)
    gen = DAGANGenerator(hidden=4, code_dim=8)
    ep = EpisodeSampler(glyphs[2], 3, 2, 1, seed=0).sample()
    a, ya = gen.generate(ep.support_x, ep.support_y, 4, torch.Generator().manual_seed(1))
    b, _ = gen.generate(ep.support_x, ep.support_y, 4, torch.Generator().manual_seed(1))
    c, _ = gen.generate(ep.support_x, ep.support_y, 4, torch.Generator().manual_seed(2))
    assert a.shape == (12, 1, 28, 28) and torch.equal(a, b) and not torch.equal(a, c)
    assert ya.tolist() == [0] * 4 + [1] * 4 + [2] * 4 and 0 <= a.min() and a.max() <= 1
    # through the augmentation protocol: the same episode index and seed give the same support
    aug = [AugmentedClassifier(PixelEcho(), ModelGenerator(gen), 4, seed=5) for _ in range(2)]
    for wrapped in aug:
        wrapped.predict(ep.support_x, ep.support_y, ep.query_x)
    assert torch.equal(aug[0].last["generated"], aug[1].last["generated"])


class PixelEcho(nn.Module):
    """A stand-in classifier for the protocol test (logits from pixel prototypes)."""

    needs_grad_at_test = False

    def predict(self, support_x, support_y, query_x):
        from fslcourse.methods.base import prototypes
        return -torch.cdist(query_x.flatten(1), prototypes(support_x.flatten(1), support_y, 3))


def _tiny(glyphs, **kw):
    torch.manual_seed(0)
    return DAGAN(DAGANGenerator(hidden=4, code_dim=8), PairCritic(hidden=4))


def test_nan_guard_stops_and_keeps_the_last_good_state(glyphs, tmp_path):
    path = tmp_path / "gan.state.pt"
    with pytest.raises(GANDiverged, match=r"NaN/inf after step 7 .*last training state \(step 5\)") as err:
        train_gan(_tiny(glyphs), glyphs[0], _r(20, 4, state_every=5), state_path=path, hook=InjectNaN(),
                  progress=False)
    assert err.value.step == 7 and err.value.last_good_step == 5
    saved = load_checkpoint(path)
    assert saved["step"] == 5 and all(torch.isfinite(t).all() for t in saved["model"].values())
    # with a state every step, the step whose weights went NaN is not written either
    with pytest.raises(GANDiverged) as err:
        train_gan(_tiny(glyphs), glyphs[0], _r(20, 4, state_every=1), state_path=path, hook=InjectNaN(),
                  progress=False)
    assert err.value.last_good_step == 6 and load_checkpoint(path)["step"] == 6


class SigintAt6(Hook):
    def after_step(self, model, step, stats):
        if step == 6:  # Ctrl-C: fit finishes the step and writes the state of step 6, between two state_every
            os.kill(os.getpid(), signal.SIGINT)


def test_nan_guard_names_the_state_on_disk_after_a_resume(glyphs, tmp_path):
    path = tmp_path / "gan.state.pt"
    with pytest.raises(TrainingStopped, match="stopped at step 6"):
        train_gan(_tiny(glyphs), glyphs[0], _r(20, 4, state_every=5), state_path=path, hook=SigintAt6(),
                  progress=False)
    assert load_checkpoint(path)["step"] == 6
    # resumed, the weights go NaN at step 7: the state kept is step 6's (a multiple of state_every would say 5)
    with pytest.raises(GANDiverged, match=r"NaN/inf after step 7 .*last training state \(step 6\)") as err:
        train_gan(_tiny(glyphs), glyphs[0], _r(20, 4, state_every=5), state_path=path, resume=True, hook=InjectNaN(),
                  progress=False)
    assert err.value.last_good_step == 6 and load_checkpoint(path)["step"] == 6


def test_divergence_guard_triggers_before_anything_is_written(glyphs, tmp_path):
    with pytest.raises(GANDiverged, match="critic loss = .* at step 1 .*no training state was written. Lower lr"):
        train_gan(_tiny(glyphs), glyphs[0], _r(5, 4, state_every=1, divergence=1e-9), state_path=tmp_path / "g.pt",
                  progress=False)
    assert not (tmp_path / "g.pt").exists()


def test_critic_steps_enforce_the_lipschitz_penalty(glyphs):
    torch.set_num_threads(1)
    gan = _tiny(glyphs)
    gen = gan.generator
    before = {k: v.clone() for k, v in gen.state_dict().items()}
    hist = train_gan(gan, glyphs[0], _r(40, 8, lr=1e-3), progress=False)
    assert hist["split"] == "train" and len(hist["loss_d"]) == 40 and len(hist["gp"]) == 40
    # a fresh tiny critic has gradient norms far from 1; minimising L_D brings them towards 1
    assert sum(hist["gp"][-5:]) < 0.6 * sum(hist["gp"][:5])
    assert any(not torch.equal(before[k], v) for k, v in gen.state_dict().items())  # the generator was updated


@pytest.fixture(scope="module")
def committed(omniglot):
    import fslcourse
    from fslcourse.training import load_or_train

    torch.set_num_threads(1)
    path = checkpoint_file("gan", "quick")
    if not path.exists():
        pytest.fail(f"{path} is missing; create it with `python -m fslcourse train gan --recipe quick`")
    protonet = fslcourse.pretrained("protonet", device="cpu")
    gans = load_or_train("gan", "quick", data=omniglot, device="cpu", progress=False, save=False)
    assert gans["trained"] == []
    return gans, protonet, omniglot


def test_committed_checkpoint_reproduces_its_recorded_metrics(committed):
    gans, protonet, data = committed
    for loss in ("wgan-gp", "standard"):
        entry = gans["checkpoint"]["pixel"][loss]
        assert entry["history"]["split"] == "train" and entry["history"]["steps"] == entry["recipe"]["steps"]
        got = quality(gans[loss], protonet.backbone, data.test, seed=entry["seed"])
        assert set(entry["metrics"]) >= {"faithful"}, loss  # a file without metrics would pass the loop below
        for key, want in entry["metrics"].items():
            assert got[key] == pytest.approx(want, rel=1e-4, abs=1e-4), (loss, key)


def test_generator_is_conditioned_on_its_source(committed):
    # drawings generated from sources of different meta-test characters land nearest their own source's
    # class prototype (real drawings, ProtoNet backbone) far more often than chance (1 in 5)
    gans, protonet, data = committed
    hits = []
    for seed in range(6):
        ep = EpisodeSampler(data.test, 5, 5, 1, seed=seed).sample()
        gen_x, gen_y = gans["wgan-gp"].generate(ep.support_x[::5], torch.arange(5), 20,
                                                torch.Generator().manual_seed(seed))  # one source per class
        with torch.no_grad():
            protos = protonet.backbone(ep.support_x).unflatten(0, (5, 5)).mean(1)  # (5, D)
            nearest = torch.cdist(protonet.backbone(gen_x), protos).argmin(1)
        hits.append((nearest == gen_y).float().mean().item())
        assert len(set(nearest.tolist())) >= 3  # different sources, different classes
    assert sum(hits) / len(hits) >= 0.5, hits


def test_mismatch_shows_the_critic_other_characters_as_fake(glyphs, monkeypatch):
    import fslcourse.generative.gan as module

    seen = []

    def spy(critic, real, fake, *args):
        seen.append((real, fake))
        return critic_loss(critic, real, fake, *args)

    monkeypatch.setattr(module, "critic_loss", spy)
    train_gan(_tiny(glyphs), glyphs[0], _r(1, 4, mismatch=True), progress=False)
    real, fake = seen[0]
    assert real.shape == fake.shape == (8, 2, 28, 28) and torch.equal(real[:4], real[4:])
    sources, others = real[:4, :1], real[:4, 1:]  # (source, another drawing of its character)
    assert torch.equal(fake[:4, :1], sources) and torch.equal(fake[4:], make_pair(sources, others.roll(1, 0)))


def test_keep_best_returns_the_weights_of_the_best_validation_step(glyphs):
    # keep="best": the generator is the one of the step that drew the validation characters best, i.e. exactly
    # the weights a run stopped at that step has; keep="last" (the standard-loss DAGAN's) ends at the last step
    torch.set_num_threads(1)
    train, val, _ = glyphs
    backbone = nn.Flatten()
    recipe = _r(12, 4, lr=1e-2).replace(val_every=3, val_n_way=8)  # this rate loses the character by step 12
    best_gan = _tiny(glyphs)
    hist = train_gan(best_gan, train, recipe.replace(options={"keep": "best"}), backbone=backbone, val_split=val,
                     progress=False)
    scores = hist["val_faithful"]
    assert hist["val_step"] == [3, 6, 9, 12]
    assert hist["kept_step"] == hist["val_step"][scores.index(max(scores))] < 12 and scores[-1] < max(scores)
    stopped_there = _tiny(glyphs)
    train_gan(stopped_there, train, recipe.replace(steps=hist["kept_step"], options={"keep": "last"}),
              backbone=backbone, val_split=val, progress=False)
    for k, v in stopped_there.generator.state_dict().items():
        assert torch.equal(best_gan.generator.state_dict()[k], v), k
    last = _tiny(glyphs)
    assert train_gan(last, train, recipe.replace(options={"keep": "last"}), backbone=backbone, val_split=val,
                     progress=False)["kept_step"] == 12
    assert any(not torch.equal(best_gan.generator.state_dict()[k], v) for k, v in last.generator.state_dict().items())


def test_the_quick_wgan_keeps_its_best_step_and_the_committed_dagans_record_their_recipes():
    from fslcourse.generative.gan import RECIPES_DEFORMING

    assert RECIPES["quick"].options["keep"] == "best" and RECIPES["quick"].val_n_way == 40
    assert RECIPES_DEFORMING["quick"].options.get("keep", "last") == "last"
    # each committed file was made by the recipe the package holds now (python -m fslcourse train NAME)
    gan = load_checkpoint(checkpoint_file("gan", "quick"))["pixel"]
    assert gan["wgan-gp"]["recipe"] == RECIPES["quick"].replace(options={"loss": "wgan-gp"}).as_dict()
    assert gan["standard"]["recipe"]["options"]["keep"] == "last"
    deforming = load_checkpoint(checkpoint_file("deformation-gan", "quick"))
    assert deforming["recipe"] == RECIPES_DEFORMING["quick"].as_dict()


def test_quality_measures_in_eval_mode_and_leaves_the_backbone_as_it_was(glyphs):
    """A backbone in train mode would normalise with each batch and overwrite its running statistics."""
    from fslcourse.methods import ProtoNet

    torch.manual_seed(0)
    backbone = ProtoNet(backbone_kwargs={"hidden": 4}).backbone.train()
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    gen = DAGANGenerator()
    got = quality(gen, backbone, glyphs[2], n_classes=4, n_generated=3)
    assert backbone.training and all(torch.equal(v, before[k]) for k, v in backbone.state_dict().items())
    assert got == quality(gen, backbone.eval(), glyphs[2], n_classes=4, n_generated=3)  # the eval-mode figures


def test_a_recipe_that_keeps_its_best_step_needs_something_to_validate_with(glyphs):
    """Without a backbone the run kept its last step, while the file recorded keep='best' and empty metrics."""
    from fslcourse.training.generators import make_dagan

    r = RECIPES["quick"]
    assert r.options["keep"] == "best" and r.val_every
    with pytest.raises(ValueError, match=r"^this gan recipe \(keep=.best., val_every=50\) keeps its best validation step, which needs backbone="):
        train_gan(make_dagan(r), glyphs[0], r, val_split=glyphs[1], progress=False)
