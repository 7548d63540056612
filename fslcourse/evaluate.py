"""Accuracy with a 95% confidence interval over fixed, seeded test episodes.

Taught in ``notebooks/01_episodes.ipynb``; every method notebook reports with it.

The interval is the normal approximation used by the papers the course
compares against: ``1.96 * s / sqrt(n)`` with ``s`` the sample standard
deviation (``ddof=1``) of the per-episode accuracies and ``n`` the number of
episodes. It is exact enough at the papers' 600 or 1000 episodes; with few episodes it is narrower than the
Student-t interval (by 0.6% at 200 episodes, 1.5% at 80, 4.2% at 30, 6.4% at 20), so a verdict drawn from a run
of tens of episodes leans a little towards "clear". The same seed draws the same episodes on any machine.
"""
from __future__ import annotations

import hashlib
import math
import operator
import time
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from .config import get_device
from .data.episodes import EpisodeSampler, _positive
from .data.splits import ImageSplit
from .methods.base import FewShotClassifier, check_model
from .models import modes_kept

Z95 = 1.959963984540054


def same_episodes(*digests: str | None) -> bool:
    """Whether results with these ``episodes_sha256`` may be paired: the digests recorded (not ``None``: a result
    from before digests) all agree."""
    return len(set(digests) - {None}) <= 1


def mean_ci95(values) -> tuple[float, float]:
    """Mean and 95% half-width ``1.96 * std(ddof=1) / sqrt(n)`` of a 1-D sequence (n >= 2)."""
    v = torch.as_tensor(values, dtype=torch.float64).flatten()  # (n,)
    if v.numel() < 2:
        raise ValueError(f"a confidence interval needs at least 2 values, got {v.numel()}")
    if not torch.isfinite(v).all():  # a NaN gave (nan, nan) without a word
        bad = int((~torch.isfinite(v)).sum())
        raise ValueError(f"{bad} of the {v.numel()} values are NaN or infinite; a confidence interval needs finite "
                         "values (look at where they were computed)")
    return float(v.mean()), float(Z95 * v.std(unbiased=True) / math.sqrt(v.numel()))


def check_images(x, name: str, episode: int) -> None:
    """Raise a one-line ValueError unless ``x`` is a finite float tensor in ``[0, 1]`` (ink = 1)."""
    if not torch.is_tensor(x) or not x.dtype.is_floating_point:
        kind = x.dtype if torch.is_tensor(x) else type(x).__name__
        raise ValueError(f"episode {episode}: {name} is {kind}, not float images in [0, 1]; build splits "
                         f"with fslcourse.data (ImageSplit stores uint8 and gives floats / 255)")
    if x.numel() == 0:
        return
    if not torch.isfinite(x).all():
        raise ValueError(f"episode {episode}: {name} holds NaN or inf pixels; rebuild the split's images "
                         f"(e.g. with fslcourse.data.load_image)")
    low, high = torch.aminmax(x)
    if low < 0 or high > 1:
        raise ValueError(f"episode {episode}: {name} has values in [{low.item():.3g}, {high.item():.3g}], not "
                         f"[0, 1]; images must be ink = 1.0 on paper = 0.0 (fslcourse.data.load_image)")


def check_logits(logits, shape: tuple[int, int], episode: int) -> None:
    """Raise a one-line ValueError unless ``logits`` is a finite float tensor of ``shape``."""
    if not torch.is_tensor(logits) or not logits.dtype.is_floating_point:
        kind = logits.dtype if torch.is_tensor(logits) else type(logits).__name__
        raise ValueError(f"episode {episode}: predict returned {kind}; it must return float logits "
                         f"(n_way * n_query, n_way) = {shape}")
    if tuple(logits.shape) != tuple(shape):
        raise ValueError(f"episode {episode}: predict returned logits of shape {tuple(logits.shape)}, expected "
                         f"(n_way * n_query, n_way) = {shape}; fix the method's head for this n_way")
    if not torch.isfinite(logits).all():
        raise ValueError(f"the model's logits are not finite (NaN/inf) on episode {episode}; its weights may be "
                         f"corrupt: retrain or reload it")


