"""How everything in the course is trained: one loop, plain recipes, resumable runs.

Taught in ``notebooks/02_protonet.ipynb``. This package imports the methods; nothing in
``data``, ``models``, ``methods`` or ``generative`` imports it.

* :mod:`.loop`: :func:`fit`, the one training loop (validation, best weights, Ctrl-C, resumable state);
* :mod:`.schedules`: step-based learning-rate schedules;
* :mod:`.log`: :class:`TrainLog`, what every run returns and every checkpoint stores;
* :mod:`.pretrain`: classification pre-training (fine-tuning baseline, MTL phase 1);
* :mod:`.trainers`: how each kind of recipe draws its batches;
* :mod:`.api`: :func:`train` (``python -m fslcourse train NAME --recipe R``) and :func:`load_or_train`.
"""
from ..recipe import Recipe
from .api import load_or_train, recipe_for, train
from .log import TrainLog
from .loop import FitResult, Hook, Hooks, fit

__all__ = ["FitResult", "Hook", "Hooks", "Recipe", "TrainLog", "fit", "load_or_train", "recipe_for", "train"]
