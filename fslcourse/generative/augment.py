"""Does generated data help a few-shot classifier? A paired protocol shared by the generative notebooks.

Taught in ``notebooks/07_vae_augmentation.ipynb``; the GAN and diffusion notebooks reuse it.

A *support generator* is trained on meta-train classes only. At test time it sees the
support set of an episode (never its query set) and returns ``n_generated`` (m) extra
examples per class, which are appended to the support set (pixel space) or to the
support *embeddings* (feature space). One interface, :class:`SupportGenerator`, in both spaces::

    generator.space                     # "pixel" or "feature"
    generator.generate(support, support_y, n_per_class, seed)
        -> (generated (n_way * m, ...), generated_y (n_way * m,))

``support`` is ``support_x`` ``(n_way * n_shot, 1, 28, 28)`` for pixel generators and the
method's embeddings ``(n_way * n_shot, D)`` for feature generators; the same ``seed`` gives the
same samples on every machine. Feature-space augmentation needs a method with an embedding seam
(``method.embed``, then ``method.classify_embeddings``; ProtoNet and the fine-tuning baseline).
Builders are registered by name in :mod:`fslcourse.training.generators` and built with
``get_generator(name)(data, backbone=...)``.

:func:`evaluate_paired` runs a method with and without augmentation on the **same** seeded
test episodes and reports the paired difference of the per-episode accuracies with its 95%
CI, :math:`\\bar d \\pm 1.96\\, s_d / \\sqrt{n}` (pairing removes the between-episode variance,
which is most of the variance of each accuracy).
"""
from __future__ import annotations

import hashlib
import operator
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch
from torch import nn

from ..config import SEED_MAX, whole_seed
from ..evaluate import EvalResult, evaluate, mean_ci95, same_episodes
from ..methods.base import FewShotClassifier, check_model, n_way_of, round_robin

SPACES = ("pixel", "feature")


