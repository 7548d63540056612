"""Shared fixtures: small procedural splits for fast tests, Omniglot when FSLCOURSE_DATA has it."""
import os

import matplotlib
import pytest

matplotlib.use("Agg")


@pytest.fixture(scope="session")
def glyphs():
    """(train, val, test) procedural glyph splits; no files needed."""
    from fslcourse.data import glyph_splits

    return glyph_splits(seed=0)


@pytest.fixture(scope="session")
def omniglot():
    """The Omniglot splits; fails in CI if the data is missing, skips elsewhere."""
    from fslcourse.data import find_omniglot, load_omniglot

    if find_omniglot() is None:
        if os.environ.get("CI"):
            pytest.fail("Omniglot not found in CI: FSLCOURSE_DATA must point at ../shared/data")
        pytest.skip("Omniglot not found; set FSLCOURSE_DATA")
    return load_omniglot(progress=False)


@pytest.fixture(scope="session")
def check_support_permutation():
    """``check(model, seed, n_way, n_shot, atol)``: a few-shot classifier's two symmetries.

    Shuffling the support set changes no logit; renaming the classes permutes the logit columns.
    Session-scoped so hypothesis ``@given`` tests can use it.
    """
    import torch

    def check(model, seed: int, n_way: int, n_shot: int, atol: float) -> None:
        g = torch.Generator().manual_seed(seed)
        sx = torch.rand(n_way * n_shot, 1, 28, 28, generator=g)
        sy = torch.arange(n_way).repeat_interleave(n_shot)
        qx = torch.rand(3, 1, 28, 28, generator=g)
        perm, relabel = torch.randperm(len(sy), generator=g), torch.randperm(n_way, generator=g)
        with torch.no_grad():
            base = model.predict(sx, sy, qx)
            shuffled = model.predict(sx[perm], sy[perm], qx)
            renamed = model.predict(sx, relabel[sy], qx)
        assert torch.allclose(base, shuffled, atol=atol, rtol=1e-5)
        assert torch.allclose(renamed[:, relabel], base, atol=atol, rtol=1e-5)

    return check


@pytest.fixture(scope="session")
def random_episode():
    """``make(n_way=4, n_shot=2, n_query=3, seed=0) -> (support_x, support_y, query_x, query_y)``: random
    images, class-major labels; for tests of a method's logits (no data files needed)."""
    import torch

    def make(n_way=4, n_shot=2, n_query=3, seed=0):
        g = torch.Generator().manual_seed(seed)
        sx = torch.rand(n_way * n_shot, 1, 28, 28, generator=g)
        qx = torch.rand(n_way * n_query, 1, 28, 28, generator=g)
        return sx, torch.arange(n_way).repeat_interleave(n_shot), qx, torch.arange(n_way).repeat_interleave(n_query)

    return make


@pytest.fixture
def ctrl_c_after_step(monkeypatch):
    """``with ctrl_c_after_step(cls, n):`` while inside, ``cls.train_step`` sends this process SIGINT as its
    ``n``-th call starts (Ctrl-C in the middle of a run)."""
    import contextlib
    import signal

    @contextlib.contextmanager
    def interrupt(cls, n: int):
        original, calls = cls.train_step, {"n": 0}

        def step_then_ctrl_c(self, batch, optimizer):
            calls["n"] += 1
            if calls["n"] == n:
                os.kill(os.getpid(), signal.SIGINT)
            return original(self, batch, optimizer)

        monkeypatch.setattr(cls, "train_step", step_then_ctrl_c)
        yield
        monkeypatch.setattr(cls, "train_step", original)

    return interrupt
