"""Training recipes of MAML, first-order MAML and Reptile (what ``python -m fslcourse train maml`` runs).

Taught in ``notebooks/04_maml.ipynb``.

The ``full`` recipes follow the papers (Finn et al. 2017, arXiv:1703.03400:
64 filters, α = 0.4, one inner step, meta-batch 32, Adam 1e-3; Nichol et al.
2018, arXiv:1803.02999: 5 inner steps, ε annealed; the quick Reptile takes 5 inner steps of
size 0.2 on 2 images per class of 2 twenty-way tasks per step, with a zero head, for 1500 steps:
about the CPU time of the quick MAML recipe). The ``quick`` recipes are
tuned for a 2-core CPU: a fixed number of steps (so a seed gives the same
model on any machine; MAML's 2400 steps take about 300 CPU-seconds with one
thread, under five minutes on a quiet 2-core CPU), 32 filters, small
meta-batches and queries, and a larger meta learning rate annealed to zero
(cosine), so that many more meta-updates fit in a few minutes. The quick MAML and
FOMAML recipes also use the zeroing trick (``zero_head=True``, Kao et al. 2022,
arXiv:2106.15367) and train on 20-way episodes (2 per meta-batch: as many images per
step as 8 five-way episodes), which a zero head allows; they are tested 5-way.
``budget_seconds`` additionally stops a run after that much wall time.
"""
from __future__ import annotations

import torch

from ..config import get_profile

_MAML_QUICK = dict(model=dict(hidden=32, inner_lr=0.4, inner_steps=1, test_inner_steps=1, zero_head=True),
                   n_way=20, n_shot=1, n_query=3, meta_batch=2, lr=5e-3, cosine=True, budget_seconds=None,
                   steps=2400, val_every=300, val_episodes=100)
_MAML_FULL = dict(model=dict(hidden=64, inner_lr=0.4, inner_steps=1, test_inner_steps=3),
                  n_shot=1, n_query=15, meta_batch=32, lr=1e-3, cosine=False, budget_seconds=None, steps=60_000,
                  val_every=1000, val_episodes=500)
RECIPES = {
    ("maml", "quick"): _MAML_QUICK,
    ("maml", "full"): _MAML_FULL,
    ("fomaml", "quick"): _MAML_QUICK,
    ("fomaml", "full"): _MAML_FULL,
    ("reptile", "quick"): dict(model=dict(hidden=32, inner_lr=0.2, inner_steps=5, test_inner_steps=10, zero_head=True),
                               n_way=20, n_shot=1, n_query=1, meta_batch=2, lr=1.0, cosine=True, budget_seconds=None,
                               steps=1500, val_every=250, val_episodes=100),
    ("reptile", "full"): dict(model=dict(hidden=64, inner_lr=0.4, inner_steps=5, test_inner_steps=50),
                              n_shot=1, n_query=9, meta_batch=5, lr=1.0, cosine=True, budget_seconds=None,
                              steps=100_000, val_every=1000, val_episodes=500),
}

# How the committed quick checkpoints differ from the quick recipes: trained longer, off-line
# (``python benchmarks/train_maml_family.py maml --committed``). maml-quick.pt: 64 filters (the
# paper's width) and 10,000 meta-steps, about 2200 CPU-seconds with one thread; the others are
# exactly their quick recipes. ``python -m fslcourse train`` and the notebooks' "else train" run
# the quick recipes themselves (a few minutes).
COMMITTED = {
    "maml": dict(steps=10_000, val_every=500, model=dict(_MAML_QUICK["model"], hidden=64)),
    "fomaml": {},
    "reptile": {},
}


def recipe(name: str, profile: str = "quick") -> dict:
    """A copy of the recipe of method ``name`` (``maml``, ``fomaml``, ``reptile``) for ``profile``."""
    get_profile(profile)
    if (name, profile) not in RECIPES:
        raise ValueError(f"no recipe for method {name!r}; use one of maml, fomaml, reptile")
    r = dict(RECIPES[(name, profile)])
    r["model"] = dict(r["model"])
    return r


def train_maml_family(cls, data, profile: str = "quick", seed: int = 0, device=None, progress: bool = True,
                      budget_seconds: float | None = None, checkpoint=None, **overrides):
    """Build ``cls`` (MAML, FOMAML or Reptile) and meta-train it with :func:`fslcourse.train.fit`.

    Args:
        cls: the method class; its registered name picks the recipe.
        data: an :class:`~fslcourse.data.Omniglot` (or anything with ``.train`` and ``.val`` splits).
        profile: ``"quick"`` or ``"full"``.
        seed: seeds the initial weights and the training episodes.
        device: where to train.
        progress: show a progress bar.
        budget_seconds: wall-time budget; default the recipe's (none: the fixed number of steps).
        checkpoint: save the best model there while training.
        **overrides: replace recipe entries (``meta_batch=16``, ``model={...}``).

    Returns:
        ``(model, fit_result)``.
    """
    from ..config import seed_everything
    from ..train import fit

    r = recipe(cls.name, profile)
    r.update(overrides)
    if budget_seconds is not None:
        r["budget_seconds"] = budget_seconds
    seed_everything(seed)
    n_way = r.get("n_way", 5)  # training ways; more than 5 needs zero_head (the test episodes are 5-way)
    if n_way != 5 and not r["model"].get("zero_head", False):
        raise ValueError(f"n_way={n_way} training needs model zero_head=True (a fixed head has 5 outputs)")
    model = cls(n_way=5, **r["model"])
    if cls.name == "reptile":  # Reptile's outer step is θ += ε (φ̃ - θ): plain SGD with lr = ε
        optimizer = torch.optim.SGD(model.parameters(), lr=r["lr"])
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=r["lr"])
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, r["steps"]) if r["cosine"] else None
    extra = {"recipe": {k: v for k, v in r.items() if k != "model"}}
    result = fit(model, data.train, data.val, n_way=n_way, n_shot=r["n_shot"], n_query=r["n_query"],
                 steps=r["steps"], optimizer=optimizer, scheduler=scheduler, meta_batch=r["meta_batch"],
                 max_seconds=r["budget_seconds"], val_every=r["val_every"], val_episodes=r["val_episodes"],
                 val_n_way=5, val_n_shot=1, val_n_query=5, seed=seed, device=device, checkpoint=checkpoint,
                 checkpoint_extra=extra,
                 profile=profile, progress=progress)
    return result.model, result