@runtime_checkable
class SupportGenerator(Protocol):
    """What augmentation needs of a generator: its ``space`` and ``generate``."""

    space: str  # "pixel" or "feature"

    def generate(self, support: torch.Tensor, support_y: torch.Tensor, n_per_class: int,
                 seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``n_per_class`` new examples per class of the support set, class-major, drawn with noise seeded by ``seed``.

        Args:
            support: ``(n_way * n_shot, 1, 28, 28)`` images (pixel space) or ``(n_way * n_shot, D)`` embeddings.
            support_y: ``(n_way * n_shot,)`` labels in ``0 .. n_way-1``.

        Returns:
            ``(generated (n_way * n_per_class, ...), labels (n_way * n_per_class,))``.
        """


def check_request(support: torch.Tensor, support_y: torch.Tensor, n: int, space: str = "pixel",
                  name: str = "n_per_class") -> None:
    """Refuse, in one line, a generation request no support generator can serve.

    Args:
        support: ``(n_way * n_shot, 1, 28, 28)`` drawings (``space="pixel"``) or ``(n_way * n_shot, D)`` embeddings.
        support_y: ``(n_way * n_shot,)`` integer labels ``0 .. n_way-1``, every class present.
        n: examples asked for per class, a positive integer (called ``name`` in the message).

    Raises:
        ValueError: naming the bad value and what to pass instead.
    """
    if isinstance(n, bool) or not hasattr(n, "__index__") or operator.index(n) < 1:
        raise ValueError(f"{name}={n!r}: ask for at least one generated example per class (a positive integer)")
    for arg, x in (("support", support), ("support_y", support_y)):
        if not torch.is_tensor(x):
            raise ValueError(f"{arg} is a {type(x).__name__}, not a torch tensor; convert it, e.g. torch.as_tensor(...)")
    if support_y.dim() != 1 or support_y.dtype.is_floating_point or support_y.dtype == torch.bool or not len(support_y):
        raise ValueError(f"support_y has shape {tuple(support_y.shape)} and dtype {support_y.dtype}; pass one integer "
                         "label per support example")
    if support_y.min() < 0 or torch.bincount(support_y).min() == 0:
        raise ValueError(f"support_y holds the labels {sorted(set(support_y.tolist()))}; use 0 .. n_way-1 with every "
                         "class present")
    pixel = space == "pixel"
    if len(support) != len(support_y) or (support.shape[1:] != (1, 28, 28) if pixel else support.dim() != 2):
        want = "drawings (n_way * n_shot, 1, 28, 28)" if pixel else "embeddings (n_way * n_shot, D)"
        raise ValueError(f"support has shape {tuple(support.shape)} for {len(support_y)} labels; a {space} generator "
                         f"takes {want} with one label each")
    if pixel and not support.dtype.is_floating_point:
        raise ValueError(f"support is {support.dtype}, not float drawings in [0, 1] (ink = 1); e.g. x.float() / 255")
    if pixel and not bool(((support >= 0) & (support <= 1)).all()):  # NaN compares False: refused too
        if torch.isnan(support).any():
            raise ValueError("support holds NaN pixels; rebuild the drawings (fslcourse.data.load_image)")
        low, high = torch.aminmax(support)
        raise ValueError(f"support's pixels lie in [{low.item():.3g}, {high.item():.3g}], not [0, 1]; drawings must be "
                         "ink = 1 on paper = 0 (fslcourse.data.load_image; 0-255 pixels: divide by 255)")


def sources_in_turn(support: torch.Tensor, support_y: torch.Tensor, n_per_class: int):
    """Each class's support examples in turn, class-major: what a generator makes its ``n_per_class`` samples from.

    Args:
        support: ``(n_way * n_shot, ...)`` drawings or embeddings; support_y: ``(n_way * n_shot,)`` in ``0 .. n_way-1``.

    Returns:
        ``(sources (n_way * n_per_class, ...), labels (n_way * n_per_class,))``.
    """
    labels = torch.arange(n_way_of(support_y), device=support_y.device).repeat_interleave(n_per_class)  # (n_way * m,)
    return support[round_robin(support_y, n_per_class)], labels


def seeded(seed) -> torch.Generator:
    """The CPU ``torch.Generator`` a support generator draws its noise from (one per ``seed``, the same on every machine)."""
    if isinstance(seed, bool) or not isinstance(seed, int) and not hasattr(seed, "__index__"):
        raise TypeError(f"seed={seed!r}: a support generator takes an integer seed, not a {type(seed).__name__}")
    if not -2**63 <= operator.index(seed) <= SEED_MAX:  # torch.Generator.manual_seed's range
        raise ValueError(f"seed={seed!r} is outside torch's seed range; use a whole number from 0 to 2**64 - 1")
    return torch.Generator().manual_seed(operator.index(seed))


@dataclass
class ModelGenerator:
    """A trained generative model behind the :class:`SupportGenerator` interface.

    Args:
        model: has ``generate(support, support_y, n_generated, generator, **options)``.
        space: ``"pixel"`` or ``"feature"``.
        backbone_fingerprint: for feature space, the backbone the model was trained on.
        options: passed to ``model.generate`` (e.g. a VAE's ``mode``).
        source: ``{"file", "sha256"}`` of the checkpoint the model was loaded from (``None``: not from a file).
    """

    model: nn.Module
    space: str = "pixel"
    backbone_fingerprint: str | None = None
    options: dict = field(default_factory=dict)
    source: dict | None = None

    def generate(self, support, support_y, n_per_class: int, seed: int):
        """``(generated (n_way * m, ...), labels (n_way * m,))`` from the support images or embeddings."""
        check_request(support, support_y, n_per_class, self.space)
        return self.model.generate(support, support_y, n_per_class, seeded(seed), **self.options)


class FeatureSplit:
    """Backbone features ``(n_classes, n_examples, D)`` as a split :class:`~fslcourse.data.EpisodeSampler` draws from."""

    def __init__(self, name: str, features: torch.Tensor):
        self.name, self.features = name, features
        self.n_classes, self.n_examples = features.shape[0], features.shape[1]

    def get(self, class_ids: torch.Tensor, example_ids: torch.Tensor) -> torch.Tensor:
        """``(n, k, D)`` features."""
        return self.features[class_ids.to(self.features.device)[:, None], example_ids.to(self.features.device)]


@torch.no_grad()
def embed_split(backbone: torch.nn.Module, split, class_ids: torch.Tensor | None = None,
                chunk: int = 2048) -> torch.Tensor:
    """Features of every image of ``split`` (or of its ``class_ids``): ``(n_classes, n_examples, D)`` (eval mode)."""
    backbone.eval()
    class_ids = torch.arange(split.n_classes) if class_ids is None else class_ids
    examples = torch.arange(split.n_examples)[None]  # (1, n_examples)
    per_chunk = max(1, chunk // split.n_examples)
    out = []
    for start in range(0, len(class_ids), per_chunk):
        ids = class_ids[start:start + per_chunk]
        x = split.get(ids, examples.expand(len(ids), -1)).flatten(0, 1)  # (n*k, 1, 28, 28)
        out.append(backbone(x.to(next(backbone.parameters()).device)).unflatten(0, (len(ids), split.n_examples)))  # (n, n_examples, D)
    return torch.cat(out)  # (n_classes, n_examples, D)


def backbone_fingerprint(backbone: nn.Module) -> str:
    """A short sha256 of a backbone's weights and buffers (which backbone a feature-space generator belongs to)."""
    h = hashlib.sha256()
    for name, t in sorted(backbone.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def check_generator_for(method, generator) -> None:
    """Refuse a generator whose ``space`` is neither pixels nor features, or a feature-space one that cannot reach
    ``method``'s embeddings or was trained on another backbone (its samples would live in another space)."""
    if getattr(generator, "space", None) not in SPACES:
        raise ValueError(f"generator.space={getattr(generator, 'space', None)!r}; use one of {', '.join(SPACES)}")
    if generator.space == "feature" and not getattr(method, "has_embedding_seam", False):
        raise ValueError(f"{type(method).__name__} has no embedding seam (embed, classify_embeddings), so "
                         "feature-space augmentation cannot reach its embeddings; use a pixel-space generator")
    wanted = getattr(generator, "backbone_fingerprint", None)
    if generator.space == "feature" and wanted is not None and wanted != backbone_fingerprint(method.backbone):
        raise ValueError(f"this feature-space generator was trained on backbone {wanted}, but the method's "
                         f"backbone is {backbone_fingerprint(method.backbone)}; build the generator with "
                         "backbone=method.backbone")


class AugmentedClassifier(FewShotClassifier):
    """``method`` whose support set is extended by ``n_generated`` generated examples per class.

    The query images are passed to ``method`` untouched and are never shown to the generator.
    Episode ``i`` is generated with seed ``seed * 1_000_003 + i``, so a run is reproducible and
    independent of the other values of m evaluated. In feature space, the support and query images
    are embedded once (``method.embed``), the generated embeddings join the support ones, and
    ``method.classify_embeddings`` gives the logits.

    Args:
        method: a trained :class:`~fslcourse.methods.base.FewShotClassifier` (with an embedding seam for feature space).
        generator: a :class:`SupportGenerator`; a feature-space generator may carry ``backbone_fingerprint``,
            which must match the method's backbone.
        n_generated: m, examples generated per class.
        seed: seeds the generation.
    """

    name = "augmented"

    def __init__(self, method: FewShotClassifier, generator, n_generated: int, seed: int = 0):
        super().__init__()
        if n_generated < 0:
            raise ValueError(f"n_generated={n_generated} must be >= 0")
        seed = whole_seed(seed)  # each episode's generation seed is seed * 1_000_003 + its number
        check_generator_for(method, generator)
        self.method, self.generator, self.n_generated, self.seed = method, generator, n_generated, seed
        self.needs_grad_at_test = method.needs_grad_at_test
        self.test_batch_norm = getattr(method, "test_batch_norm", None)
        self.outputs = getattr(method, "outputs", "logits")  # scores stay scores (an ensemble refuses them)
        self.episode_index = 0
        source = getattr(method, "checkpoint_source", None)  # results name the method's and the generator's files
        if source is not None:
            self.checkpoint_source = {**source, "generator": getattr(generator, "source", None)}
        self.last = {}  # what the last predict used (tests look at it)

    def start_episodes(self) -> None:
        self.episode_index = 0

    def predict(self, support_x, support_y, query_x):
        """Logits of ``method`` with the augmented support; ``(n_query_total, n_way)``."""
        self.check_support(support_x, support_y, query_x)
        g = self.seed * 1_000_003 + self.episode_index  # this episode's generation seed
        self.episode_index += 1
        m = self.n_generated
        if self.generator.space == "pixel":
            gen_x, gen_y = (self.generator.generate(support_x, support_y, m, g) if m else
                            (support_x[:0], support_y[:0]))
            self.last = {"generated": gen_x, "generated_y": gen_y, "query_x": query_x}
            return self.method.predict(torch.cat([support_x, gen_x.to(support_x)]),
                                       torch.cat([support_y, gen_y.to(support_y)]), query_x)
        with torch.no_grad():
            z = self.method.embed(torch.cat([support_x, query_x]))  # (n_support + n_query_total, D)
        z_s, z_q = z[: len(support_x)], z[len(support_x):]
        gen_z, gen_y = self.generator.generate(z_s, support_y, m, g) if m else (z_s[:0], support_y[:0])
        self.last = {"generated": gen_z, "generated_y": gen_y, "query_x": query_x}
        return self.method.classify_embeddings(torch.cat([z_s, gen_z.to(z_s)]), torch.cat([support_y, gen_y.to(support_y)]), z_q)


def paired_difference(baseline, augmented) -> tuple[float, float]:
    """Mean and 95% CI half-width of ``augmented - baseline``, paired episode by episode (both 1-D, same length)."""
    b = torch.as_tensor(baseline, dtype=torch.float64).flatten()  # (n_episodes,)
    a = torch.as_tensor(augmented, dtype=torch.float64).flatten()  # (n_episodes,)
    if b.shape != a.shape:
        raise ValueError(f"paired accuracies need the same episodes: {b.numel()} baseline and {a.numel()} augmented "
                         "values; evaluate both with the same n_episodes and seed")
    return mean_ci95(a - b)


@dataclass
class PairedResult:
    """One method, one protocol, one m: both accuracies and their paired difference (percent points)."""

    method: str
    generator: str
    n_generated: int
    baseline: EvalResult
    augmented: EvalResult
    paired_difference: float
    paired_ci95: float

    def __str__(self) -> str:
        b, a = self.baseline, self.augmented
        return (f"{self.method} {b.n_way}-way {b.n_shot}-shot, {self.generator} m={self.n_generated}: "
                f"{b.accuracy:.1f}% -> {a.accuracy:.1f}%, paired difference {self.paired_difference:+.1f} "
                f"± {self.paired_ci95:.1f} points ({b.n_episodes} episodes)")

    def as_dict(self) -> dict:
        return {"method": self.method, "generator": self.generator, "n_generated": self.n_generated,
                "baseline_accuracy": self.baseline.accuracy, "baseline_ci95": self.baseline.ci95,
                "augmented_accuracy": self.augmented.accuracy, "augmented_ci95": self.augmented.ci95,
                "paired_difference": self.paired_difference, "paired_ci95": self.paired_ci95,
                "n_way": self.baseline.n_way, "n_shot": self.baseline.n_shot, "n_query": self.baseline.n_query,
                "episodes": self.baseline.n_episodes, "episode_seed": self.baseline.seed}


def evaluate_paired(method: FewShotClassifier, generator, split, n_way: int = 5, n_shot: int = 1,
                    n_generated=(1, 5, 10), n_query: int = 15, n_episodes: int = 600, seed: int = 0,
                    generation_seed: int = 0, method_name: str | None = None, generator_name: str = "generator",
                    baseline: EvalResult | None = None, device=None, progress: bool = False) -> list[PairedResult]:
    """Evaluate ``method`` without and with augmentation on identical seeded episodes.

    Args:
        method: the classifier (its weights are not changed).
        generator: a support generator (see the module docstring).
        split: the meta-test split.
        n_generated: the values of m to try (the baseline is evaluated once).
        n_way, n_shot, n_query, n_episodes, seed: the protocol of :func:`fslcourse.evaluate.evaluate`.
        generation_seed: seeds the generator's noise.
        baseline: a result of :func:`~fslcourse.evaluate.evaluate` for this method and protocol, to reuse
            (it must have the same episodes: same ``n_way``, ``n_shot``, ``n_query``, ``n_episodes`` and ``seed``).

    Returns:
        One :class:`PairedResult` per m.
    """
    check_model(method)  # every argument is checked before the baseline's episodes are run
    if isinstance(generator, str):
        raise ValueError(f"generator={generator!r} is a name, not a generator; build it with "
                         f"get_generator({generator!r})(data, backbone=method.backbone) (fslcourse.training.generators)")
    check_generator_for(method, generator)
    if isinstance(n_generated, (str, bytes)) or not hasattr(n_generated, "__iter__"):
        raise ValueError(f"n_generated={n_generated!r} must be a list of the values of m to try, e.g. (1, 5, 10) or "
                         f"[{n_generated!r}]")
    n_generated = list(n_generated)
    bad = [m for m in n_generated if isinstance(m, bool) or not hasattr(m, "__index__") or operator.index(m) < 0]
    if not n_generated or bad:
        raise ValueError(f"n_generated={n_generated!r}: give at least one m, each a whole number >= 0 (examples "
                         "generated per class), e.g. (1, 5, 10)")
    generation_seed = whole_seed(generation_seed, "generation_seed")
    if baseline is not None and not isinstance(baseline, EvalResult):
        raise ValueError(f"baseline is a {type(baseline).__name__}; pass the EvalResult of evaluate(method, split, "
                         "...) on these episodes, or baseline=None")
    name = method_name or getattr(method, "name", type(method).__name__)
    if baseline is not None:
        measured = (getattr(baseline, "split", None), getattr(baseline, "split_protocol", None))
        here = (split.name, getattr(split, "protocol", None))
        if (measured[0] is not None and measured != here) or getattr(baseline, "within_alphabet", False):
            raise ValueError(f"baseline was measured on the {measured[0]!r} split ({measured[1]} protocol)"
                             f"{' within alphabets' if getattr(baseline, 'within_alphabet', False) else ''}, but "
                             f"these episodes come from {here[0]!r} ({here[1]} protocol): pass baseline=None, or one "
                             "measured here")
        got = (baseline.n_way, baseline.n_shot, baseline.n_query, baseline.n_episodes, baseline.seed)
        if got != (n_way, n_shot, n_query, n_episodes, seed):
            raise ValueError(f"baseline has (n_way, n_shot, n_query, n_episodes, seed) = {got} but this protocol is "
                             f"{(n_way, n_shot, n_query, n_episodes, seed)}; pass baseline=None to evaluate it")
        base = baseline
    else:
        base = evaluate(method, split, n_way, n_shot, n_query, n_episodes, seed=seed, device=device,
                        progress=progress)
    out = []
    for m in n_generated:
        wrapped = AugmentedClassifier(method, generator, int(m), seed=generation_seed)
        aug = evaluate(wrapped, split, n_way, n_shot, n_query, n_episodes, seed=seed, device=device,
                       progress=progress)
        if not same_episodes(getattr(base, "episodes_sha256", None), aug.episodes_sha256):
            raise ValueError("baseline was measured on other episodes than these (same protocol, other data: e.g. "
                             "upright characters against rotated ones); pass baseline=None to evaluate it here")
        diff, ci = paired_difference(base.episode_accuracies, aug.episode_accuracies)
        out.append(PairedResult(name, generator_name, int(m), base, aug, diff, ci))
    return out


def format_table(results: list[PairedResult]) -> str:
    """A text table of paired results, accuracies at one decimal."""
    lines = [f"{'method':9s} {'shot':>4s} {'m':>3s} {'baseline':>13s} {'augmented':>13s} {'paired diff (95% CI)':>21s}"]
    for r in results:
        b, a = r.baseline, r.augmented
        lines.append(f"{r.method:9s} {b.n_shot:4d} {r.n_generated:3d} {b.accuracy:6.1f} ± {b.ci95:4.1f} "
                     f"{a.accuracy:6.1f} ± {a.ci95:4.1f} {r.paired_difference:+12.1f} ± {r.paired_ci95:.1f}")
    return "\n".join(lines)
