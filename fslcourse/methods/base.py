"""The one interface every few-shot method in the course implements.

Taught in ``notebooks/01_episodes.ipynb``; every method notebook subclasses it.

A method sees an episode's support set and returns logits for the query set:
``predict(support_x, support_y, query_x) -> (n_query_total, n_way)``. Methods
that adapt to the episode (fine-tuning, MAML, MTL) do so inside ``predict``.
Methods are registered under a short name that the command line and
:func:`fslcourse.pretrained` take. A trainable method keeps its training recipes as
plain data, ``RECIPES = {"quick": Recipe(...), ...}``; :mod:`fslcourse.training` runs them.
"""
from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from ..data.omniglot import IMAGE_SIZE

METHODS: dict = {}


class Preset:
    """A registered variant of a method: its class with some constructor arguments set by default.

    ``Preset("fomaml", MAML, first_order=True)`` behaves like a class: calling it builds a
    ``MAML(first_order=True, ...)`` whose ``name`` is ``"fomaml"``, and its other attributes
    (``trainable``, ``needs_grad_at_test`` ...) are the class's, except ``RECIPES`` when given.

    Args:
        name: the registered name.
        cls: the method's class.
        recipes: the variant's own ``RECIPES`` (default: the class's).
        defaults: constructor arguments the variant sets (a caller's arguments win).
    """

    def __init__(self, name: str, cls: type, recipes: dict | None = None, **defaults):
        self.name, self.cls, self.defaults = name, cls, defaults
        if recipes is not None:
            self.RECIPES = recipes

    def __call__(self, **kwargs):
        model = self.cls(**{**self.defaults, **kwargs})
        model.name = self.name
        return model

    def __getattr__(self, attr: str):
        if "cls" not in self.__dict__:  # copy and pickle probe a blank instance: nothing to delegate to yet
            raise AttributeError(attr)
        return getattr(self.cls, attr)

    def __instancecheck__(self, obj) -> bool:  # isinstance(model, get_method("fomaml")): built by this preset
        return isinstance(obj, self.cls) and getattr(obj, "name", None) == self.name

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.defaults.items())
        return f"Preset({self.name!r}: {self.cls.__name__}({args}))"


def register(name: str):
    """Class decorator: register a :class:`FewShotClassifier` under ``name``."""
    def wrap(cls):
        if name in METHODS and METHODS[name] is not cls:
            raise ValueError(f"a method is already registered as {name!r}: {METHODS[name]!r}")
        cls.name = name
        METHODS[name] = cls
        return cls
    return wrap


def register_preset(name: str, cls: type, recipes: dict | None = None, **defaults) -> Preset:
    """Register ``name`` as a variant of ``cls`` with ``defaults`` (see :class:`Preset`); returns the preset."""
    if name in METHODS:
        raise ValueError(f"a method is already registered as {name!r}: {METHODS[name]!r}")
    METHODS[name] = Preset(name, cls, recipes, **defaults)
    return METHODS[name]


def get_method(name: str):
    """The class registered under ``name``; the error lists the known names."""
    if name not in METHODS:
        known = ", ".join(sorted(METHODS)) or "none"
        raise ValueError(f"method {name!r} is not registered; known methods: {known}")
    return METHODS[name]


def fixed_n_way(model) -> int | None:
    """The ``n_way`` a model's head is fixed at, or ``None`` when it runs any ``n_way`` (no head, or a zero head)."""
    fixed = getattr(model, "n_way", None)
    return fixed if isinstance(fixed, int) and not getattr(model, "zero_head", False) else None


def fixed_n_shot(model) -> int | None:
    """The ``n_shot`` a loaded model only runs at (the one it was trained with), or ``None`` for any ``n_shot``.

    A model whose ``shot_dependent`` is true has learned the scale of its input at the training ``n_shot`` (a
    relation module fed the *sum* of a class's support maps), so another ``n_shot`` would be out of
    distribution; the training ``n_shot`` is read from the checkpoint the model was loaded from.
    """
    if not getattr(model, "shot_dependent", False):
        return None
    return ((getattr(model, "checkpoint_source", None) or {}).get("train_episodes") or {}).get("n_shot")