@dataclass
class EvalResult:
    """Mean accuracy (percent) with its 95% CI half-width over ``n_episodes``.

    ``split`` names the split the episodes came from (``"test"`` for meta-test); with
    ``within_alphabet``, ``alphabets_left_out`` names the split's alphabets with fewer than
    ``n_way`` classes, which no episode used. ``checkpoint`` is the method's ``checkpoint_source``
    (``{"file", "sha256"}``, set by :func:`fslcourse.pretrained.load_method`), ``None`` for a model
    that was not loaded from a file. ``split_protocol`` is how the classes were split
    (``"alphabet"`` or ``"vinyals"``, see :func:`fslcourse.data.load_omniglot`); ``batch_norm`` the
    method's ``test_batch_norm`` (``"batch"``: transductive, ``"support+query"``: each query with the support
    set, one at a time, ``"running"``, ``"none"``). ``episodes_sha256`` is a digest of every episode's classes
    and images: two results are paired only when theirs agree (the protocol alone misses, e.g., upright
    characters against rotated ones, or another copy of the data). ``rotation`` is how the episodes were built
    (:class:`~fslcourse.data.EpisodeSampler`: ``"classes"``, the default, ``"per-class"``, ``"per-episode"`` or
    ``"upright"``); :meth:`as_dict` names it only when it is not the default.
    """

    accuracy: float
    ci95: float
    n_episodes: int
    n_way: int
    n_shot: int
    n_query: int
    seed: int
    within_alphabet: bool
    seconds: float
    episode_accuracies: list[float] = field(repr=False, default_factory=list)
    split: str | None = None
    alphabets_left_out: list[str] = field(default_factory=list)
    checkpoint: dict | None = None
    split_protocol: str | None = None
    batch_norm: str | None = None
    episodes_sha256: str | None = field(default=None, repr=False)  # of every episode's classes and images
    rotation: str = "classes"  # how the episodes were built (EpisodeSampler's rotation)

    def __str__(self) -> str:
        proto = f"{self.n_way}-way {self.n_shot}-shot" + (" (within alphabet)" if self.within_alphabet else "") \
            + (f" ({self.rotation} rotation)" if self.rotation != "classes" else "")
        return f"{proto}: {self.accuracy:.1f}% ± {self.ci95:.1f}% ({self.n_episodes} episodes)"

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        d.pop("episode_accuracies")
        if d["rotation"] == "classes":  # the default: the dict (and the records written from it) as before
            d.pop("rotation")
        return d


