"""N-way K-shot episodes: the unit of work of few-shot learning.

Taught in ``notebooks/01_episodes.ipynb``.

An episode draws ``n_way`` classes from one split, then ``n_shot`` support and
``n_query`` query examples of each. Labels are remapped to ``0 .. n_way-1`` in
the order the classes were drawn, so a model can never rely on global class ids.
``EpisodeSampler(rotation=...)`` builds them as other papers' codes did instead: ``n_way`` distinct characters,
each turned by its own quarter turn (MAML's), all by one (the Relation Network's) or none (Reptile's test).
All randomness goes through a CPU :class:`torch.Generator`, so the same seed
gives the same episodes on any machine; the images are gathered on the split's
device (CPU or GPU) without data-loader workers.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass, fields

import numpy as np
import torch

from ..config import whole_seed
from .splits import ImageSplit


@dataclass
class Episode:
    """One episode, or a batch of episodes with a leading batch dimension.

    Attributes:
        support_x: ``(n_way * n_shot, C, H, W)`` support images, class-major.
        support_y: ``(n_way * n_shot,)`` labels in ``0 .. n_way-1``.
        query_x: ``(n_way * n_query, C, H, W)`` query images, class-major.
        query_y: ``(n_way * n_query,)`` labels in ``0 .. n_way-1``.
        classes: ``(n_way,)`` original class ids in the split; label ``i`` is ``classes[i]``.
        n_way, n_shot, n_query: the episode's sizes.

    A batch of ``B`` episodes adds a leading ``B`` to every tensor.
    """

    support_x: torch.Tensor
    support_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor
    classes: torch.Tensor
    n_way: int
    n_shot: int
    n_query: int

    @property
    def is_batch(self) -> bool:
        """True when the tensors carry a leading batch dimension."""
        return self.classes.dim() == 2

    def __len__(self) -> int:
        """Number of episodes in a batch (1 for a single episode)."""
        return self.classes.shape[0] if self.is_batch else 1

    def __getitem__(self, i: int) -> Episode:
        """The ``i``-th episode of a batch."""
        if not self.is_batch:
            raise TypeError("indexing needs a batch of episodes; this is a single episode")
        return Episode(self.support_x[i], self.support_y[i], self.query_x[i], self.query_y[i],
                       self.classes[i], self.n_way, self.n_shot, self.n_query)

    def __iter__(self):
        if not self.is_batch:
            raise TypeError("iterating needs a batch of episodes; this is a single episode")
        return (self[i] for i in range(len(self)))

    def to(self, device) -> Episode:
        """A copy with every tensor on ``device``."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return Episode(**{k: v.to(device) if torch.is_tensor(v) else v for k, v in values.items()})

    @classmethod
    def from_grid(cls, images: torch.Tensor, classes: torch.Tensor, n_shot: int, n_query: int) -> Episode:
        """The episode whose class ``i`` has the examples ``images[i]``: the first ``n_shot`` support, the rest queries.

        Args:
            images: ``(n_way, n_shot + n_query, C, H, W)``, row ``i`` the examples of class ``classes[i]``.
            classes: ``(n_way,)`` the classes' ids in their split.
            n_shot, n_query: support and query examples per class.

        Returns:
            An :class:`Episode` in class-major order, on ``images``' device.
        """
        n_way, shape = images.shape[0], images.shape[2:]
        labels = torch.arange(n_way, device=images.device)
        return cls(
            support_x=images[:, :n_shot].reshape(n_way * n_shot, *shape),  # (n_way*n_shot, C, H, W)
            support_y=labels.repeat_interleave(n_shot),
            query_x=images[:, n_shot:].reshape(n_way * n_query, *shape),  # (n_way*n_query, C, H, W)
            query_y=labels.repeat_interleave(n_query),
            classes=classes.to(images.device),
            n_way=n_way, n_shot=n_shot, n_query=n_query,
        )

    @classmethod
    def collate(cls, episodes: list[Episode]) -> Episode:
        """Episodes of the same sizes as one batch: every tensor gains a leading dimension ``B = len(episodes)``."""
        first = episodes[0]
        return cls(*(torch.stack([getattr(e, f) for e in episodes])  # each (B, *one episode's shape)
                     for f in ("support_x", "support_y", "query_x", "query_y", "classes")),
                   n_way=first.n_way, n_shot=first.n_shot, n_query=first.n_query)


def draw_episode(split: ImageSplit, classes: torch.Tensor, n_shot: int, n_query: int,
                 generator: torch.Generator) -> Episode:
    """An episode of ``classes``: ``n_shot + n_query`` distinct examples of each, in an order drawn from ``generator``.

    Args:
        split: the split the classes belong to.
        classes: ``(n_way,)`` class ids in ``split``.
        n_shot, n_query: support and query examples per class.
        generator: the CPU generator that orders each class's examples.

    Returns:
        An :class:`Episode` (see there for the shapes); label ``i`` is ``classes[i]``.
    """
    order = torch.rand(len(classes), split.n_examples, generator=generator).argsort(dim=1)
    images = split.get(classes, order[:, : n_shot + n_query])  # (n_way, n_shot+n_query, C, H, W)
    return Episode.from_grid(images, classes, n_shot, n_query)


