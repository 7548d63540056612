"""Few-shot methods, one algorithm per module, all behind :class:`FewShotClassifier`."""
from .base import METHODS, FewShotClassifier, get_method, prototypes, register
from .pixel import PixelPrototype
from . import maml, reptile  # noqa: F401  (registers maml, fomaml, reptile)
from . import matching, relation  # noqa: F401  (registers matching, relation)
from .protonet import ProtoNet; from .finetune import FineTune  # noqa: E702, F401  (registers protonet, finetune)
from . import mtl  # noqa: F401  (registers mtl, mtl-no-ht, mtl-ft, mtl-theta-only)

__all__ = ["METHODS", "FewShotClassifier", "PixelPrototype", "get_method", "prototypes", "register"]
