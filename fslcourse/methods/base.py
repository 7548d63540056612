"""The one interface every few-shot method in the course implements.

Taught in ``notebooks/01_episodes.ipynb``; every method notebook subclasses it.

A method sees an episode's support set and returns logits for the query set:
``predict(support_x, support_y, query_x) -> (n_query_total, n_way)``. Methods
that adapt to the episode (fine-tuning, MAML, MTL) do so inside ``predict``.
Methods are registered under a short name that the command line and
:func:`fslcourse.pretrained` take.
"""
from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

METHODS: dict[str, type["FewShotClassifier"]] = {}


def register(name: str):
    """Class decorator: register a :class:`FewShotClassifier` under ``name``."""
    def wrap(cls):
        if name in METHODS and METHODS[name] is not cls:
            raise ValueError(f"a method is already registered as {name!r}: {METHODS[name].__name__}")
        cls.name = name
        METHODS[name] = cls
        return cls
    return wrap


def get_method(name: str) -> type["FewShotClassifier"]:
    """The class registered under ``name``; the error lists the known names."""
    if name not in METHODS:
        known = ", ".join(sorted(METHODS)) or "none"
        raise ValueError(f"method {name!r} is not registered; known methods: {known}")
    return METHODS[name]


class FewShotClassifier(nn.Module):
    """Base class: turn a support set into logits for a query set.

    Subclasses implement :meth:`predict`. ``needs_grad_at_test`` tells
    :func:`fslcourse.evaluate.evaluate` whether ``predict`` takes gradient steps
    (fine-tuning, MAML); ``trainable`` whether the method has weights to learn.
    """

    name: ClassVar[str] = "base"
    needs_grad_at_test: ClassVar[bool] = False
    trainable: ClassVar[bool] = True

    def predict(self, support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor) -> torch.Tensor:
        """Logits for the query set.

        Args:
            support_x: ``(n_way * n_shot, C, H, W)`` support images.
            support_y: ``(n_way * n_shot,)`` labels in ``0 .. n_way-1``.
            query_x: ``(n_query_total, C, H, W)`` query images.

        Returns:
            ``(n_query_total, n_way)`` logits.
        """
        raise NotImplementedError

    def forward(self, support_x, support_y, query_x):
        return self.predict(support_x, support_y, query_x)

    def loss(self, episode) -> tuple[torch.Tensor, torch.Tensor]:
        """Cross-entropy on the query set of one episode, and the query accuracy (0-1)."""
        logits = self.predict(episode.support_x, episode.support_y, episode.query_x)
        loss = torch.nn.functional.cross_entropy(logits, episode.query_y)
        return loss, (logits.argmax(dim=1) == episode.query_y).float().mean()

    def train_step(self, batch, optimizer: torch.optim.Optimizer) -> dict:
        """One meta-training step on a batch of episodes (mean query loss, then one optimizer step).

        Methods whose update is not "backpropagate the query loss" (MAML, Reptile)
        override this. Returns ``{"loss": float, "accuracy": float}`` (accuracy 0-1).
        """
        optimizer.zero_grad(set_to_none=True)
        losses, accs = zip(*(self.loss(ep) for ep in batch))
        loss = torch.stack(losses).mean()
        loss.backward()
        optimizer.step()
        return {"loss": loss.item(), "accuracy": torch.stack(accs).mean().item()}

    @classmethod
    def train_recipe(cls, data, profile: str = "quick", seed: int = 0, device=None, progress: bool = True):
        """Build and train this method on ``data.train`` (validating on ``data.val``) with the profile's recipe.

        Returns:
            ``(model, fit_result)``; ``python -m fslcourse train NAME`` calls this.
        """
        raise ValueError(f"method {cls.name!r} has no training recipe" +
                         ("; it has no trainable parameters" if not cls.trainable else ""))

    def config(self) -> dict:
        """Constructor arguments that rebuild this method (saved in checkpoints)."""
        return {}

    @staticmethod
    def n_way_of(support_y: torch.Tensor) -> int:
        """Number of classes in a support set whose labels are ``0 .. n_way-1``."""
        return int(support_y.max()) + 1

    @staticmethod
    def check_support(support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor) -> int:
        """Validate an episode's tensors and return ``n_way``; errors name the bad value."""
        if support_x.dim() != 4 or query_x.dim() != 4:
            raise ValueError(
                f"support_x and query_x must be (n, C, H, W); got {tuple(support_x.shape)} and "
                f"{tuple(query_x.shape)} (for a batch of episodes, call predict once per episode)"
            )
        if support_y.dim() != 1 or support_y.shape[0] != support_x.shape[0]:
            raise ValueError(
                f"support_y must be ({support_x.shape[0]},) to match support_x, got {tuple(support_y.shape)}"
            )
        n_way = FewShotClassifier.n_way_of(support_y)
        present = torch.bincount(support_y, minlength=n_way)
        if (present == 0).any():
            missing = torch.nonzero(present == 0).flatten().tolist()
            raise ValueError(f"support_y must use every label 0..{n_way - 1}; labels {missing} are missing")
        return n_way


def episodic_recipe(cls, data, profile: str = "quick", seed: int = 0, device=None, progress: bool = True,
                    checkpoint=None, **overrides):
    """Train ``cls`` with its ``RECIPES[profile]`` on the shared episodic loop (Adam, cosine decay).

    The recipe holds ``model`` (constructor kwargs), ``lr``, ``steps``, ``n_way``, ``n_shot``,
    ``n_query``, ``val_every`` and ``val_episodes``; ``overrides`` replace entries. Validation is
    5-way 1-shot on ``data.val``, keeping the best model.

    Returns:
        ``(model, fit_result)``; ``fit_result.recipe`` is the recipe without ``model``.
    """
    from ..config import seed_everything
    from ..train import fit

    recipe = {**cls.RECIPES[profile], **overrides}
    seed_everything(seed)
    model = cls(**recipe["model"])
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe["lr"])
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, recipe["steps"], eta_min=0.05 * recipe["lr"])
    settings = {k: v for k, v in recipe.items() if k != "model"}
    result = fit(model, data.train, data.val, n_way=recipe["n_way"], n_shot=recipe["n_shot"],
                 n_query=recipe["n_query"], steps=recipe["steps"], optimizer=optimizer, scheduler=scheduler,
                 val_every=recipe["val_every"], val_episodes=recipe["val_episodes"], val_n_way=5, val_n_shot=1,
                 seed=seed, device=device, checkpoint=checkpoint, profile=profile,
                 checkpoint_extra={"recipe": settings}, progress=progress)
    result.recipe = settings
    return result.model, result


def prototypes(features: torch.Tensor, labels: torch.Tensor, n_way: int) -> torch.Tensor:
    """Mean feature of each class.

    Args:
        features: ``(n_way * n_shot, D)`` support features.
        labels: ``(n_way * n_shot,)`` labels in ``0 .. n_way-1``.
        n_way: number of classes.

    Returns:
        ``(n_way, D)`` class means.
    """
    sums = torch.zeros(n_way, features.shape[1], dtype=features.dtype, device=features.device)
    sums.index_add_(0, labels, features)
    counts = torch.bincount(labels, minlength=n_way).clamp_min(1).to(features.dtype)
    return sums / counts[:, None]