def evaluate(method: FewShotClassifier, split: ImageSplit, n_way: int = 5, n_shot: int = 1,
             n_query: int = 15, n_episodes: int = 1000, seed: int = 0, within_alphabet: bool = False,
             device=None, progress: bool = False, rotation: str = "classes") -> EvalResult:
    """Evaluate a method on fixed, seeded episodes of ``split``.

    Args:
        method: any :class:`FewShotClassifier` (or a callable with the same signature).
        split: the split to draw test episodes from (meta-test for reported numbers).
        n_way, n_shot, n_query: the protocol.
        n_episodes: how many episodes (at least 2).
        seed: seeds the episode sampler; the same seed gives the same episodes.
        within_alphabet: draw every episode's classes from one alphabet.
        device: where to run; default the split's device.
        progress: show a tqdm progress bar.
        rotation: how each episode's classes are built: ``"classes"`` (the default: ``n_way`` classes of the split),
            ``"per-class"``, ``"per-episode"`` or ``"upright"`` (``n_way`` distinct characters turned as MAML's,
            the Relation Network's or Reptile's code did; see :class:`~fslcourse.data.EpisodeSampler`).

    Returns:
        An :class:`EvalResult` with accuracy and ci95 in percent.

    Raises:
        ValueError: a checkpoint trained on the Vinyals split evaluated on the alphabet split (whose meta-test
            characters it trained on); a bad protocol; episode images that are not finite float images in ``[0, 1]``
            (:func:`check_images`); logits that are not finite or not ``(n_way * n_query, n_way)``
            (:func:`check_logits`): a NaN model would otherwise score chance, not fail.
    """
    check_model(method)
    if device is not None:
        device = get_device(device)

    def files(source: dict) -> list[dict]:  # every checkpoint file behind the model, through nested ensembles
        return [f for m in source["members"] for f in files(m or {})] if source.get("members") else \
            ([source] if source.get("file") else [])

    # a file from before the field was trained on the alphabet split
    trained_on = {f.get("split") or "alphabet" for f in files(getattr(method, "checkpoint_source", None) or {})}
    if "vinyals" in trained_on and getattr(split, "protocol", None) == "alphabet":
        raise ValueError(f"this checkpoint was trained on the Vinyals split, whose meta-train classes include "
                         f"characters of the alphabet split's {split.name!r} split; evaluate it on "
                         "load_omniglot(split='vinyals'), the split it was made for")
    if "alphabet" in trained_on and getattr(split, "protocol", None) == "vinyals" and split.name != "test":
        raise ValueError(f"this checkpoint was trained on the alphabet split, whose meta-train alphabets hold most "
                         f"of the Vinyals {split.name!r} characters; measure it on the Vinyals test split, or "
                         "on its own split")
    sampler = EpisodeSampler(split, n_way, n_shot, n_query, seed=seed, within_alphabet=within_alphabet,
                             rotation=rotation)
    getattr(method, "start_episodes", lambda: None)()  # episode-numbered generation restarts: same episodes, same draws
    n_way, n_shot, n_query = sampler.n_way, sampler.n_shot, sampler.n_query  # Python ints (numpy ones are fine)
    if n_way < 2:
        raise ValueError(f"n_way={n_way} (--n-way): a 1-way episode has one possible answer, so every method scores "
                         "100%; use 2 ways or more")
    seed, within_alphabet = operator.index(seed), bool(within_alphabet)  # so a record can be written as JSON
    n_episodes = _positive("n_episodes", n_episodes)
    if n_episodes < 2:
        raise ValueError(f"n_episodes={n_episodes} but a confidence interval needs at least 2 episodes")
    grad = getattr(method, "needs_grad_at_test", False)
    accs, digest = [], hashlib.sha256()
    start = time.perf_counter()
    with modes_kept(method):  # afterwards every submodule is in the mode it had: a wrapped model stays in eval
        if hasattr(method, "eval"):
            method.eval()
        for i in tqdm(range(n_episodes), desc=f"{n_way}-way {n_shot}-shot", disable=not progress):
            ep = sampler.sample()
            for t in (ep.classes, ep.support_x, ep.query_x):  # two results pair only if they saw these episodes
                digest.update(t.detach().cpu().contiguous().numpy().tobytes())
            if device is not None:
                ep = ep.to(device)
            check_images(ep.support_x, "support_x", i)
            check_images(ep.query_x, "query_x", i)
            with torch.set_grad_enabled(grad):
                logits = method.predict(ep.support_x, ep.support_y, ep.query_x)
            check_logits(logits, (len(ep.query_y), n_way), i)
            accs.append((logits.argmax(dim=1) == ep.query_y).float().mean().item() * 100.0)
    mean, ci = mean_ci95(accs)
    return EvalResult(mean, ci, n_episodes, n_way, n_shot, n_query, seed, within_alphabet,
                      time.perf_counter() - start, accs, split=split.name,
                      alphabets_left_out=list(sampler.alphabets_left_out),
                      checkpoint=getattr(method, "checkpoint_source", None),
                      split_protocol=getattr(split, "protocol", None), batch_norm=getattr(method, "test_batch_norm", None),
                      episodes_sha256=digest.hexdigest(), rotation=sampler.rotation)
