"""The same episodes through learn2learn's ``TaskDataset`` and task transforms.

Taught in ``notebooks/01_episodes.ipynb`` (and used again in ``05_maml.ipynb``).

learn2learn describes a task, then transforms the description step by step:
choose ``n_way`` classes (``NWays``), then ``n_shot + n_query`` examples of each
(``KShots``), load them (``LoadData``), and remap the labels to ``0..n_way-1``
(``RemapLabels``, ``ConsecutiveLabels``). Its transforms draw from Python's global
``random`` module, so :func:`l2l_taskset` seeds that module; our
:class:`~fslcourse.data.episodes.EpisodeSampler` uses its own generator instead.
"""
from __future__ import annotations

import random

import torch

from .episodes import Episode
from .splits import ImageSplit


class SplitDataset(torch.utils.data.Dataset):
    """An :class:`ImageSplit` as a flat map-style dataset: item ``i`` is ``(image (1, H, W), class id)``."""

    def __init__(self, split: ImageSplit):
        self.split = split

    def __len__(self) -> int:
        return self.split.n_classes * self.split.n_examples

    def __getitem__(self, index: int):
        c, e = divmod(int(index), self.split.n_examples)
        image = self.split.get(torch.tensor([c]), torch.tensor([[e]]))[0, 0]  # (1, H, W)
        return image, c


def l2l_taskset(split: ImageSplit, n_way: int, n_shot: int, n_query: int, num_tasks: int = -1, seed: int = 0):
    """A learn2learn ``TaskDataset`` over ``split`` whose tasks hold ``n_way * (n_shot + n_query)`` examples.

    Args:
        split: the split to draw from.
        n_way, n_shot, n_query: the episode sizes.
        num_tasks: how many task descriptions to cache (-1: a new one every time).
        seed: seeds the Python ``random`` state that learn2learn's transforms draw from; the taskset keeps
            its own copy of that state, so other uses of ``random`` (or a second taskset) never move its tasks.

    Returns:
        A ``learn2learn.data.TaskDataset`` with its own random state (:class:`OwnRandom`); ``sample()`` gives
        ``(images, labels)``.
    """
    from ..l2l import import_learn2learn

    l2l = import_learn2learn()

    for name, value, least in (("n_way", n_way, 1), ("n_shot", n_shot, 1), ("n_query", n_query, 0)):
        if isinstance(value, bool) or not hasattr(value, "__index__") or value < least:
            raise ValueError(f"{name}={value!r} must be a whole number >= {least}")  # 2.5 became 2 ways
    if n_way > split.n_classes:
        raise ValueError(f"n_way={n_way} but the '{split.name}' split has {split.n_classes} classes; lower n_way")
    if n_shot + n_query > split.n_examples:
        raise ValueError(f"n_shot + n_query = {n_shot + n_query} but classes have {split.n_examples} examples; "
                         "lower n_shot or n_query")
    outer = random.getstate()
    random.seed(seed)
    n = split.n_examples
    labels_to_indices = {c: list(range(c * n, (c + 1) * n)) for c in range(split.n_classes)}
    indices_to_labels = {i: i // n for i in range(split.n_classes * n)}
    meta = l2l.data.MetaDataset(SplitDataset(split), labels_to_indices=labels_to_indices,
                                indices_to_labels=indices_to_labels)
    transforms = [
        l2l.data.transforms.NWays(meta, n_way),
        l2l.data.transforms.KShots(meta, n_shot + n_query),
        l2l.data.transforms.LoadData(meta),
        l2l.data.transforms.RemapLabels(meta),
        l2l.data.transforms.ConsecutiveLabels(meta),
    ]
    taskset = OwnRandom(l2l.data.TaskDataset(meta, task_transforms=transforms, num_tasks=num_tasks), random.getstate())
    random.setstate(outer)  # the caller's random state, as it was
    return taskset


class OwnRandom:
    """A learn2learn taskset that draws from its own Python ``random`` state: ``sample()`` swaps it in and out."""

    def __init__(self, taskset, state):
        self.taskset, self.state = taskset, state

    def sample(self):
        outer = random.getstate()
        random.setstate(self.state)
        try:
            return self.taskset.sample()
        finally:
            self.state = random.getstate()
            random.setstate(outer)

    def __getattr__(self, name):  # everything else is the taskset's
        return getattr(self.taskset, name)


def task_to_episode(images: torch.Tensor, labels: torch.Tensor, n_way: int, n_shot: int, n_query: int) -> Episode:
    """Split a learn2learn task ``(images, labels)`` into an :class:`Episode` (first ``n_shot`` per class = support).

    Args:
        images: ``(n_way * (n_shot + n_query), C, H, W)``.
        labels: ``(n_way * (n_shot + n_query),)`` in ``0..n_way-1``.

    Returns:
        An episode in the course's class-major order; ``classes`` is ``arange(n_way)``
        because learn2learn's remapped task no longer carries the original ids.
    """
    per_class = n_shot + n_query
    if labels.numel() != n_way * per_class or torch.bincount(labels, minlength=n_way).tolist() != [per_class] * n_way:
        raise ValueError(f"the task's labels hold counts {torch.bincount(labels).tolist()}, not {n_way} classes of "
                         f"n_shot + n_query = {per_class}; pass the n_way, n_shot and n_query the taskset was made with")
    order = torch.argsort(labels, stable=True)
    grouped = images[order].reshape(n_way, per_class, *images.shape[1:])  # (n_way, n_shot+n_query, C, H, W)
    return Episode.from_grid(grouped, torch.arange(n_way), n_shot, n_query)