def n_shot_refusal(model, n_shot: int) -> str | None:
    """Why ``model`` refuses episodes of ``n_shot`` support examples per class (:func:`fixed_n_shot`), or ``None``."""
    shots = fixed_n_shot(model)
    if shots is None or shots == n_shot:
        return None
    return (f"this model was trained {shots}-shot and sums a class's support maps, whose scale grows with n_shot: "
            f"summed support maps learned at {shots}-shot do not fit {n_shot}-shot episodes; give it {shots} support "
            f"example{'s' if shots != 1 else ''} per class, or train a {n_shot}-shot model (the paper trains one model per n_shot)")


def class_confidences(model, outputs: torch.Tensor) -> torch.Tensor:
    """What ``model``'s ``predict`` outputs say of each class, in ``[0, 1]``, for a display (bars, percentages).

    Args:
        model: a :class:`FewShotClassifier` (its ``outputs`` says what ``predict`` returns).
        outputs: ``(n_query_total, n_way)``, the output of its ``predict``.

    Returns:
        ``(n_query_total, n_way)``: the softmax of logits (probabilities, summing to 1 per query), or a score
        model's scores as they are (the Relation Network's relation scores: a softmax over them would be a
        number the model never produced, near ``1 / n_way`` whatever its confidence).
    """
    if getattr(model, "outputs", "logits") == "scores":
        return outputs.clamp(0, 1)
    return torch.softmax(outputs, dim=1)


def confidence_name(model) -> str:
    """``"probability"`` for a model with logits, ``"relation score"`` for one with scores (see :func:`class_confidences`)."""
    return "relation score" if getattr(model, "outputs", "logits") == "scores" else "probability"


def format_confidence(value: float, measure: str | None = "probability") -> str:
    """How a display writes one confidence: ``97.0%`` for a probability, ``relation score 0.97`` for a score
    (:func:`confidence_name`), which is no probability and never a percentage."""
    return f"{100 * value:.1f}%" if measure in (None, "probability") else f"{measure} {value:.2f}"


def check_model(method, label: str = "method") -> None:
    """Refuse, in one line, a name, a class or anything without ``predict`` where a trained model belongs."""
    if isinstance(method, (str, type)):
        name = method if isinstance(method, str) else method.__name__
        raise ValueError(f"{label}={name!r} is a name or a class: it is not a trained model; pass one, e.g. "
                         "fslcourse.pretrained('protonet')")
    if not callable(getattr(method, "predict", None)):
        raise ValueError(f"{label}={method!r} is not a trained model (it has no predict); pass one, e.g. "
                         "fslcourse.pretrained('protonet')")


def check_episode(episode) -> None:
    """Refuse, in one line, something that is not an episode (``loss`` reads its four tensors by name)."""
    if not all(hasattr(episode, a) for a in ("support_x", "support_y", "query_x", "query_y")):
        raise ValueError(f"loss takes one Episode (support_x, support_y, query_x, query_y), e.g. sampler.sample(), "
                         f"not a {type(episode).__name__}")


def check_query_y(query_y, logits: torch.Tensor) -> None:
    """Refuse query labels a loss cannot score against ``logits`` ``(n_query_total, n_way)``: not ``int64``, not one
    per query, none at all, or outside ``0 .. n_way-1`` (cross-entropy would fail deep in torch, or give NaN)."""
    if not torch.is_tensor(query_y) or query_y.dtype != torch.int64:
        kind = query_y.dtype if torch.is_tensor(query_y) else type(query_y).__name__
        raise ValueError(f"query_y is {kind}; labels must be a torch.int64 (long) tensor in 0..n_way-1, e.g. "
                         "query_y.long()")
    if query_y.dim() != 1 or len(query_y) != logits.shape[0]:
        raise ValueError(f"query_y must be ({logits.shape[0]},) to match query_x, got {tuple(query_y.shape)}")
    if not len(query_y):
        raise ValueError("query_x holds no images; a loss needs at least one query example (n_query >= 1)")
    n_way = logits.shape[1]
    bad = query_y[(query_y < 0) | (query_y >= n_way)]
    if len(bad):
        raise ValueError(f"query_y holds labels {sorted(set(bad.tolist()))} outside 0..{n_way - 1} (the support "
                         "set's classes); label the queries as support_y labels their classes")


