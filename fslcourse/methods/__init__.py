"""Few-shot methods, one algorithm per module, all behind :class:`FewShotClassifier`."""
from .base import METHODS, FewShotClassifier, get_method, prototypes, register
from .pixel import PixelPrototype
from . import maml, reptile  # noqa: F401  (registers maml, fomaml, reptile)
from .protonet import ProtoNet; from .finetune import FineTune  # noqa: E702, F401  (registers protonet, finetune)

__all__ = ["METHODS", "FewShotClassifier", "PixelPrototype", "get_method", "prototypes", "register"]
