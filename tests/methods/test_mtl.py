"""Meta-transfer learning: Θ stays frozen, SS is the identity at Φ's initial values, hard tasks come from the
recorded failure classes, the meta-gradient reaches Φ and θ (checked against finite differences), and the
committed checkpoints reproduce their recorded accuracies."""
import copy

import pytest
import torch

from fslcourse.data import EpisodeSampler
from fslcourse.methods import get_method
from fslcourse.methods.mtl import MTL, failure_classes, hard_task_batch
from fslcourse.models import ResNetSmall
from fslcourse.recipe import Recipe
from fslcourse.training import fit, trainers

WIDTHS = (4, 6, 8)


def _meta_transfer(name, state, train, steps, lr):
    """Phase 2 through the training package's meta-transfer trainer and the one loop; returns the model."""
    from types import SimpleNamespace

    r = Recipe(trainer="meta-transfer", n_way=5, n_shot=1, n_query=2, meta_batch=3, steps=steps, lr=lr, val_every=0,
               model={"widths": WIDTHS}, options={"hard_tasks": 2, "phase1": "given"})
    run = trainers.meta_transfer(name, r, SimpleNamespace(train=train, val=None), "cpu", state)
    fit(run.trained, run.batches, r, optimizer=run.optimizer, hook=run.hook, streams=run.streams, progress=False)
    return run.method


def _pretrained_state(seed=0):
    torch.manual_seed(seed)
    plain = ResNetSmall(widths=WIDTHS)
    plain.train()
    with torch.no_grad():  # give BatchNorm non-trivial running statistics
        plain(torch.rand(32, 1, 28, 28, generator=torch.Generator().manual_seed(seed)))
    return plain.eval(), {k: v.clone() for k, v in plain.state_dict().items()}


def _frozen_values(model):
    """Θ: every backbone tensor that is not a scale or a shift (weights, BN affine and running statistics)."""
    return {k: v.clone() for k, v in model.backbone.state_dict().items() if not k.endswith((".scale", ".shift"))}


def test_registered_rows_and_their_trainable_parameters():
    rows = {n: get_method(n)(widths=WIDTHS) for n in ("mtl", "mtl-no-ht", "mtl-ft", "mtl-theta-only")}
    assert [rows[n].hard_tasks for n in rows] == [True, False, False, False]
    trainable = {n: {k for k, p in m.named_parameters() if p.requires_grad} for n, m in rows.items()}
    assert trainable["mtl-theta-only"] == {"log_scale"}
    assert trainable["mtl"] == trainable["mtl-no-ht"]
    assert all(k.endswith((".scale", ".shift")) for k in trainable["mtl"] - {"log_scale"})
    n_ss = sum(p.numel() for k, p in rows["mtl"].named_parameters() if k.endswith((".scale", ".shift")))
    convs = [m for m in ResNetSmall(widths=WIDTHS).modules() if isinstance(m, torch.nn.Conv2d)]
    assert n_ss == 2 * sum(c.out_channels for c in convs)  # two numbers per filter
    assert len(trainable["mtl-ft"]) == len(list(ResNetSmall(widths=WIDTHS).parameters())) + 1
    rebuilt = get_method("mtl")(**rows["mtl"].config())
    assert rebuilt.config() == rows["mtl"].config()


def test_initial_phi_gives_the_plain_backbone_features():
    plain, state = _pretrained_state()
    model = MTL(widths=WIDTHS)
    model.load_backbone(state)
    model.eval()
    x = torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    assert torch.equal(model.embed(x), plain(x))


def test_theta_stays_frozen_while_phi_learns(glyphs):
    train, val, _ = glyphs
    _, state = _pretrained_state()
    model = MTL(widths=WIDTHS)
    model.load_backbone(state)
    before, phi_before = _frozen_values(model), {k: v.clone() for k, v in model.state_dict().items()}
    model = _meta_transfer("mtl", state, train, steps=3, lr=0.05)
    after = _frozen_values(model)
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, phi_before[k])]
    assert changed and all(k.endswith((".scale", ".shift")) or k == "log_scale" for k in changed)
    assert model.hard_batches > 0
    # the FT ablation does change Θ (so the check above can fail)
    ft = get_method("mtl-ft")(widths=WIDTHS)
    ft.load_backbone(state)
    ft_before = _frozen_values(ft)
    ft = _meta_transfer("mtl-ft", state, train, steps=1, lr=0.05)
    assert any(not torch.equal(v, _frozen_values(ft)[k]) for k, v in ft_before.items())
    # BatchNorm running statistics never move, even in training mode
    model.train()
    assert not any(m.training for m in model.backbone.modules())