def _positive(name: str, value) -> int:
    """``value`` as a Python ``int`` if it is a positive integer (``numpy.int64(5)`` counts), else a ValueError."""
    try:
        number = None if isinstance(value, bool) else operator.index(value)
    except TypeError:
        number = None
    if number is None or number <= 0:
        raise ValueError(f"{name}={value!r} must be a positive integer")
    return number


ROTATIONS = ("classes", "per-class", "per-episode", "upright")  # EpisodeSampler(rotation=...): see there


def check_rotation(rotation, split, within_alphabet: bool = False) -> str:
    """``rotation`` if ``split`` can build episodes that way (:class:`EpisodeSampler`), else a one-line ValueError.

    Every value but ``"classes"`` draws characters and turns them itself, so it needs a split whose classes are the
    four quarter turns of each character (``rotations=(0, 1, 2, 3)``: class ``c`` is character ``c // 4`` turned by
    ``90° * (c % 4)``), and does not combine with ``within_alphabet``.
    """
    if not isinstance(rotation, str) or rotation not in ROTATIONS:
        raise ValueError(f"rotation={rotation!r} is not a way to build episodes; use one of "
                         f"{', '.join(map(repr, ROTATIONS))}")
    if rotation == "classes":
        return rotation
    turns = getattr(split, "rotations", None)
    if turns is None or tuple(turns) != (0, 1, 2, 3):
        held = f"rotations={tuple(turns)!r}" if turns is not None else "no rotations: a feature split"
        raise ValueError(f"rotation={rotation!r} turns characters itself, but the classes of the "
                         f"'{getattr(split, 'name', split)}' split are not the four turns of each character ({held}); "
                         "load the images with rotations=True (load_omniglot's default), or use rotation='classes'")
    if within_alphabet:
        raise ValueError(f"rotation={rotation!r} with within_alphabet=True: no paper's code draws episodes that way, "
                         "and this sampler does not; drop within_alphabet, or use rotation='classes'")
    return rotation


