"""Classification pre-training: a backbone and a linear head over every meta-train class.

Taught in ``notebooks/04_finetune_baseline.ipynb`` (the fine-tuning baseline's step 1)
and ``notebooks/06_mtl.ipynb`` (MTL's phase 1); both use this one procedure.

Each step draws ``n_way`` random classes of the split and ``n_shot`` random images of
each (a mini-batch of ``n_way * n_shot`` images labelled with their class ids in the
split) and takes one optimizer step on the cross-entropy.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ClassBatches:
    """Mini-batches of ``n_classes`` random classes × ``per_class`` random images, from a CPU generator.

    Args:
        split: an :class:`~fslcourse.data.ImageSplit`.
        n_classes, per_class: batch shape.
        generator: CPU :class:`torch.Generator` (saved with the training state).
        device: where the batch goes.
    """

    def __init__(self, split, n_classes: int, per_class: int, generator: torch.Generator, device=None):
        if n_classes > split.n_classes:
            raise ValueError(f"n_way={n_classes} classes per batch but the {split.name!r} split has "
                             f"{split.n_classes}; lower n_way")
        if per_class > split.n_examples:
            raise ValueError(f"n_shot={per_class} images per class but the split has {split.n_examples}; lower n_shot")
        self.split, self.n_classes, self.per_class, self.generator, self.device = (
            split, n_classes, per_class, generator, device)

    def __call__(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x (n_classes * per_class, 1, 28, 28), y (n_classes * per_class,))`` with class ids of the split."""
        g = self.generator
        classes = torch.randperm(self.split.n_classes, generator=g)[: self.n_classes]  # (n_classes,)
        examples = torch.rand(self.n_classes, self.split.n_examples, generator=g).argsort(1)[:, : self.per_class]
        x = self.split.get(classes, examples).flatten(0, 1)  # (n_classes * per_class, 1, 28, 28)
        y = classes.repeat_interleave(self.per_class)  # (n_classes * per_class,)
        return x.to(self.device), y.to(self.device)


class Pretrainer(nn.Module):
    """``backbone`` + linear ``head`` trained by cross-entropy; the modules are shared, not copied.

    Args:
        backbone: maps ``(n, C, H, W)`` to ``(n, D)``.
        head: ``nn.Linear(D, n_classes)``.
    """

    def __init__(self, backbone: nn.Module, head: nn.Linear):
        super().__init__()
        self.backbone, self.head = backbone, head

    def train_step(self, batch, optimizer) -> dict:
        """One cross-entropy step on ``batch = (x, y)``; returns ``{"loss", "accuracy"}`` (accuracy 0-1)."""
        x, y = batch
        if int(y.max()) >= self.head.out_features:
            raise ValueError(f"class id {int(y.max())} but the head has {self.head.out_features} outputs; "
                             "build the head with the split's n_classes")
        logits = self.head(self.backbone(x))  # (n, n_classes)
        loss = F.cross_entropy(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return {"loss": loss.item(), "accuracy": (logits.argmax(1) == y).float().mean().item()}