def test_failure_class_is_the_lowest_query_accuracy():
    classes = torch.tensor([40, 41, 42])
    query_y = torch.tensor([0, 0, 1, 1, 2, 2])
    logits = torch.zeros(6, 3)
    logits[[0, 1, 4, 5], [0, 0, 2, 2]] = 5.0  # classes 0 and 2 right; class 1: one right, one wrong
    logits[2, 1], logits[3, 0] = 5.0, 5.0
    assert int(failure_classes(logits, query_y, classes)) == 41
    logits[4, 2], logits[4, 0] = 0.0, 9.0  # now class 2 also has 1/2, with a larger loss: the tie goes to it
    assert int(failure_classes(logits, query_y, classes)) == 42


def test_failure_class_ranks_accuracy_first_at_any_number_of_queries():
    """Lowest accuracy first, loss only between equals, with 40 queries a class (accuracy steps of 1/40): a
    rule that weighs the loss into one score (``acc - 1e-3 * loss``) picks class 0 here, at 20/40 right but with
    confidently wrong misses, over class 1 at 19/40 right."""
    n_query = 40
    query_y = torch.arange(2).repeat_interleave(n_query)  # (2 * 40,)
    logits = torch.zeros(2 * n_query, 2)
    logits[:20, 0] = 1.0  # class 0: 20 right ...
    logits[20:40, 1] = 100.0  # ... and 20 wrong by a margin of 100 (loss 100 each)
    logits[40:61, 0] = 0.01  # class 1: 21 wrong by a hair (loss about 0.7) ...
    logits[61:, 1] = 1.0  # ... and 19 right
    assert int(failure_classes(logits, query_y, torch.tensor([7, 8]))) == 8
    g = torch.Generator().manual_seed(0)
    for _ in range(200):  # against the rule written out: min over (accuracy, -loss, position)
        n_way, n_q = int(torch.randint(2, 6, (), generator=g)), int(torch.randint(1, 30, (), generator=g))
        y = torch.arange(n_way).repeat_interleave(n_q)  # (n_way * n_q,)
        lg = torch.randn(n_way * n_q, n_way, generator=g) * 3
        acc = [(lg[y == c].argmax(1) == c).float().mean().item() for c in range(n_way)]
        loss = [torch.nn.functional.cross_entropy(lg[y == c], y[y == c]).item() for c in range(n_way)]
        want = min(range(n_way), key=lambda c: (acc[c], -loss[c], c))
        assert int(failure_classes(lg, y, torch.arange(n_way) + 100)) == 100 + want


def test_hard_batch_is_built_only_from_recorded_failure_classes(glyphs, monkeypatch):
    train, _, _ = glyphs
    pool = [3, 17, 17, 22, 40, 51, 8]
    batch = hard_task_batch(train, pool, 5, 1, 2, 6, torch.Generator().manual_seed(0))
    assert batch.support_x.shape == (6, 5, 1, 28, 28) and batch.query_x.shape == (6, 10, 1, 28, 28)
    for ep in batch:
        assert set(ep.classes.tolist()) <= set(pool) and len(set(ep.classes.tolist())) == 5
        for label, c in enumerate(ep.classes.tolist()):  # every image is an example of its task's class
            own = train.get(torch.tensor([c]), torch.arange(train.n_examples)[None])[0]  # (n_examples, 1, 28, 28)
            for img in torch.cat([ep.support_x[ep.support_y == label], ep.query_x[ep.query_y == label]]):
                assert (own == img).flatten(1).all(1).any()
    with pytest.raises(ValueError, match="distinct failure classes"):
        hard_task_batch(train, [1, 2, 2, 3], 5, 1, 2, 1, torch.Generator())

    # inside the training loop: each hard batch uses exactly the failure classes of the ordinary tasks before it
    seen = []
    real = trainers.hard_task_batch

    def spy(split, failures, *args):
        seen.append(list(failures))
        batch = real(split, failures, *args)
        assert set(batch.classes.flatten().tolist()) <= set(failures)
        return batch

    monkeypatch.setattr(trainers, "hard_task_batch", spy)
    _, state = _pretrained_state()
    model = _meta_transfer("mtl", state, train, steps=4, lr=0.0)
    assert seen, "no hard batch was built"
    # lr=0 leaves the model as it was, so the failures can be recomputed from the same ordinary tasks
    model.train()
    sampler, expected = EpisodeSampler(train, 5, 1, 2, seed=0), []
    while len(set(expected)) < 5:
        for ep in sampler.sample_batch(3):
            logits = model.predict(ep.support_x, ep.support_y, ep.query_x).detach()
            expected.append(int(failure_classes(logits, ep.query_y, ep.classes)))
    assert seen[0] == expected


