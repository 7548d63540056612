"""The shared training loop: it learns, keeps the best model, survives Ctrl-C, and checkpoints atomically."""
import pytest
import torch
from torch import nn

from fslcourse.data import EpisodeSampler
from fslcourse.evaluate import evaluate
from fslcourse.methods.base import FewShotClassifier, prototypes, register
from fslcourse.pretrained import load_method, pretrained, save_method
from fslcourse.train import fit, load_or_train


@register("test-tiny-protonet")
class TinyProtoNet(FewShotClassifier):
    """A linear embedding with nearest-prototype logits: small enough to train in a second."""

    def __init__(self, dim: int = 16, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.dim, self.seed = dim, seed
        self.embed = nn.Sequential(nn.AvgPool2d(2), nn.Flatten(), nn.Linear(196, dim))

    def config(self):
        return {"dim": self.dim, "seed": self.seed}

    def predict(self, support_x, support_y, query_x):
        n_way = self.check_support(support_x, support_y, query_x)
        return -torch.cdist(self.embed(query_x), prototypes(self.embed(support_x), support_y, n_way)).pow(2)


class Interrupting(TinyProtoNet):
    """Raises KeyboardInterrupt at step ``stop_at``, as the notebook's stop button does."""

    stop_at = 7

    def train_step(self, batch, optimizer):
        self.calls = getattr(self, "calls", 0) + 1
        if self.calls == self.stop_at:
            raise KeyboardInterrupt
        return super().train_step(batch, optimizer)


def _fit(model, glyphs, **kw):
    args = dict(n_way=5, n_shot=1, n_query=3, steps=60, val_every=20, val_episodes=20, progress=False,
                optimizer=torch.optim.Adam(model.parameters(), lr=3e-3))
    args.update(kw)
    return fit(model, glyphs[0], glyphs[1], **args)


def test_fit_learns_and_keeps_the_best(glyphs):
    model = TinyProtoNet()
    before = evaluate(model, glyphs[1], 5, 1, 5, 20, seed=0).accuracy
    result = _fit(model, glyphs)
    assert result.steps == 60 and result.history.val_step == [20, 40, 60]
    assert result.best_val_accuracy == max(result.history.val_accuracy)
    after = evaluate(result.model, glyphs[1], 5, 1, 5, 20, seed=0).accuracy
    assert after == pytest.approx(result.best_val_accuracy)  # the returned weights are the best ones
    assert after > before + 5, (before, after)
    fig = result.history.plot()
    assert len(fig.axes) == 2


def test_interrupt_keeps_best_and_says_so(glyphs, capsys):
    model = Interrupting()
    result = _fit(model, glyphs, val_every=3)
    assert result.interrupted and result.steps == 6
    assert result.best_step in (3, 6)
    out = capsys.readouterr().out
    assert "Training interrupted at step 6; kept the best model so far (meta-validation" in out


def test_checkpoint_roundtrip_and_load_or_train(glyphs, tmp_path):
    path = tmp_path / "tiny.pt"
    model = TinyProtoNet(dim=8)
    result = _fit(model, glyphs, steps=20, val_every=10, checkpoint=path)
    assert path.exists() and [p.name for p in tmp_path.iterdir()] == ["tiny.pt"]  # no temp files left
    loaded, ckpt = load_method(path)
    assert ckpt["config"] == {"dim": 8, "seed": 0} and ckpt["metrics"]["step"] == result.best_step
    ep = EpisodeSampler(glyphs[2], 5, 1, 2, seed=0).sample()
    with torch.no_grad():
        assert torch.allclose(loaded.predict(ep.support_x, ep.support_y, ep.query_x),
                              result.model.predict(ep.support_x, ep.support_y, ep.query_x))
    calls = []
    m, ck, fr = load_or_train(path, lambda: calls.append(1))
    assert calls == [] and fr is None and ck["method"] == "test-tiny-protonet"
    other = tmp_path / "new.pt"
    m, ck, fr = load_or_train(other, lambda: _fit(TinyProtoNet(), glyphs, steps=5, val_every=5, checkpoint=other))
    assert fr is not None and other.exists()


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
    with pytest.raises(FileNotFoundError, match="python -m fslcourse train test-tiny-protonet --profile quick"):
        pretrained("test-tiny-protonet")
    assert pretrained("pixel").predict is not None
