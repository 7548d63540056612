"""Exercise checks: ``check("name", your_function)`` prints a pass or a hint.

One module per notebook registers its exercises; importing this package loads them all.
"""
from . import episodes  # noqa: F401  (registers the notebook-01 exercises)
from . import maml  # noqa: F401  (registers the notebook-04 exercises)
from . import finetune, protonet  # noqa: F401  (notebooks 02 and 03)
from . import vae  # noqa: F401  (notebook 06)
from . import benchmark  # noqa: F401  (notebook 09)
from . import mtl  # noqa: F401  (notebook 05)
from . import diffusion  # noqa: F401  (notebook 08)
from . import gan  # noqa: F401  (notebook 07)
from .core import EXERCISES, check, exercise

__all__ = ["EXERCISES", "check", "exercise"]
