"""Exercise checks: ``check("name", your_function)`` prints a pass or a hint.

One module per notebook registers its exercises; importing this package loads them all.
"""
from . import (  # noqa: F401  (notebooks 02 and 04: protonet, finetune)
    benchmark,  # noqa: F401  (notebook 11)
    diffusion,  # noqa: F401  (notebook 09)
    episodes,  # noqa: F401  (registers the notebook-01 exercises)
    finetune,
    gan,  # noqa: F401  (notebook 08)
    generate,  # noqa: F401  (notebook 10, learning to generate)
    maml,  # noqa: F401  (registers the notebook-05 exercises)
    mtl,  # noqa: F401  (notebook 06)
    protonet,
    relation,  # noqa: F401  (notebook 03, the relation-based family)
    vae,  # noqa: F401  (notebook 07)
)
from .core import EXERCISES, check, exercise

__all__ = ["EXERCISES", "check", "exercise"]
