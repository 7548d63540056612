"""Backbones that embed images: ``(n, 1, 28, 28) -> (n, D)``.

``make_backbone(name, **kwargs)`` builds one by name so a method's config can
store ``{"backbone": "conv4", "backbone_kwargs": {...}}`` and rebuild it.
"""
from __future__ import annotations

import contextlib

from torch import nn

from .conv4 import Conv4, conv_block
from .resnet import ResidualBlock, ResNetSmall

BACKBONES = {"conv4": Conv4, "resnet": ResNetSmall}


def make_backbone(name: str = "conv4", **kwargs) -> nn.Module:
    """Build the backbone called ``name`` (``"conv4"`` or ``"resnet"``) with ``kwargs``."""
    if name not in BACKBONES:
        raise ValueError(f"backbone={name!r} is not known; use one of {', '.join(sorted(BACKBONES))}")
    return BACKBONES[name](**kwargs)


@contextlib.contextmanager
def modes_kept(module):
    """Run a block, then give ``module`` and every submodule back the train/eval mode each had before.

    ``module.train(was_training)`` is not enough: it sets every submodule to the wrapper's mode, so a model
    in eval mode wrapped by a module in train mode would come back in train mode (BatchNorm then normalises
    with each batch's statistics and overwrites its running ones). Objects without ``modules()`` pass through.
    """
    saved = [(m, m.training) for m in module.modules()] if hasattr(module, "modules") else []
    try:
        yield module
    finally:
        for m, training in saved:
            m.training = training


__all__ = ["BACKBONES", "Conv4", "ResNetSmall", "ResidualBlock", "conv_block", "make_backbone", "modes_kept"]