def n_way_of(labels: torch.Tensor) -> int:
    """Number of classes of labels ``0 .. n_way-1``."""
    return int(labels.max()) + 1


class FewShotClassifier(nn.Module):
    """Base class: turn a support set into logits for a query set.

    Subclasses implement :meth:`predict`. ``needs_grad_at_test`` tells
    :func:`fslcourse.evaluate.evaluate` whether ``predict`` takes gradient steps
    (fine-tuning, MAML); ``trainable`` whether the method has weights to learn;
    ``test_batch_norm`` which BatchNorm statistics it uses at test time (recorded with every result).

    A method that embeds every image on its own and then classifies embeddings (ProtoNet, the
    fine-tuning baseline) also defines ``embed(x) -> (n, D)`` and ``classify_embeddings``, with
    ``predict(s, y, q) == classify_embeddings(embed(s), y, embed(q))`` up to batch-norm batching;
    feature-space augmentation goes through this seam.
    """

    name: ClassVar[str] = "base"
    needs_grad_at_test: ClassVar[bool] = False
    trainable: ClassVar[bool] = True
    # BatchNorm at test time: "running" (statistics stored in training) or "batch" (each test batch's own,
    # i.e. transductive: the queries' statistics shape every prediction); "none" without BatchNorm
    test_batch_norm: ClassVar[str] = "running"
    retired_config: ClassVar[tuple[str, ...]] = ()  # config keys of older checkpoints that loading drops
    # what predict returns: "logits" (a softmax makes them probabilities) or "scores" in [0, 1] that need not sum
    # to 1 (the Relation Network's relation scores); class_confidences turns either into what a display shows
    outputs: ClassVar[str] = "logits"

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
        """:meth:`predict`: ``(n_way * n_shot, C, H, W)``, ``(n_way * n_shot,)``, ``(n_query_total, C, H, W)`` ->
        ``(n_query_total, n_way)`` logits."""
        return self.predict(support_x, support_y, query_x)

    def start_episodes(self) -> None:
        """Called by :func:`~fslcourse.evaluate.evaluate` before its first episode: a model that numbers its
        episodes (an augmenting wrapper seeds each episode's generation by its number) starts again at 0, so that
        a second pass over the same episodes draws the same samples."""

    @property
    def has_embedding_seam(self) -> bool:
        """Whether this method's class defines ``embed(x) -> (n, D)`` and ``classify_embeddings(z_support, support_y, z_query)``."""
        return all(callable(getattr(type(self), name, None)) for name in ("embed", "classify_embeddings"))

    def loss(self, episode) -> tuple[torch.Tensor, torch.Tensor]:
        """Cross-entropy on the query set of one episode, and the query accuracy (0-1)."""
        check_episode(episode)
        logits = self.predict(episode.support_x, episode.support_y, episode.query_x)
        check_query_y(episode.query_y, logits)
        loss = torch.nn.functional.cross_entropy(logits, episode.query_y)
        return loss, (logits.argmax(dim=1) == episode.query_y).float().mean()

    def train_step(self, batch, optimizer: torch.optim.Optimizer) -> dict:
        """One meta-training step on a batch of episodes (mean query loss, then one optimizer step).

        Methods whose update is not "backpropagate the query loss" (MAML, Reptile)
        override this. Returns ``{"loss": float, "accuracy": float}`` (accuracy 0-1).
        """
        optimizer.zero_grad(set_to_none=True)
        losses, accs = zip(*(self.loss(ep) for ep in batch))
        loss = torch.stack(losses).mean()  # (meta_batch,) -> scalar
        loss.backward()
        optimizer.step()
        return {"loss": loss.item(), "accuracy": torch.stack(accs).mean().item()}  # (meta_batch,) -> scalar

    def config(self) -> dict:
        """Constructor arguments that rebuild this method (saved in checkpoints)."""
        return {}

    n_way_of = staticmethod(n_way_of)

    @staticmethod
    def check_support(support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor) -> int:
        """Validate an episode's tensors and return ``n_way``; errors name the bad value."""
        for name, x in (("support_x", support_x), ("support_y", support_y), ("query_x", query_x)):
            if not torch.is_tensor(x):
                fix = "torch.as_tensor(y)" if name == "support_y" else "torch.as_tensor(x, dtype=torch.float32)"
                raise ValueError(f"{name} is a {type(x).__name__}, not a torch tensor; convert it, e.g. {fix}")
        if support_x.dim() != 4 or query_x.dim() != 4:
            raise ValueError(
                f"support_x and query_x must be (n, C, H, W); got {tuple(support_x.shape)} and "
                f"{tuple(query_x.shape)} (for a batch of episodes, call predict once per episode)"
            )
        for name, x in (("support_x", support_x), ("query_x", query_x)):
            if not x.dtype.is_floating_point:
                raise ValueError(f"{name} is {x.dtype}, not float images in [0, 1] (ink = 1); e.g. x.float() / 255, "
                                 "or take images from fslcourse.data (load_image, an ImageSplit)")
        if support_x.shape[1:] != query_x.shape[1:]:
            raise ValueError(f"support_x images are {tuple(support_x.shape[1:])} but query_x images are "
                             f"{tuple(query_x.shape[1:])}; give both at the same (C, H, W), as fslcourse.data does")
        if support_x.shape[1:] != (1, IMAGE_SIZE, IMAGE_SIZE):  # a network trained on 28x28 crashed deep in torch
            raise ValueError(f"the images are {tuple(support_x.shape[1:])}, not (1, {IMAGE_SIZE}, {IMAGE_SIZE}): the "
                             "course's models read Omniglot's greyscale 28x28 inputs; make them with "
                             "fslcourse.data.load_image or preprocess_image (any picture size)")
        for name, x in (("support_x", support_x), ("query_x", query_x)):
            if x.numel() and not bool(((x >= 0) & (x <= 1)).all()):  # a NaN compares False: refused too
                low, high = torch.aminmax(x.nan_to_num(nan=float("inf")))
                if torch.isnan(x).any():
                    raise ValueError(f"{name} holds NaN pixels; rebuild the images (fslcourse.data.load_image)")
                raise ValueError(f"{name}'s pixels lie in [{low.item():.3g}, {high.item():.3g}], not [0, 1]; images "
                                 "must be ink = 1 on paper = 0 (fslcourse.data.load_image; 0-255 pixels: divide by 255)")
        if support_y.dim() != 1 or support_y.shape[0] != support_x.shape[0]:
            raise ValueError(
                f"support_y must be ({support_x.shape[0]},) to match support_x, got {tuple(support_y.shape)}"
            )
        if support_y.dtype != torch.int64:
            raise ValueError(f"support_y is {support_y.dtype}; labels must be torch.int64 (long) in 0..n_way-1, e.g. "
                             "support_y.long()")
        if not len(support_y):
            raise ValueError("support_x holds no images; an episode needs at least one support example per class")
        if support_y.min() < 0:
            raise ValueError(f"support_y holds negative labels {sorted(set(support_y[support_y < 0].tolist()))}; "
                             "labels must be 0..n_way-1")
        n_way = FewShotClassifier.n_way_of(support_y)
        present = torch.bincount(support_y, minlength=n_way)
        if (present == 0).any():
            missing = torch.nonzero(present == 0).flatten().tolist()  # (n_missing,) labels
            raise ValueError(f"support_y must use every label 0..{n_way - 1}; labels {missing} are missing")
        return n_way


def round_robin(labels: torch.Tensor, n_per_class: int) -> torch.Tensor:
    """Indices of ``n_per_class`` examples for every class, class-major, each class's examples taken in turn.

    Args:
        labels: ``(n,)`` labels in ``0 .. n_way-1``.
        n_per_class: how many per class (an example repeats when its class has fewer).

    Returns:
        ``(n_way * n_per_class,)`` indices into ``labels``: the ``i``-th of class ``k`` is its ``(i mod K)``-th example.
    """
    by_class = [torch.nonzero(labels == k).flatten() for k in range(n_way_of(labels))]  # each (n_k,): the indices of class k
    return torch.stack([idx[i % len(idx)] for idx in by_class for i in range(n_per_class)])  # (n_way * n_per_class,)


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
