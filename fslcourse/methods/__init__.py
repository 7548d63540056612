"""Few-shot methods, one algorithm per module, all behind :class:`FewShotClassifier`.

Importing this package registers every method (one import per module below).
"""
from . import (  # register gnn, hallucinating-protonet, maml, metagan, parameter-prediction, fomaml, matching, mtl*, ...
    gnn,
    hallucinating_protonet,
    maml,
    matching,
    metagan,
    mtl,
    parameter_prediction,
    relation,
    reptile,
)
from .base import METHODS, FewShotClassifier, get_method, prototypes, register
from .finetune import FineTune
from .pixel import PixelPrototype
from .protonet import ProtoNet

__all__ = ["METHODS", "FewShotClassifier", "FineTune", "PixelPrototype", "ProtoNet", "get_method", "gnn",
           "hallucinating_protonet", "maml", "matching", "metagan", "mtl", "parameter_prediction", "prototypes", "register",
           "relation", "reptile"]