def test_meta_gradient_reaches_phi_and_theta_and_matches_finite_differences(glyphs):
    train, _, _ = glyphs
    _, state = _pretrained_state()
    model = MTL(widths=WIDTHS, inner_steps=3, inner_lr=0.5).double()
    model.load_backbone({k: v.double() if v.is_floating_point() else v for k, v in state.items()})
    with torch.no_grad():  # move Φ off its initial values so the check is generic
        for k, p in model.named_parameters():
            if k.endswith((".scale", ".shift")):
                p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(len(k)), dtype=p.dtype))
    model.train()
    ep = EpisodeSampler(train, 5, 1, 3, seed=3).sample()
    ep.support_x, ep.query_x = ep.support_x.double(), ep.query_x.double()

    def query_loss():
        return model.loss(ep)[0]

    query_loss().backward()
    probes = [("backbone.stages.0.body.0.scale", 1), ("backbone.stages.2.body.3.shift", 2), ("log_scale", None)]
    params = dict(model.named_parameters())
    for name, i in probes:
        p = params[name]
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches {name}"
        g = p.grad if i is None else p.grad[i]
        eps = 1e-6
        with torch.no_grad():
            view = p if i is None else p[i]
            view += eps
            up = query_loss().item()
            view -= 2 * eps
            down = query_loss().item()
            view += eps
        fd = (up - down) / (2 * eps)
        assert abs(fd - g.item()) < 1e-6 + 1e-4 * abs(fd), f"{name}: autograd {g.item():.6g}, finite diff {fd:.6g}"
    frozen = [p for k, p in params.items() if not k.endswith((".scale", ".shift")) and k != "log_scale"]
    assert all(p.grad is None for p in frozen)


def test_meta_test_adapts_only_the_head():
    _, state = _pretrained_state()
    model = MTL(widths=WIDTHS, test_inner_steps=5)
    model.load_backbone(state)
    model.eval()
    snapshot = copy.deepcopy(model.state_dict())
    g = torch.Generator().manual_seed(0)
    support_x, query_x = torch.rand(5, 1, 28, 28, generator=g), torch.rand(10, 1, 28, 28, generator=g)
    support_y = torch.arange(5)
    logits = model.predict(support_x, support_y, query_x)
    assert logits.shape == (10, 5) and not logits.requires_grad
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in snapshot.items())
    # the head's steps lower the support loss (they do something)
    z = model.embed(support_x)
    w0, b0 = model.adapt(z, support_y, 5, 0, create_graph=False)
    w5, b5 = model.adapt(z, support_y, 5, 5, create_graph=False)
    ce = torch.nn.functional.cross_entropy
    assert ce(model.head_logits(z, w5, b5), support_y) < ce(model.head_logits(z, w0, b0), support_y)


CHECKPOINT_EPISODES = {"mtl": 40, "mtl-no-ht": 40, "mtl-ft": 40, "mtl-theta-only": 40}


