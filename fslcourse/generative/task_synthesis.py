"""Task synthesis: new classes made from the few meta-training characters there are, so there are more tasks.

Taught in ``notebooks/10_learning_to_generate.ipynb``.

Meta-learning learns from the *variety of tasks*; when only a few alphabets are available for
meta-training (Lake et al.'s "minimal" setting: the five alphabets of ``images_background_small1``),
the learner sees few distinct classes. Generating *classes*, not only examples, makes more tasks. Here a
new character is the union of the strokes of two real ones: drawing :math:`j` of the new class is the
pixelwise maximum of drawing :math:`j` of character :math:`a` and drawing :math:`j` of character
:math:`b`,

.. math:: x^{(a+b)}_j = \\max\\big(x^{(a)}_j,\\, x^{(b)}_j\\big),

composition of parts being how Omniglot's characters are built (Lake, Salakhutdinov & Tenenbaum 2015,
"Human-level concept learning through probabilistic program induction", Science 350; no arXiv version). Every synthetic
class keeps twenty drawings by twenty hands, and the split's rotations (quarter turns as classes) apply to
it too. The classes are new, but their strokes are the meta-training characters' own: nothing from the
meta-test alphabets enters (a generator trained on the full background set would leak the other alphabets
into the "scarce" setting, which is why this module uses none).
"""
from __future__ import annotations

import torch

from ..data.splits import ImageSplit

MINIMAL_ALPHABETS = ("Balinese", "Early_Aramaic", "Greek", "Korean", "Latin")  # images_background_small1


def recombined_characters(split: ImageSplit, n_characters: int, seed: int) -> ImageSplit:
    """``n_characters`` new characters, each the union of two different characters of ``split``.

    Args:
        split: the meta-training characters (images ``(n_base, n_examples, H, W)``, ink = 255).
        n_characters: how many new base characters (each gives ``len(split.rotations)`` classes).
        seed: which pairs are drawn (a CPU ``torch.Generator``).

    Returns:
        An :class:`ImageSplit` of the new characters, alphabet ``"synthetic"``, names ``"a + b"``.

    Raises:
        ValueError: ``n_characters`` is not a positive integer, or the split has fewer than two characters.
    """
    if isinstance(n_characters, bool) or not isinstance(n_characters, int) or n_characters < 1:
        raise ValueError(f"n_characters={n_characters!r} must be a positive integer")
    n_base = split.images.shape[0]
    if n_base < 2:
        raise ValueError(f"the split has {n_base} character(s); recombining needs at least two")
    g = torch.Generator().manual_seed(seed)
    first = torch.randint(n_base, (n_characters,), generator=g)  # (n_characters,)
    second = (first + 1 + torch.randint(n_base - 1, (n_characters,), generator=g)) % n_base  # never the same
    images = torch.maximum(split.images[first], split.images[second])  # (n_characters, n_examples, H, W)
    names = [f"{split.base_names[a]} + {split.base_names[b]}" for a, b in zip(first.tolist(), second.tolist())]
    return ImageSplit(split.name, images, names, ["synthetic"] * n_characters, split.rotations, split.protocol)


def with_classes(split: ImageSplit, extra: ImageSplit) -> ImageSplit:
    """``split`` with the characters of ``extra`` appended (same drawings per class, size and rotations)."""
    if extra.images.shape[1:] != split.images.shape[1:] or extra.rotations != split.rotations:
        raise ValueError(f"cannot add characters of shape {tuple(extra.images.shape[1:])} with rotations "
                         f"{extra.rotations} to a split of {tuple(split.images.shape[1:])} with {split.rotations}")
    return ImageSplit(split.name, torch.cat([split.images, extra.images.to(split.device)]),
                      split.base_names + extra.base_names, split.alphabets + extra.alphabets, split.rotations,
                      split.protocol)


def scarce_split(split: ImageSplit, alphabets=MINIMAL_ALPHABETS, recombined: int = 0, seed: int = 0) -> ImageSplit:
    """Meta-training data for the scarce setting: only ``alphabets``, plus ``recombined`` synthetic characters.

    What a recipe's ``options={"alphabets": [...], "recombined": n}`` does to the meta-training split.
    """
    small = split.only_alphabets(alphabets)
    return with_classes(small, recombined_characters(small, recombined, seed)) if recombined else small
