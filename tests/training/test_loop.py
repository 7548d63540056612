"""The one training loop: it learns, keeps the best model, survives Ctrl-C, resumes bit for bit."""
import os
import signal
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from fslcourse.data import EpisodeSampler
from fslcourse.evaluate import evaluate
from fslcourse.methods.base import FewShotClassifier, prototypes, register
from fslcourse.pretrained import load_method, pretrained, save_method
from fslcourse.recipe import Recipe
from fslcourse.training import Hook, fit, train
from fslcourse.training.trainers import make_validate


@register("test-tiny-protonet")
class TinyProtoNet(FewShotClassifier):
    """A linear embedding with nearest-prototype logits: small enough to train in a second."""

    RECIPES = {"quick": Recipe(n_way=5, n_shot=1, n_query=3, steps=60, lr=3e-3, val_every=20, val_episodes=20,
                               schedule="cosine", model={"dim": 16})}

    def __init__(self, dim: int = 16):
        super().__init__()
        self.dim = dim
        self.embed = nn.Sequential(nn.AvgPool2d(2), nn.Flatten(), nn.Linear(196, dim))

    def config(self):
        return {"dim": self.dim}

    def predict(self, support_x, support_y, query_x):
        n_way = self.check_support(support_x, support_y, query_x)
        return -torch.cdist(self.embed(query_x), prototypes(self.embed(support_x), support_y, n_way)).pow(2)


class NoisyTinyProtoNet(TinyProtoNet):
    """Jitters its training embeddings with torch's global generator, as dropout or MetaGAN's noise do."""

    def predict(self, support_x, support_y, query_x):
        logits = super().predict(support_x, support_y, query_x)  # (n_query_total, n_way)
        return logits + torch.randn_like(logits) if self.training else logits  # a global-generator draw


class Interrupting(TinyProtoNet):
    """Raises KeyboardInterrupt inside step ``stop_at`` (a second Ctrl-C: the step is abandoned)."""

    stop_at = 7

    def train_step(self, batch, optimizer):
        self.calls = getattr(self, "calls", 0) + 1
        if self.calls == self.stop_at:
            raise KeyboardInterrupt
        return super().train_step(batch, optimizer)


class SigintAt(Hook):
    """Sends this process SIGINT after step ``at``, as Ctrl-C or the notebook's stop button would."""

    def __init__(self, at: int):
        self.at = at

    def after_step(self, model, step, stats):
        if step == self.at:
            os.kill(os.getpid(), signal.SIGINT)


def _data(glyphs):
    return SimpleNamespace(train=glyphs[0], val=glyphs[1], test=glyphs[2])


def _fit(model, glyphs, recipe=None, **kw):
    recipe = recipe or TinyProtoNet.RECIPES["quick"]
    sampler = EpisodeSampler(glyphs[0], recipe.n_way, recipe.n_shot, recipe.n_query, seed=recipe.seed)
    opt = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    return fit(model, lambda: sampler.sample_batch(recipe.meta_batch), recipe, optimizer=opt,
               validate=make_validate(model, glyphs[1], recipe, "cpu"), streams={"episodes": sampler.generator},
               progress=False, **kw)


def test_fit_learns_and_keeps_the_best(glyphs):
    model = TinyProtoNet()
    before = evaluate(model, glyphs[1], 5, 1, 5, 20, seed=0).accuracy
    result = _fit(model, glyphs)
    assert result.steps == 60 and result.log.val_step == [20, 40, 60] and result.stopped == "steps"
    assert result.best_score == max(result.log.val_accuracy)
    after = evaluate(result.model, glyphs[1], 5, 1, 5, 20, seed=0).accuracy
    assert after == pytest.approx(result.best_score)  # the returned weights are the best ones
    assert after > before + 5, (before, after)
    assert len(result.log.cpu_seconds) == 60 and result.log.cpu_seconds[-1] > 0
    fig = result.log.plot()
    assert len(fig.axes) == 2
    assert [t.get_text() for t in fig.axes[1].get_legend().get_texts()] == ["training (smoothed)", "validation (95% CI)"]
    fig = result.log.plot(train_label="training, 20-way", val_label="meta-val, 5-way 1-shot")
    assert [t.get_text() for t in fig.axes[1].get_legend().get_texts()] == ["training, 20-way (smoothed)",
                                                                           "meta-val, 5-way 1-shot (95% CI)"]


def test_interrupt_inside_a_step_keeps_best_and_says_so(glyphs, capsys):
    model = Interrupting()
    result = _fit(model, glyphs, TinyProtoNet.RECIPES["quick"].replace(val_every=3))
    assert result.interrupted and result.steps == 6
    assert result.best_step in (3, 6)
    assert "Training interrupted at step 6; kept the best model so far" in capsys.readouterr().out


@pytest.mark.parametrize("model", [TinyProtoNet, NoisyTinyProtoNet])
def test_sigint_stops_after_the_step_and_resume_is_bitwise(glyphs, tmp_path, model):
    """Ctrl-C at step 23, then resume: the same weights, log and best step as a run never interrupted (with
    draws from torch's global generator too: its state is saved and restored)."""
    recipe = TinyProtoNet.RECIPES["quick"].replace(steps=50, val_every=25, state_every=20)
    torch.manual_seed(0)
    full = _fit(model(), glyphs, recipe)
    torch.manual_seed(0)
    state = tmp_path / "run.state.pt"
    first = _fit(model(), glyphs, recipe, state_path=state, hook=SigintAt(23))
    assert first.stopped == "interrupted" and first.steps == 23 and state.exists()
    assert full.best_step > 23  # so the weights compared below were trained after the resume
    torch.manual_seed(1)  # a fresh model with other weights, the global generator elsewhere: resuming restores both
    resumed = _fit(model(dim=16), glyphs, recipe, state_path=state, resume=True)
    assert resumed.steps == 50 and resumed.stopped == "steps"
    for k, v in full.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
    assert resumed.log.train["loss"] == full.log.train["loss"] and resumed.best_step == full.best_step
    with pytest.raises(ValueError, match="written by another recipe .*differs in steps"):
        _fit(TinyProtoNet(), glyphs, recipe.replace(steps=60), state_path=state, resume=True)