class EpisodeSampler:
    """Draw seeded N-way K-shot episodes from one split.

    Args:
        split: the :class:`~fslcourse.data.splits.ImageSplit` to draw classes from.
        n_way: classes per episode.
        n_shot: support examples per class.
        n_query: query examples per class (disjoint from the support examples).
        seed: seeds the sampler's own CPU generator (ignored if ``generator`` is given).
        generator: a CPU :class:`torch.Generator` to draw from instead.
        within_alphabet: draw all classes of an episode from one alphabet
            (Lake et al.'s harder protocol); only alphabets with at least
            ``n_way`` classes are used: :attr:`alphabets_used` names them and
            :attr:`alphabets_left_out` names the others.
        rotation: how an episode's classes are built from characters and quarter turns
            (:data:`ROTATIONS`). ``"classes"`` (the default): ``n_way`` classes of the split, so a split
            loaded with rotations may put two turns of one character in an episode (ProtoNet's and Matching
            Networks' test: the (character, rotation) classes of the Vinyals et al. lists). The others draw
            ``n_way`` distinct characters and need a split whose classes are the four turns of each
            character (``rotations=(0, 1, 2, 3)``: class ``4 * character + turn``): ``"per-class"`` turns
            each by its own random multiple of 90° (MAML's code, cbfinn/maml ``data_generator.py``, behind
            first-order MAML's figures too); ``"per-episode"`` turns the whole episode by one random multiple
            of 90° (the Relation Network's code, floodsung/LearningToCompare_FSL
            ``omniglot_test_one_shot.py``); ``"upright"`` leaves them unturned (Reptile's test,
            openai/supervised-reptile). ``"classes"`` draws exactly the episodes it drew before this option
            existed, seed for seed.

    Attributes:
        alphabets_used: names of the alphabets episodes are drawn from (every alphabet of the
            split without ``within_alphabet``).
        alphabets_left_out: names of the alphabets with fewer than ``n_way`` classes, which no
            episode can use (empty without ``within_alphabet``).
        rotation: the ``rotation`` argument, checked: how each episode's classes are built.

    Raises:
        ValueError: a size is not a positive integer, ``n_way`` exceeds the classes (or, with a
            ``rotation`` other than ``"classes"``, the characters) available, ``n_shot + n_query`` exceeds
            the examples of a class, ``rotation`` is not one of :data:`ROTATIONS`, or it draws characters
            from a split whose classes are not four turns of each (or together with ``within_alphabet``).

    Example:
        >>> sampler = EpisodeSampler(data.test, n_way=5, n_shot=1, n_query=15, seed=0)
        >>> episode = sampler.sample()          # support_x: (5, 1, 28, 28)
        >>> batch = sampler.sample_batch(8)     # support_x: (8, 5, 1, 28, 28)
    """

    def __init__(self, split: ImageSplit, n_way: int, n_shot: int, n_query: int, seed: int = 0,
                 generator: torch.Generator | None = None, within_alphabet: bool = False,
                 rotation: str = "classes"):
        if not all(hasattr(split, a) for a in ("n_classes", "n_examples", "get")):  # images or features
            what = repr(split) if isinstance(split, str) else f"the {type(split).__name__} object"
            raise ValueError(f"split must be one split of images, e.g. data.test (or data.train, data.val) of "
                             f"load_omniglot(); got {what}")
        n_way, n_shot, n_query = (_positive(arg, value) for arg, value in
                                  (("n_way", n_way), ("n_shot", n_shot), ("n_query", n_query)))
        self.split, self.n_way, self.n_shot, self.n_query = split, n_way, n_shot, n_query
        if not isinstance(within_alphabet, (bool, np.bool_)):  # the string "False" is true: episodes of one alphabet
            raise ValueError(f"within_alphabet={within_alphabet!r} must be True or False")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise ValueError(f"generator={generator!r} is not a torch.Generator; pass a CPU torch.Generator, or "
                             "seed= instead")
        self.within_alphabet = within_alphabet = bool(within_alphabet)
        self.rotation = check_rotation(rotation, split, within_alphabet)
        self.alphabets_used, self.alphabets_left_out = list(getattr(split, "alphabet_names", [])), []  # feature splits have none
        if n_shot + n_query > split.n_examples:
            raise ValueError(
                f"n_shot + n_query = {n_shot} + {n_query} = {n_shot + n_query} but each class of the "
                f"'{split.name}' split has {split.n_examples} examples; lower n_shot or n_query"
            )
        if within_alphabet:
            counts = torch.bincount(split.class_alphabet, minlength=len(split.alphabet_names))
            self._alphabets = torch.nonzero(counts >= n_way).flatten()  # (n_alphabets_kept,) alphabet ids
            keep = set(self._alphabets.tolist())
            names = split.alphabet_names
            self.alphabets_used = [a for i, a in enumerate(names) if i in keep]
            self.alphabets_left_out = [a for i, a in enumerate(names) if i not in keep]
            if len(self._alphabets) == 0:
                raise ValueError(
                    f"n_way={n_way} but no alphabet of the '{split.name}' split has that many classes "
                    f"(the largest has {int(counts.max())}); lower n_way or drop within_alphabet"
                )
        elif rotation != "classes" and n_way > split.n_classes // 4:
            raise ValueError(f"n_way={n_way} but the '{split.name}' split has {split.n_classes // 4} characters, and "
                             f"rotation={rotation!r} draws distinct characters; lower n_way")
        elif n_way > split.n_classes:
            raise ValueError(
                f"n_way={n_way} but the '{split.name}' split has {split.n_classes} classes; lower n_way"
            )
        if generator is None:
            try:
                seed = whole_seed(seed)  # what setup and the command line take: -3 was wrapped, 2**70 overflowed
            except ValueError as err:
                raise ValueError(f"{err} (or pass a CPU torch.Generator)") from None
            generator = torch.Generator().manual_seed(seed)
        if generator.device.type != "cpu":
            raise ValueError("the generator must be a CPU torch.Generator so episodes match on every machine")
        self.generator = generator

    def _draw_classes(self) -> torch.Tensor:
        g = self.generator
        if self.rotation != "classes":  # only then: the default's stream of draws is the one it always was
            return self._draw_turned_characters()
        if not self.within_alphabet:
            return torch.randperm(self.split.n_classes, generator=g)[: self.n_way]
        alpha = self._alphabets[torch.randint(len(self._alphabets), (1,), generator=g)]
        members = torch.nonzero(self.split.class_alphabet == alpha).flatten()  # (n_members,) the alphabet's class ids
        return members[torch.randperm(len(members), generator=g)[: self.n_way]]

    def _draw_turned_characters(self) -> torch.Tensor:
        """``(n_way,)`` class ids ``4 * character + turn`` of ``n_way`` distinct characters, turned as
        :attr:`rotation` says."""
        g, n_way = self.generator, self.n_way
        characters = torch.randperm(self.split.n_classes // 4, generator=g)[:n_way]
        if self.rotation == "per-class":
            turns = torch.randint(4, (n_way,), generator=g)
        elif self.rotation == "per-episode":
            turns = torch.randint(4, (1,), generator=g).repeat(n_way)  # (n_way,) one turn for every class
        else:  # upright
            turns = torch.zeros(n_way, dtype=torch.long)
        return 4 * characters + turns

    def sample(self) -> Episode:
        """Draw one episode (see :class:`Episode` for the shapes)."""
        return draw_episode(self.split, self._draw_classes(), self.n_shot, self.n_query, self.generator)

    def sample_batch(self, n_episodes: int) -> Episode:
        """Draw ``n_episodes`` episodes stacked along a new leading dimension."""
        n_episodes = _positive("n_episodes", n_episodes)
        return Episode.collate([self.sample() for _ in range(n_episodes)])

    def __iter__(self):
        """An endless stream of episodes."""
        while True:
            yield self.sample()
