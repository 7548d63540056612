"""Backbones that embed images: ``(n, 1, 28, 28) -> (n, D)``.

``make_backbone(name, **kwargs)`` builds one by name so a method's config can
store ``{"backbone": "conv4", "backbone_kwargs": {...}}`` and rebuild it.
"""
from __future__ import annotations

from torch import nn

from .conv4 import Conv4, conv_block
from .resnet import ResidualBlock, ResNetSmall

BACKBONES = {"conv4": Conv4, "resnet": ResNetSmall}


def make_backbone(name: str = "conv4", **kwargs) -> nn.Module:
    """Build the backbone called ``name`` (``"conv4"`` or ``"resnet"``) with ``kwargs``."""
    if name not in BACKBONES:
        raise ValueError(f"backbone={name!r} is not known; use one of {', '.join(sorted(BACKBONES))}")
    return BACKBONES[name](**kwargs)


__all__ = ["BACKBONES", "Conv4", "ResNetSmall", "ResidualBlock", "conv_block", "make_backbone"]