@pytest.mark.parametrize("name", list(CHECKPOINT_EPISODES))
def test_checkpoint_reproduces_recorded_accuracy(name, omniglot):
    from fslcourse.evaluate import evaluate, mean_ci95
    from fslcourse.pretrained import checkpoint_info, checkpoint_path, pretrained

    if not checkpoint_path(name).exists():
        pytest.fail(f"{checkpoint_path(name)} is missing; create it with `python benchmarks/mtl_ablation.py --train`")
    info = checkpoint_info(name)
    m, proto = info["metrics"], info["metrics"]["protocol"]
    assert info["seed"] == 0 and info["train_seconds"] > 0 and (proto["n_way"], proto["n_shot"]) == (5, 1)
    recorded = m["test_episode_accuracies"]
    n = CHECKPOINT_EPISODES[name]
    res = evaluate(pretrained(name, device="cpu"), omniglot.test, 5, 1, proto["n_query"], n, seed=proto["seed"],
                   device="cpu")
    want, _ = mean_ci95(recorded[:n])
    # episode by episode, so that opposite flips cannot cancel: another CPU's rounding may flip a near-tie
    # query or two, nothing more (one query of 5-way with n_query queries per class moves an episode 100/(5 n_query))
    one_query = 100 / (proto["n_way"] * proto["n_query"])
    moved = sum(abs(a - b) for a, b in zip(res.episode_accuracies, recorded[:n]))
    assert moved <= 2 * one_query + 0.01, (f"first {n} episodes: {res.accuracy:.2f}% now, {want:.2f}% recorded; "
                                           f"{moved / one_query:.0f} queries answered differently")


def test_on_a_conv4_backbone_only_scale_and_shift_train_and_a_plain_conv4_loads():
    """``backbone="conv4"`` puts MTL on the other methods' Conv-4 (the learning curves' equal backbone): two
    numbers per filter train, a plain Conv-4's weights load as Θ, SS starts as the identity, and a ResNet's fail."""
    from fslcourse.models import Conv4

    torch.manual_seed(0)
    plain = Conv4(hidden=6).eval()
    with torch.no_grad():
        for m in plain.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    model = MTL(backbone="conv4", hidden=6).eval()
    ss = {k for k, p in model.named_parameters() if p.requires_grad} - {"log_scale"}
    assert ss and all(k.endswith((".scale", ".shift")) for k in ss)
    assert sum(model.get_parameter(k).numel() for k in ss) == 2 * 4 * 6  # 4 convolutions of 6 filters
    model.load_backbone(plain.state_dict())
    x = torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(model.embed(x), plain(x))
    assert MTL(**model.config()).config() == model.config()
    with pytest.raises(ValueError, match=r"does not match Conv4\(6\)"):
        model.load_backbone(ResNetSmall(widths=WIDTHS).state_dict())
    with pytest.raises(ValueError, match="backbone='vgg' is not known"):
        MTL(backbone="vgg")


def test_phase_2_loads_the_committed_phase_1_only_at_its_seed(tmp_path, monkeypatch):
    """A phase 2 at seed 3 must start from a phase 1 trained at seed 3: the committed seed-0 backbone is loaded only
    for a seed-0 run, else phase 1 is trained from the seed asked for (and its time counted)."""
    import importlib
    from types import SimpleNamespace

    import fslcourse.training.api as api

    monkeypatch.setattr(importlib.import_module("fslcourse.pretrained"), "CHECKPOINT_DIR", tmp_path)
    from fslcourse.pretrained import save_method

    committed = get_method("mtl-theta-only")(widths=WIDTHS)
    save_method(committed, tmp_path / "mtl-theta-only-quick.pt", seed=0, profile="quick", train_seconds=5.0)
    trained = get_method("mtl-theta-only")(widths=WIDTHS)
    calls = []
    monkeypatch.setattr(api, "train", lambda name, how, **kw: calls.append((name, how, kw.get("seed")))
                        or (trained, SimpleNamespace(seconds=2.0)))
    recipe = Recipe(trainer="meta-transfer", n_way=5, n_shot=1, n_query=2, steps=2, lr=0.1, val_every=0,
                    model={"widths": WIDTHS}, options={"hard_tasks": 2, "phase1": "mtl-theta-only"})
    state, info = api._phase1_state("mtl", "quick", recipe.replace(seed=3), None, "cpu", False)
    assert calls == [("mtl-theta-only", "quick", 3)]
    assert info == {"phase1": "trained: mtl-theta-only quick", "phase1_seconds": 2.0}
    assert all(torch.equal(v, trained.backbone.state_dict()[k]) for k, v in state.items())
    state, info = api._phase1_state("mtl", "quick", recipe, None, "cpu", False)  # seed 0: the committed file
    assert len(calls) == 1 and info == {"phase1": "mtl-theta-only-quick.pt", "phase1_seconds": 5.0}
    assert all(torch.equal(v, committed.backbone.state_dict()[k]) for k, v in state.items())
