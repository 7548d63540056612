"""A few-shot split: images grouped by class, with rotations as extra classes.

Taught in ``notebooks/01_episodes.ipynb``.

Images are stored once as ``uint8`` (ink = 255, background = 0) and turned into
float tensors in ``[0, 1]`` only when an episode asks for them. With
``rotations=(0, 1, 2, 3)`` every base character gives four classes (0°, 90°,
180°, 270°), as in the ProtoNet and MAML papers; class ``c`` is base character
``c // 4`` rotated by ``90° * (c % 4)``. Rotated copies of a character always
stay in the same split as the character.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(repr=False)  # its own __repr__: the dataclass one printed every pixel and name (37,000 characters)
class ImageSplit:
    """Images of one split (meta-train, meta-validation or meta-test).

    Attributes:
        name: ``"train"``, ``"val"`` or ``"test"`` (or a custom label).
        images: ``uint8`` tensor ``(n_base, n_examples, H, W)``, ink = 255.
        base_names: one name per base character, e.g. ``"Latin/character01"``.
        alphabets: the alphabet of each base character.
        rotations: quarter turns that count as classes, ``(0,)`` or ``(0, 1, 2, 3)``.
        protocol: how the classes were split (``"alphabet"``, ``"vinyals"``; ``"custom"`` for others).
    """

    name: str
    images: torch.Tensor
    base_names: list[str]
    alphabets: list[str]
    rotations: tuple[int, ...] = (0, 1, 2, 3)
    protocol: str = "custom"

    def __repr__(self) -> str:
        return (f"ImageSplit(name={self.name!r}, {self.n_classes} classes x {self.n_examples} drawings of "
                f"{self.images.shape[-2]}x{self.images.shape[-1]}, {len(set(self.alphabets))} alphabets, "
                f"rotations={self.rotations}, protocol={self.protocol!r})")

    def __post_init__(self) -> None:
        if self.images.dim() != 4 or self.images.dtype != torch.uint8:
            raise ValueError(
                f"images must be a uint8 tensor (n_base, n_examples, H, W), got {self.images.dtype} "
                f"of shape {tuple(self.images.shape)}"
            )
        if len(self.base_names) != self.images.shape[0] or len(self.alphabets) != self.images.shape[0]:
            raise ValueError(
                f"{len(self.base_names)} names and {len(self.alphabets)} alphabets for "
                f"{self.images.shape[0]} base characters; give one of each per character"
            )
        if not self.rotations or any(r not in (0, 1, 2, 3) for r in self.rotations):
            raise ValueError(f"rotations={self.rotations!r}: use quarter turns from (0, 1, 2, 3)")
        if len(set(self.rotations)) != len(self.rotations):
            raise ValueError(f"rotations={self.rotations!r}: use distinct quarter turns (a repeated one would make two "
                             "identical classes)")
        names = sorted(set(self.alphabets))
        index = {a: i for i, a in enumerate(names)}
        self.alphabet_names = names
        base_alpha = torch.tensor([index[a] for a in self.alphabets], dtype=torch.long)
        # (n_classes,): alphabet index of every class, rotations included
        self.class_alphabet = base_alpha.repeat_interleave(len(self.rotations))

    @property
    def n_classes(self) -> int:
        """Number of classes: base characters times rotations."""
        return self.images.shape[0] * len(self.rotations)

    @property
    def n_examples(self) -> int:
        """Examples per class (20 drawers in Omniglot)."""
        return self.images.shape[1]

    @property
    def device(self) -> torch.device:
        return self.images.device

    def to(self, device) -> ImageSplit:
        """Return a copy whose images live on ``device`` (episodes are then built there)."""
        return ImageSplit(self.name, self.images.to(device), self.base_names, self.alphabets, self.rotations, self.protocol)

    def only_alphabets(self, alphabets) -> ImageSplit:
        """The characters of ``alphabets`` only (e.g. Lake et al.'s five-alphabet "minimal" background set).

        Raises:
            ValueError: an alphabet this split does not have (the message lists the ones it has).
        """
        missing = sorted(set(alphabets) - set(self.alphabets))
        if missing:
            raise ValueError(f"alphabets {missing} are not in the {self.name!r} split; use some of "
                             f"{', '.join(self.alphabet_names)}")
        keep = [i for i, a in enumerate(self.alphabets) if a in set(alphabets)]
        return ImageSplit(self.name, self.images[keep], [self.base_names[i] for i in keep],
                          [self.alphabets[i] for i in keep], self.rotations, self.protocol)

    def class_name(self, class_id: int) -> str:
        """Human-readable name of a class, e.g. ``"Latin/character01 (rot 90°)"``."""
        base, rot = divmod(int(class_id), len(self.rotations))
        turn = self.rotations[rot] * 90
        return self.base_names[base] + (f" (rot {turn}°)" if turn else "")

    def get(self, class_ids: torch.Tensor, example_ids: torch.Tensor) -> torch.Tensor:
        """Gather float images for classes and examples.

        Args:
            class_ids: ``(n,)`` class ids in ``[0, n_classes)``.
            example_ids: ``(n, k)`` example indices per class in ``[0, n_examples)``.

        Returns:
            Float tensor ``(n, k, 1, H, W)`` in ``[0, 1]`` on this split's device.
        """
        class_ids = class_ids.to(self.device)
        example_ids = example_ids.to(self.device)
        n_rot = len(self.rotations)
        base = class_ids // n_rot
        turns = torch.tensor(self.rotations, device=self.device)[class_ids % n_rot]
        x = self.images[base[:, None], example_ids]  # (n, k, H, W) uint8
        out = x.clone()
        for k in set(self.rotations) - {0}:
            mask = turns == k
            if mask.any():
                out[mask] = torch.rot90(x[mask], k, dims=(-2, -1))
        return out.unsqueeze(2).float().div_(255.0)  # (n, k, 1, H, W)
