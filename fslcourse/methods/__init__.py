"""Few-shot methods, one algorithm per module, all behind :class:`FewShotClassifier`."""
from .base import METHODS, FewShotClassifier, get_method, prototypes, register
from .pixel import PixelPrototype
from .protonet import ProtoNet

__all__ = ["METHODS", "FewShotClassifier", "PixelPrototype", "get_method", "prototypes", "register"]
