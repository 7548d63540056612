"""fslcourse: a Jupyter course that teaches few-shot learning by doing.

Start with ``fslcourse.setup()`` in a notebook; see README.md for the course map.
"""
from .config import Course, get_device, setup
from .evaluate import EvalResult, evaluate, mean_ci95
from .methods import FewShotClassifier, get_method
from .pretrained import pretrained

__version__ = "0.1.0"
__all__ = ["Course", "EvalResult", "FewShotClassifier", "evaluate", "get_device", "get_method",
           "mean_ci95", "pretrained", "setup", "__version__"]
