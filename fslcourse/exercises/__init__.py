"""Exercise checks: ``check("name", your_function)`` prints a pass or a hint.

One module per notebook registers its exercises; importing this package loads them all.
"""
from . import (  # noqa: F401  (notebooks 02 and 03)
    benchmark,  # noqa: F401  (notebook 10)
    diffusion,  # noqa: F401  (notebook 08)
    episodes,  # noqa: F401  (registers the notebook-01 exercises)
    finetune,
    gan,  # noqa: F401  (notebook 07)
    generate,  # noqa: F401  (notebook 09, learning to generate)
    maml,  # noqa: F401  (registers the notebook-04 exercises)
    mtl,  # noqa: F401  (notebook 05)
    protonet,
    relation,  # noqa: F401  (notebook 03, the relation-based family)
    vae,  # noqa: F401  (notebook 06)
)
from .core import EXERCISES, check, exercise

__all__ = ["EXERCISES", "check", "exercise"]