def _stopped_at_14(glyphs, tmp_path):
    """A 30-step run stopped by Ctrl-C after step 14: ``(recipe, state path, FitResult)``."""
    recipe = TinyProtoNet.RECIPES["quick"].replace(steps=30, val_every=10, state_every=10)
    state = tmp_path / "run.state.pt"
    torch.manual_seed(0)
    return recipe, state, _fit(TinyProtoNet(), glyphs, recipe, state_path=state, hook=SigintAt(14))


def test_a_run_resumed_on_another_machine_says_where_each_stretch_ran(glyphs, tmp_path, monkeypatch):
    # bit for bit holds on one machine only, so the log names the CPU of every sitting and the step it began at
    import fslcourse.training.loop as loop
    from fslcourse.training.log import TrainLog

    monkeypatch.setattr(loop, "cpu_name", lambda: "machine A")
    recipe, state, first = _stopped_at_14(glyphs, tmp_path)
    assert first.stopped == "interrupted"
    assert [(s["from_step"], s["cpu"], s["device"]) for s in first.log.sittings] == [(0, "machine A", "cpu")]
    saved_at = torch.load(state, weights_only=True)["step"]
    monkeypatch.setattr(loop, "cpu_name", lambda: "machine B")
    resumed = _fit(TinyProtoNet(), glyphs, recipe, state_path=state, resume=True)
    assert [(s["from_step"], s["cpu"]) for s in resumed.log.sittings] == [(0, "machine A"), (saved_at, "machine B")]
    assert TrainLog.from_dict(resumed.log.as_dict()).sittings == resumed.log.sittings  # stored with the log
    old = TrainLog(step=[1, 2], seconds=[0.1, 0.2])  # a log written before sittings were recorded
    old.add_sitting(2, "machine C", "cpu")
    assert [s["cpu"] for s in old.sittings] == ["not recorded", "machine C"]
    assert TrainLog(sittings=[{"from_step": 0, "cpu": "machine D"}]).numerics == "native"  # before numerics were recorded


def test_a_run_is_resumed_only_with_the_numerics_it_was_started_with(glyphs, tmp_path, monkeypatch):
    # portable and native numerics round differently: mixing them would silently break bit for bit
    import fslcourse.training.loop as loop

    monkeypatch.setattr(loop, "current_numerics", lambda: "portable")
    recipe, state, first = _stopped_at_14(glyphs, tmp_path)
    assert first.log.sittings[0]["numerics"] == "portable" and first.log.numerics == "portable"
    monkeypatch.setattr(loop, "current_numerics", lambda: "native")
    with pytest.raises(ValueError, match="written with portable numerics .* FSLCOURSE_NUMERICS=portable"):
        _fit(TinyProtoNet(), glyphs, recipe, state_path=state, resume=True)
    monkeypatch.setattr(loop, "current_numerics", lambda: "portable")
    resumed = _fit(TinyProtoNet(), glyphs, recipe, state_path=state, resume=True)
    assert resumed.stopped == "steps" and [s["numerics"] for s in resumed.log.sittings] == ["portable"] * 2


def test_max_seconds_stops_early_and_is_recorded(glyphs, tmp_path):
    result = _fit(TinyProtoNet(), glyphs, TinyProtoNet.RECIPES["quick"].replace(max_seconds=1e-9),
                  state_path=tmp_path / "s.pt")
    assert result.stopped == "max_seconds" and result.steps == 1 and (tmp_path / "s.pt").exists()


def test_same_recipe_and_seed_give_the_same_weights(glyphs):
    data = _data(glyphs)
    recipe = TinyProtoNet.RECIPES["quick"].replace(steps=50, val_every=25)
    a, _ = train("test-tiny-protonet", recipe, data=data, save=False, progress=False, device="cpu")
    b, _ = train("test-tiny-protonet", recipe, data=data, save=False, progress=False, device="cpu")
    c, _ = train("test-tiny-protonet", recipe.replace(seed=1), data=data, save=False, progress=False, device="cpu")
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    assert not all(torch.equal(v, c.state_dict()[k]) for k, v in a.state_dict().items())


def test_train_writes_a_checkpoint_and_never_overwrites(glyphs, tmp_path):
    data, out = _data(glyphs), tmp_path / "tiny.pt"
    model, result = train("test-tiny-protonet", data=data, out=out, progress=False, device="cpu", eval_episodes=10)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.pt"]  # no temp or state files left
    loaded, ckpt = load_method(out, expect="test-tiny-protonet")
    assert ckpt["recipe"] == TinyProtoNet.RECIPES["quick"].as_dict() and ckpt["steps"] == 60
    assert ckpt["metrics"]["best_step"] == result.best_step and len(ckpt["log"]["step"]) == 60
    assert ckpt["metrics"]["protocol"]["n_episodes"] == 10 and 0 < ckpt["metrics"]["test_accuracy"] <= 100
    ep = EpisodeSampler(glyphs[2], 5, 1, 2, seed=0).sample()
    with torch.no_grad():
        assert torch.equal(loaded.predict(ep.support_x, ep.support_y, ep.query_x),
                           model.predict(ep.support_x, ep.support_y, ep.query_x))
    before = out.read_bytes()
    with pytest.raises(ValueError, match="tiny.pt exists; pass overwrite=True"):
        train("test-tiny-protonet", data=data, out=out, progress=False)
    assert out.read_bytes() == before
    with pytest.raises(ValueError, match="holds method 'test-tiny-protonet', not 'protonet'"):
        load_method(out, expect="protonet")


@pytest.mark.parametrize("options", [{}, {"augment": {}}], ids=["plain", "deformed-episodes"])
def test_interrupted_train_writes_no_checkpoint_and_resumes(glyphs, tmp_path, ctrl_c_after_step, options):
    """An interrupted ``train`` keeps the previous file, leaves its state beside it, and resumes to the same end
    (with training augmentation too: its random deformations are a stream of the saved state)."""
    data, out = _data(glyphs), tmp_path / "tiny.pt"
    save_method(TinyProtoNet(dim=16), out, seed=0, profile="quick", train_seconds=1.0)
    before = out.read_bytes()
    recipe = TinyProtoNet.RECIPES["quick"].replace(steps=40, val_every=0, options=options)  # keeps step 40's weights
    with ctrl_c_after_step(TinyProtoNet, 25):
        _, stopped = train("test-tiny-protonet", recipe, data=data, out=out, overwrite=True, progress=False,
                           eval_episodes=5)
    assert stopped.stopped == "interrupted" and out.read_bytes() == before
    assert (tmp_path / "tiny.state.pt").exists()
    saved_at = torch.load(tmp_path / "tiny.state.pt", weights_only=True)["step"]
    resumed, result = train("test-tiny-protonet", recipe, data=data, out=out, overwrite=True, resume=True,
                            progress=False, eval_episodes=5)
    straight, _ = train("test-tiny-protonet", recipe, data=data, save=False, progress=False)
    assert saved_at == 25 and [s["from_step"] for s in result.log.sittings] == [0, 25]  # resumed, not restarted
    assert result.steps == 40 and not (tmp_path / "tiny.state.pt").exists() and out.read_bytes() != before
    assert all(torch.equal(v, straight.state_dict()[k]) for k, v in resumed.state_dict().items())


def test_augmented_training_deforms_every_image_and_changes_the_weights(glyphs):
    """``options={"augment": {...}}`` moves each support and query image of a training episode."""
    from fslcourse.generative.classical import Deformation
    from fslcourse.training.trainers import deformed

    sampler = EpisodeSampler(glyphs[0], 5, 1, 3, seed=0)
    plain = sampler.sample_batch(2)
    sampler.generator.manual_seed(0)
    streams = {}
    ep = deformed(lambda: sampler.sample_batch(2), Deformation(), streams, seed=0)()
    assert "augment" in streams and ep.support_x.shape == plain.support_x.shape == (2, 5, 1, 28, 28)
    assert torch.equal(ep.support_y, plain.support_y) and torch.equal(ep.classes, plain.classes)
    moved = (ep.query_x - plain.query_x).abs().flatten(2).amax(2)  # (2, 15): each image's largest change
    assert (moved > 0.1).all()
    data, recipe = _data(glyphs), TinyProtoNet.RECIPES["quick"].replace(steps=20, val_every=0)
    a, _ = train("test-tiny-protonet", recipe, data=data, save=False, progress=False, device="cpu")
    b, _ = train("test-tiny-protonet", recipe.replace(options={"augment": {}}), data=data, save=False,
                 progress=False, device="cpu")
    assert not all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())


def test_save_method_is_atomic_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "m.pt"
    save_method(TinyProtoNet(), path, seed=0, profile="quick", train_seconds=1.0)
    before = path.read_bytes()

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        save_method(TinyProtoNet(dim=4), path, seed=0, profile="quick", train_seconds=1.0)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["m.pt"]


def test_pretrained_errors_name_the_fix():
    with pytest.raises(FileNotFoundError, match="python -m fslcourse train test-tiny-protonet --recipe quick"):
        pretrained("test-tiny-protonet")
    assert pretrained("pixel").predict is not None


def test_an_interrupted_generator_run_saves_nothing(glyphs, tmp_path, monkeypatch):
    """Ctrl-C during a generator's training: TrainingStopped, and no checkpoint file."""
    import fslcourse.training.generators as generators
    from fslcourse.generative.diffusion import RECIPES as DIFFUSION
    from fslcourse.methods.protonet import ProtoNet
    from fslcourse.training import load_or_train
    from fslcourse.training.generators import TrainingStopped

    def interrupted_fit(*args, **kwargs):
        kwargs["hook"] = SigintAt(2)
        return fit(*args, **kwargs)

    monkeypatch.setattr(generators, "fit", interrupted_fit)
    torch.manual_seed(0)
    backbone = ProtoNet(backbone_kwargs={"hidden": 8}).backbone
    data = _data(glyphs)
    tiny = {"steps": 5, "n_way": 4, "val_every": 0, "options": {"T": 20}, "model": {"channels": 8}}
    with pytest.raises(TrainingStopped, match="stopped at step 2 .interrupted.; no generator checkpoint was written"):
        load_or_train("diffusion", data=data, backbone=backbone, path=tmp_path / "d.pt", progress=False, changes=tiny)
    assert not (tmp_path / "d.pt").exists() and DIFFUSION["quick"].steps == 10_000


def test_reptile_with_adam_and_mini_batches_resumes_bitwise(glyphs, tmp_path, ctrl_c_after_step):
    """Reptile's paper recipe carries state outside its weights: Adam's moments (buffers) and the stream its
    mini-batches are drawn from (``streams["method"]``); an interrupted run resumes to the same weights."""
    from fslcourse.methods.reptile import Reptile
    data, out = _data(glyphs), tmp_path / "reptile.pt"
    recipe = Reptile.RECIPES["paper"].replace(steps=6, val_every=0, val_episodes=2, state_every=0, options={},
                                              model={**Reptile.RECIPES["paper"].model, "hidden": 4,
                                                     "test_inner_steps": 2})
    with ctrl_c_after_step(Reptile, 3):
        _, stopped = train("reptile", recipe, data=data, out=out, progress=False, eval_episodes=2)
    assert stopped.stopped == "interrupted" and (tmp_path / "reptile.state.pt").exists()
    resumed, result = train("reptile", recipe, data=data, out=out, resume=True, progress=False, eval_episodes=2)
    assert [s["from_step"] for s in result.log.sittings] == [0, 3]  # resumed from the state, not restarted
    straight, _ = train("reptile", recipe, data=data, save=False, progress=False)
    assert int(straight.inner_t) == 6 * 5 * 5 and straight.inner_sq.abs().sum() > 0
    assert all(torch.equal(v, straight.state_dict()[k]) for k, v in resumed.state_dict().items())


def test_a_fresh_start_never_replaces_an_unfinished_runs_state(glyphs, tmp_path, ctrl_c_after_step):
    """A committed training state holds hours of work: starting again without --resume is refused, not obeyed."""
    data, out = _data(glyphs), tmp_path / "tiny.pt"
    recipe = TinyProtoNet.RECIPES["quick"].replace(steps=40)
    with ctrl_c_after_step(TinyProtoNet, 25):
        train("test-tiny-protonet", recipe, data=data, out=out, progress=False, eval_episodes=5)
    state = tmp_path / "tiny.state.pt"
    before = state.read_bytes()
    with pytest.raises(ValueError, match="tiny.state.pt holds an unfinished run; continue it with --resume, or pass "
                                         "--overwrite"):
        train("test-tiny-protonet", recipe, data=data, out=out, progress=False, eval_episodes=5)
    assert state.read_bytes() == before
    _, result = train("test-tiny-protonet", recipe, data=data, out=out, overwrite=True, progress=False,
                      eval_episodes=5)
    assert result.steps == 40 and not state.exists()


def test_validation_draws_no_training_randomness(glyphs):
    """Matching Networks' ``paper-20way`` recipe differs from ``paper`` only in its validation episodes and claims the
    same training steps: validating (with any episodes, or not at all) leaves the training trajectory unchanged."""
    from fslcourse.methods.matching import MatchingNet
    paper, chosen_on_20way = MatchingNet.RECIPES["paper"], MatchingNet.RECIPES["paper-20way"]
    assert paper.replace(val_n_way=20, note=chosen_on_20way.note) == chosen_on_20way
    data = _data(glyphs)
    base = paper.replace(n_way=5, steps=12, val_every=4, val_episodes=3, options={},
                         model={**paper.model, "backbone_kwargs": {"hidden": 4}})
    runs = [train("matching", base.replace(**change), data=data, save=False, progress=False, device="cpu")[1].log
            for change in ({"val_n_way": 5}, {"val_n_way": 3}, {"val_every": 0})]
    assert runs[0].val["accuracy"] != runs[1].val["accuracy"]  # the validations differ...
    assert runs[0].train["loss"] == runs[1].train["loss"] == runs[2].train["loss"]  # ...the training steps do not


def test_max_seconds_caps_each_sitting_so_a_resumed_run_goes_on(glyphs, tmp_path, monkeypatch):
    """The elapsed time used to carry over into the resumed sitting, so each resume ran one step and stopped."""
    import fslcourse.training.loop as loop

    class Clock:  # one second passes at every look at the wall clock
        now = 0.0

        def perf_counter(self):
            self.now += 1.0
            return self.now

        def __getattr__(self, name):
            return getattr(time_module, name)

    import time as time_module
    monkeypatch.setattr(loop, "time", Clock())
    recipe = TinyProtoNet.RECIPES["quick"].replace(steps=40, max_seconds=6.5, val_every=0)
    state = tmp_path / "s.pt"
    first = _fit(TinyProtoNet(), glyphs, recipe, state_path=state)
    assert first.stopped == "max_seconds" and 1 < first.steps < 40
    resumed = _fit(TinyProtoNet(), glyphs, recipe, state_path=state, resume=True)
    assert resumed.stopped == "max_seconds" and resumed.steps - first.steps == first.steps  # the same time again


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (benchmarks/gpu_check.py's machine)")
def test_a_run_resumes_on_a_gpu(glyphs, tmp_path, ctrl_c_after_step):
    """The state was loaded onto the model's device, RNG states too, which must stay on the CPU: resume on a GPU
    stopped with 'RNG state must be a torch.ByteTensor'."""
    data, out = _data(glyphs), tmp_path / "tiny.pt"
    recipe = TinyProtoNet.RECIPES["quick"].replace(steps=40, val_every=0)
    with ctrl_c_after_step(TinyProtoNet, 25):
        train("test-tiny-protonet", recipe, data=data, out=out, progress=False, eval_episodes=5, device="cuda")
    _, result = train("test-tiny-protonet", recipe, data=data, out=out, resume=True, progress=False,
                      eval_episodes=5, device="cuda")
    assert [s["from_step"] for s in result.log.sittings] == [0, 25] and result.steps == 40


def test_a_state_resumes_only_the_method_that_wrote_it(glyphs, tmp_path):
    """maml and fomaml share their recipes: fomaml's 42,000-step state resumed as maml without a word."""
    recipe = TinyProtoNet.RECIPES["quick"].replace(steps=30, val_every=0, state_every=10)
    state = tmp_path / "run.state.pt"
    _fit(TinyProtoNet(), glyphs, recipe, state_path=state, hook=SigintAt(12), label="fomaml")
    with pytest.raises(ValueError, match=r"^the training state .*run.state.pt was written by a run of fomaml, not "
                                         r"maml; resume it with fomaml, or give maml another state file$"):
        _fit(TinyProtoNet(), glyphs, recipe, state_path=state, resume=True, label="maml")
    # another method's recipe differs as well: the message still names the method, the cause
    with pytest.raises(ValueError, match=r"written by a run of fomaml, not protonet"):
        _fit(TinyProtoNet(), glyphs, recipe.replace(lr=0.5), state_path=state, resume=True, label="protonet")
    older = torch.load(state, weights_only=True)
    assert _fit(TinyProtoNet(), glyphs, recipe, state_path=state, resume=True, label="fomaml").steps == 30
    del older["label"]  # a state written before states were labelled (the committed paper-20way ones) still resumes
    torch.save(older, state)
    assert _fit(TinyProtoNet(), glyphs, recipe, state_path=state, resume=True, label="maml").steps == 30


def test_ctrl_c_in_the_final_validation_keeps_every_step(glyphs, tmp_path):
    """The state was written only before the last step: Ctrl-C in the final validation (or in the test evaluation
    after it) lost up to state_every steps, and the whole run when steps <= state_every."""
    recipe = TinyProtoNet.RECIPES["quick"].replace(steps=30, val_every=0, state_every=20)
    state = tmp_path / "run.state.pt"
    sampler = EpisodeSampler(glyphs[0], recipe.n_way, recipe.n_shot, recipe.n_query, seed=recipe.seed)
    model = TinyProtoNet()

    def validate(_model):
        raise KeyboardInterrupt  # the second Ctrl-C of an impatient user, in the final validation

    with pytest.raises(KeyboardInterrupt):
        fit(model, lambda: sampler.sample_batch(1), recipe, optimizer=torch.optim.Adam(model.parameters()),
            validate=validate, streams={"episodes": sampler.generator}, state_path=state, progress=False)
    assert torch.load(state, weights_only=True)["step"] == 30
    steps = []
    resumed = _fit(TinyProtoNet(), glyphs, recipe, state_path=state, resume=True,
                   hook=type("Count", (Hook,), {"after_step": lambda self, m, step, s: steps.append(step)})())
    assert resumed.steps == 30 and steps == [] and resumed.log.val_step == [30]  # straight to the validation


@pytest.mark.parametrize("changes", [{"val_every": 0, "val_episodes": 0}, {"val_episodes": 1}])
def test_too_few_validation_episodes_fail_before_the_first_step(glyphs, tmp_path, changes):
    """Accepted by Recipe, they failed at the final validation: after the whole run, with nothing saved."""
    recipe = TinyProtoNet.RECIPES["quick"].replace(steps=40, **changes)
    with pytest.raises(ValueError, match=rf"^recipe val_episodes={changes['val_episodes']}, but a method is "
                                         r"validated at the end of its run .* raise val_episodes$"):
        train("test-tiny-protonet", recipe, data=_data(glyphs), out=tmp_path / "t.pt", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_load_or_train_at_another_seed_never_trains_into_the_packages_file(glyphs, tmp_path, monkeypatch, capsys):
    """The package's NAME-RECIPE.pt is what the recipe unchanged makes: a notebook run at another seed (papermill
    -p seed 1) on a machine without the file trained it at that seed and saved it there. It is trained and kept in
    memory, and said; at the recipe's seed it is saved as before. A generator family or the sinusoid: the same."""
    import importlib

    import fslcourse.training.api as api
    import fslcourse.training.generators as G
    from fslcourse.training import load_or_train

    pre = importlib.import_module("fslcourse.pretrained")  # the module (the package exports a function of that name)
    for module in (pre, G):  # an empty package folder
        monkeypatch.setattr(module, "CHECKPOINT_DIR", tmp_path)
    out = load_or_train("test-tiny-protonet", data=_data(glyphs), seed=3, progress=False, device="cpu")
    assert out["trained"] and out["checkpoint"] is None and out["result"].steps == 60
    assert list(tmp_path.iterdir()) == []
    assert ("test-tiny-protonet: seed=3 is not the quick recipe's (0), so what is trained now is not saved to the "
            "package's test-tiny-protonet-quick.pt; give path= a file to keep it") in capsys.readouterr().err
    load_or_train("test-tiny-protonet", data=_data(glyphs), seed=0, progress=False, device="cpu")
    assert [p.name for p in tmp_path.iterdir()] == ["test-tiny-protonet-quick.pt"]

    saved = []
    monkeypatch.setitem(api.LOADERS, "vae", lambda data, recipe, **kw: saved.append(kw["save"]) or {})
    load_or_train("vae", data=object(), seed=2)
    assert saved == [False] and "vae: seed=2 is not the quick recipe's (0)" in capsys.readouterr().err
    load_or_train("vae", data=object(), seed=0)
    load_or_train("vae", data=object(), seed=2, path=tmp_path / "mine.pt")  # a file of the caller's: saved there
    assert saved == [False, True, True]


def test_a_path_under_the_home_is_read_as_a_shell_reads_it(tmp_path, monkeypatch):
    """load_or_train(path="~/models/p.pt") never found the file saved there: "~" was taken as a folder of that name
    in the working directory, so each run trained anew (minutes) and wrote ./~/models/p.pt."""
    from fslcourse.training import load_or_train

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    save_method(TinyProtoNet(), tmp_path / "home" / "models" / "p.pt", seed=0, profile="quick", train_seconds=1.0)
    got = load_or_train("test-tiny-protonet", data=object(), path="~/models/p.pt", progress=False, device="cpu")
    assert not got["trained"] and got["source"]["file"] == "p.pt"
    with pytest.raises(ValueError, match=r"home/models/p\.pt exists; pass overwrite=True"):
        train("test-tiny-protonet", data=object(), out="~/models/p.pt", progress=False)
    assert not (tmp_path / "~").exists()


def test_a_notebook_cell_stopped_mid_run_continues_when_run_again(glyphs, tmp_path, ctrl_c_after_step):
    """load_or_train left the state beside the checkpoint; running the cell again was refused ('continue it with
    --resume, or pass --overwrite'), and load_or_train takes neither for a method: no way on but deleting files."""
    from fslcourse.training import load_or_train

    path = tmp_path / "tiny.pt"
    with ctrl_c_after_step(TinyProtoNet, 25):
        first = load_or_train("test-tiny-protonet", data=_data(glyphs), path=path, progress=False, device="cpu")
    assert first["result"].stopped == "interrupted" and (tmp_path / "tiny.state.pt").exists() and not path.exists()
    again = load_or_train("test-tiny-protonet", data=_data(glyphs), path=path, progress=False, device="cpu")
    assert [s["from_step"] for s in again["result"].log.sittings] == [0, 25] and again["result"].steps == 60
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.pt"] and again["checkpoint"]["steps"] == 60


def test_a_run_that_saves_nothing_starts_afresh_beside_a_stopped_runs_state(glyphs, tmp_path, ctrl_c_after_step):
    """save=False trains in memory from step 0: it neither continues the state a stopped run left (that run is
    the one --resume or a saving call continues) nor touches it."""
    from fslcourse.training import load_or_train

    path = tmp_path / "tiny.pt"
    with ctrl_c_after_step(TinyProtoNet, 25):
        load_or_train("test-tiny-protonet", data=_data(glyphs), path=path, progress=False, device="cpu")
    state = tmp_path / "tiny.state.pt"
    before = state.read_bytes()
    fresh = load_or_train("test-tiny-protonet", data=_data(glyphs), path=path, save=False, progress=False,
                          device="cpu")
    assert [s["from_step"] for s in fresh["result"].log.sittings] == [0] and fresh["result"].steps == 60
    assert fresh["checkpoint"] is None and not path.exists() and state.read_bytes() == before


def test_the_interruption_message_names_the_state_on_disk(glyphs, tmp_path, capsys):
    """A second Ctrl-C abandons the step and writes nothing: the message still said 'the training state is in X
    (resume with --resume)' when X did not exist, or held an earlier step than the one printed."""
    recipe = TinyProtoNet.RECIPES["quick"].replace(steps=30, val_every=0, state_every=5)
    state = tmp_path / "run.state.pt"
    first = _fit(Interrupting(), glyphs, recipe, state_path=state)  # KeyboardInterrupt inside step 7
    assert first.stopped == "interrupted" and first.steps == 6 and first.state_step == 5
    assert torch.load(state, weights_only=True)["step"] == 5
    assert f"the training state of step 5 is in {state} (resume with --resume)" in capsys.readouterr().out
    state.unlink()
    none = _fit(Interrupting(), glyphs, recipe.replace(state_every=20), state_path=state)
    assert none.state_step is None and not state.exists()
    assert "no training state was written (a new run starts again)" in capsys.readouterr().out
    assert _fit(TinyProtoNet(), glyphs, recipe, state_path=state, hook=SigintAt(12)).state_step == 12


def test_the_log_plots_accuracies_in_percent_once():
    """The hallucinator logged percent and plot() multiplied by 100 again: gan-quick.pt's history showed 9820 %."""
    import matplotlib

    from fslcourse.training.log import TrainLog, in_percent

    matplotlib.use("Agg")
    assert in_percent([0.5, 1.0]) == [50.0, 100.0] and in_percent([50.0, 100.0]) == [50.0, 100.0]
    fraction = TrainLog(step=[1, 2], train={"loss": [1.0, 0.5], "accuracy": [0.5, 0.75], "accuracy_real": [0.25, 0.5]})
    percent = TrainLog(step=[1, 2], train={"accuracy": [50.0, 75.0]})  # as the committed gan-quick.pt holds it
    for log, top in ((fraction, 75.0), (percent, 75.0)):
        for ax in log.plot(smooth_over=1).axes:
            if ax.get_title().startswith("accuracy"):
                assert ax.get_ylabel().endswith("(%)") and max(ax.lines[0].get_ydata()) <= top
    assert max(fraction.plot(smooth_over=1).axes[2].lines[0].get_ydata()) == 50.0  # accuracy_real in percent too
    from fslcourse.data.episodes import Episode
    from fslcourse.generative.hallucinator import FeatureHallucinator

    torch.manual_seed(0)
    model = FeatureHallucinator(feature_dim=4, z_dim=2, hidden=8)
    y = torch.arange(3).repeat_interleave(2)  # (6,)
    ep = Episode(torch.randn(6, 4), y, torch.randn(6, 4), y, torch.arange(3), 3, 2, 2)
    stats = model.train_step({"episode": ep, "n_generated": 2, "generator": torch.Generator().manual_seed(0)},
                             torch.optim.SGD(model.parameters(), lr=0.0))
    assert 0 <= stats["accuracy"] <= 1 and 0 <= stats["accuracy_real"] <= 1  # fractions, as plot() expects


def test_a_recipe_object_needs_out_and_a_loaded_file_must_hold_the_recipe_asked_for(glyphs, tmp_path):
    from fslcourse.training import load_or_train

    with pytest.raises(ValueError, match=r"^a Recipe object has no checkpoint of its own in the package; give out= "
                                         r"a file for this test-tiny-protonet run, or save=False$"):
        train("test-tiny-protonet", TinyProtoNet.RECIPES["quick"].replace(steps=5), data=_data(glyphs))
    path = tmp_path / "tiny.pt"
    save_method(TinyProtoNet(), path, seed=0, profile="quick", train_seconds=1.0)
    assert load_or_train("test-tiny-protonet", "quick", path=path, data=object())["trained"] is False
    with pytest.raises(ValueError, match=r"tiny.pt holds test-tiny-protonet trained with recipe 'quick', not "
                                         r"'full'; ask for recipe 'quick', or retrain"):
        load_or_train("test-tiny-protonet", "full", path=path, data=object())


def test_a_finished_run_leaves_no_state_behind(glyphs, tmp_path):
    """With save=False and a state file, the last-step state stayed, and the same call again was refused as an
    unfinished run; with save=True, result.state_step named the state train() had just deleted."""
    recipe = TinyProtoNet.RECIPES["quick"].replace(steps=10, val_every=0, state_every=5)
    state = tmp_path / "run.state.pt"
    for _ in range(2):
        _, result = train("test-tiny-protonet", recipe, data=_data(glyphs), save=False, state=state, progress=False)
        assert result.steps == 10 and result.state_step is None and not state.exists()
    _, saved = train("test-tiny-protonet", recipe, data=_data(glyphs), out=tmp_path / "t.pt", progress=False,
                     eval_episodes=5)
    assert saved.state_step is None and sorted(p.name for p in tmp_path.iterdir()) == ["t.pt"]


def test_ctrl_c_while_the_state_is_written_names_the_state_on_disk(glyphs, tmp_path, monkeypatch, capsys):
    import fslcourse.training.loop as loop

    real, calls = loop.atomic_torch_save, []

    def second_write_interrupted(obj, path):
        calls.append(obj["step"])
        if len(calls) == 2:
            raise KeyboardInterrupt  # the second Ctrl-C, during the write: the file keeps step 5
        return real(obj, path)

    monkeypatch.setattr(loop, "atomic_torch_save", second_write_interrupted)
    state = tmp_path / "run.state.pt"
    result = _fit(TinyProtoNet(), glyphs, TinyProtoNet.RECIPES["quick"].replace(steps=30, val_every=0, state_every=5),
                  state_path=state)
    assert calls == [5, 10] and result.state_step == 5 and torch.load(state, weights_only=True)["step"] == 5
    assert "the training state of step 5 is in" in capsys.readouterr().out


def test_an_unlabelled_state_named_after_another_method_is_not_resumed(glyphs, tmp_path, ctrl_c_after_step):
    """States written before they named their method (the committed fomaml-paper-20way one, still being written
    by a run started then) fall back to their file name: `train maml --state fomaml-....state.pt` is refused."""
    recipe = TinyProtoNet.RECIPES["quick"].replace(steps=40, val_every=0)
    state = tmp_path / "protonet-custom.state.pt"  # as `train protonet` names a state of a Recipe-object run
    with ctrl_c_after_step(TinyProtoNet, 5):
        train("test-tiny-protonet", recipe, data=_data(glyphs), save=False, state=state, progress=False)
    old = torch.load(state, weights_only=True)
    del old["label"]
    torch.save(old, state)
    with pytest.raises(ValueError, match=r"protonet-custom.state.pt is the state of a protonet run \(its file name "
                                         r"says so\); resume it with train\('protonet', <its Recipe>, state=\.\.\., "
                                         r"resume=True\), or give test-tiny-protonet another state file$"):
        train("test-tiny-protonet", recipe, data=_data(glyphs), save=False, state=state, resume=True, progress=False)


def test_an_accelerators_generator_is_saved_and_restored(glyphs, tmp_path, monkeypatch):
    """Dropout on a GPU draws from the GPU's generator, which the state did not hold (the CPU stands in here)."""
    import fslcourse.training.loop as loop

    assert loop._accelerator_generator(torch.device("cpu")) is None  # the CPU's generator is saved apart
    restored = []
    monkeypatch.setattr(loop, "_accelerator_generator", lambda device: (lambda: torch.tensor([7, 8], dtype=torch.uint8),
                                                                        restored.append))
    recipe = TinyProtoNet.RECIPES["quick"].replace(steps=20, val_every=0, state_every=5)
    state = tmp_path / "run.state.pt"
    _fit(TinyProtoNet(), glyphs, recipe, state_path=state, hook=SigintAt(7))
    assert torch.load(state, weights_only=True)["gpu_rng"].tolist() == [7, 8]
    _fit(TinyProtoNet(), glyphs, recipe, state_path=state, resume=True)
    assert [t.tolist() for t in restored] == [[7, 8]]


@pytest.mark.parametrize("changes, says", [
    ({"eval_episodes": 1}, "eval_episodes=1: .* 2 or more"), ({"eval_episodes": 0}, "eval_episodes=0"),
    ({"eval_episodes": 2.5}, "eval_episodes=2.5"),
    ({"val_n_shot": 15, "val_n_query": 15}, "val_n_shot=15, val_n_query=15: the validation episodes cannot be drawn"),
    ({"val_n_way": 5000}, "val_n_way=5000")])
def test_bad_test_and_validation_settings_are_refused_before_any_step(glyphs, tmp_path, monkeypatch, changes, says):
    # they were found only after the run (eval_episodes) or at the first validation, val_every steps in
    steps, step = [], TinyProtoNet.train_step
    monkeypatch.setattr(TinyProtoNet, "train_step", lambda self, *a: steps.append(1) or step(self, *a))
    with pytest.raises(ValueError, match=says):
        train("test-tiny-protonet", "quick", data=_data(glyphs), out=tmp_path / "t.pt", progress=False, device="cpu",
              **changes)
    assert steps == [] and not (tmp_path / "t.pt").exists()


def test_out_with_save_false_is_refused(glyphs, tmp_path):
    with pytest.raises(ValueError, match="with save=False: nothing would be written there"):
        train("test-tiny-protonet", "quick", data=_data(glyphs), out=tmp_path / "t.pt", save=False, progress=False)


def test_load_or_train_without_saving_trains_and_writes_nothing(glyphs, tmp_path):
    from fslcourse.training import load_or_train

    out = load_or_train("test-tiny-protonet", data=_data(glyphs), device="cpu", progress=False, save=False,
                        path=tmp_path / "x.pt")
    assert out["trained"] and out["checkpoint"] is None and not (tmp_path / "x.pt").exists()


@pytest.mark.parametrize("n", [0, -1, 1.5, True, None])
def test_an_mtl_recipe_without_drawable_hard_tasks_is_refused_before_phase_1(n):
    """options hard_tasks=0 trained phase 1 and the start of phase 2, then failed inside torch.stack at the first
    hard-task batch; it is refused first, with the fix (and model hard_tasks=False is no refusal)."""
    from fslcourse.methods import get_method
    from fslcourse.training.trainers import check_hard_tasks

    recipe = get_method("mtl").RECIPES["quick"]
    recipe = recipe.replace(options={**recipe.options, "hard_tasks": n})
    with pytest.raises(ValueError, match=rf"^recipe options hard_tasks={n!r}: give the tasks of a hard-task batch"):
        train("mtl", recipe, data=object(), save=False, progress=False, device="cpu")
    check_hard_tasks(recipe.replace(model={"hard_tasks": False}))
    check_hard_tasks(get_method("mtl").RECIPES["quick"])


class Counter(nn.Module):
    """A model whose one weight counts its training steps; it records the rate and the mode each step ran with."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))
        self.lrs, self.modes = [], []

    def train_step(self, batch, optimizer):
        self.lrs.append(optimizer.param_groups[0]["lr"])
        self.modes.append(self.training)
        self.w.grad = torch.zeros(())
        optimizer.step()  # a zero gradient: the schedule is read, the weight moves only below
        with torch.no_grad():
            self.w += 1  # in place, as every optimizer updates a weight
        return {"loss": 0.0}


SCORES = {2: 5.0, 4: 9.0, 6: 9.0, 8: 1.0}  # validation score by step: best at 4, tied at 6


def _scored(model):
    model.eval()  # as evaluate() does
    return {"score": SCORES[round(model.w.item())]}


class Record(Hook):
    """Counts its steps (its run-state) and the steps whose training state it was told are on disk."""

    def __init__(self, sigint_at=None):
        self.n, self.on_disk, self.sigint_at = 0, [], sigint_at

    def after_step(self, model, step, stats):
        self.n += 1
        if step == self.sigint_at:
            os.kill(os.getpid(), signal.SIGINT)

    def state_on_disk(self, step):
        self.on_disk.append(step)

    def state_dict(self):
        return {"n": self.n}

    def load_state_dict(self, state):
        self.n = state["n"]


def _count(recipe, **kw):
    model = Counter()
    opt = torch.optim.SGD(model.parameters(), lr=recipe.lr)
    from fslcourse.training.schedules import make_scheduler
    return model, fit(model, lambda: None, recipe, optimizer=opt, scheduler=make_scheduler(opt, recipe),
                      validate=_scored, progress=False, **kw)


COUNT = Recipe(steps=8, lr=1.0, schedule="linear", val_every=2, state_every=2)


def test_fit_returns_the_first_best_weights_and_steps_each_at_its_scheduled_rate():
    """Mutants that passed: the last weights returned (or the best ones kept as views of the weights the next
    steps change in place), a later tie taken as the best, the schedule stepped before the step it schedules,
    the weights left in eval mode after a validation, and the log's steps numbered from 0."""
    model, result = _count(COUNT)
    assert result.best_step == 4 and result.best_score == 9.0 and model.w.item() == 4.0
    assert model.lrs == [1 - t / 8 for t in range(8)]  # the linear schedule's closed form, step t at rate(t)
    assert model.modes == [True] * 8
    assert result.log.step == list(range(1, 9)) and result.log.val_step == [2, 4, 6, 8]


def test_a_resumed_run_keeps_the_best_weights_hook_state_and_clock_of_its_first_sitting(tmp_path, monkeypatch):
    """Mutants that passed: the best score, step and weights of before the interruption forgotten at the resume
    (or its best step saved as the step of the state), the hook's run-state not restored, the hook not told which
    state it resumed from, the wall and CPU clocks restarted at 0, and a validation run after the Ctrl-C."""
    import fslcourse.training.loop as loop

    class Clock:  # one second at every look at either clock
        now = 0.0

        def tick(self):
            self.now += 1.0
            return self.now

        perf_counter = process_time = tick

        def __getattr__(self, name):
            return getattr(time_module, name)

    import time as time_module
    monkeypatch.setattr(loop, "time", Clock())
    state = tmp_path / "run.state.pt"
    first_hook = Record(sigint_at=5)
    _, first = _count(COUNT, state_path=state, hook=first_hook)
    assert first.stopped == "interrupted" and first.steps == 5 and first.log.val_step == [2, 4]
    assert first_hook.on_disk == [2, 4, 5] and first_hook.n == 5
    held = torch.load(state, weights_only=True)
    assert (held["best_step"], held["best_score"], float(held["best_state"]["w"])) == (4, 9.0, 4.0)
    hook = Record()
    model, resumed = _count(COUNT, state_path=state, resume=True, hook=hook)
    assert resumed.steps == 8 and [s["from_step"] for s in resumed.log.sittings] == [0, 5]
    assert resumed.best_step == 4 and resumed.best_score == 9.0 and model.w.item() == 4.0
    assert hook.n == 8 and hook.on_disk == [5, 6, 8]
    for clock in (resumed.log.seconds, resumed.log.cpu_seconds):
        assert all(a < b for a, b in zip(clock, clock[1:])), clock  # one clock over both sittings
    assert resumed.seconds > held["seconds"] and resumed.cpu_seconds > held["cpu_seconds"]


def test_a_second_ctrl_c_just_after_a_resume_names_the_state_resumed_from(tmp_path, capsys):
    """The state a run resumed from is on disk: a mutant forgot it and said no state was written."""
    state = tmp_path / "run.state.pt"
    _count(COUNT, state_path=state, hook=Record(sigint_at=5))

    class Abandoned(Counter):
        def train_step(self, batch, optimizer):
            raise KeyboardInterrupt

    model = Abandoned()
    result = fit(model, lambda: None, COUNT, optimizer=torch.optim.SGD(model.parameters(), lr=1.0), validate=_scored,
                 state_path=state, resume=True, progress=False)
    assert result.stopped == "interrupted" and result.state_step == 5 and result.best_step == 4
    assert f"the training state of step 5 is in {state}" in capsys.readouterr().out


def test_the_checkpoint_records_the_runs_seed_and_the_fixed_test_episodes_accuracy(glyphs, tmp_path):
    """write_checkpoint records the seed the run was trained with (not 0) and measures the model on the fixed
    meta-test episodes (seed 0, whatever the training seed): the recorded accuracy is what evaluate() gives there."""
    recipe = TinyProtoNet.RECIPES["quick"].replace(steps=5, val_every=0, seed=3)
    out = tmp_path / "t.pt"
    model, _ = train("test-tiny-protonet", recipe, data=_data(glyphs), out=out, progress=False, device="cpu",
                     eval_episodes=6)
    ckpt = torch.load(out, weights_only=True)
    assert ckpt["seed"] == 3 and ckpt["recipe"] == recipe.as_dict() and ckpt["recipe_name"] == "custom"
    protocol = ckpt["metrics"]["protocol"]
    assert protocol == {"split": "test", "n_way": 5, "n_shot": 1, "n_query": 15, "n_episodes": 6, "seed": 0}
    reference = evaluate(model, glyphs[2], 5, 1, 15, 6, seed=0)
    assert ckpt["metrics"]["test_accuracy"] == reference.accuracy
    assert ckpt["metrics"]["test_episode_accuracies"] == reference.episode_accuracies


def test_resume_without_a_state_is_refused_before_any_step(glyphs, tmp_path, monkeypatch):
    """Without the check (only state=None refused), `train protonet --resume` with no state on disk loaded Omniglot
    and trained from step 0 (hours for a paper recipe): test_bad_inputs' case for it hung instead of failing."""
    steps, step = [], TinyProtoNet.train_step
    monkeypatch.setattr(TinyProtoNet, "train_step", lambda self, *a: steps.append(1) or step(self, *a))
    with pytest.raises(ValueError, match=r"^nothing to resume: no training state at .*t\.state\.pt; start without "
                                         r"--resume$"):
        train("test-tiny-protonet", data=_data(glyphs), out=tmp_path / "t.pt", resume=True, progress=False)
    assert steps == [] and list(tmp_path.iterdir()) == []


def test_the_checkpoints_training_time_counts_phase_1(glyphs, tmp_path):
    """MTL's phase-2 checkpoint records phase 1's time in train_seconds (the method's whole cost), and in run."""
    from fslcourse.training.api import write_checkpoint

    recipe = TinyProtoNet.RECIPES["quick"].replace(steps=3, val_every=0)
    model, result = train("test-tiny-protonet", recipe, data=_data(glyphs), save=False, progress=False)
    out = write_checkpoint(model, tmp_path / "t.pt", name="test-tiny-protonet", recipe_name="custom", recipe=recipe,
                           result=result, data=_data(glyphs), device="cpu", eval_episodes=2,
                           extra={"phase1_seconds": 7.5})
    ckpt = torch.load(out, weights_only=True)
    assert ckpt["train_seconds"] == pytest.approx(result.seconds + 7.5) and ckpt["run"] == {"phase1_seconds": 7.5}
