"""Generative models that make extra support examples, and the protocol that measures whether they help.

Taught in ``notebooks/07_vae_augmentation.ipynb`` (VAE), ``08`` (DAGAN, hallucinator) and ``09``
(diffusion). One module per algorithm; how they are trained, stored and built by name is in
:mod:`fslcourse.training.generators` (this package never imports it).
"""
from .augment import AugmentedClassifier, ModelGenerator, PairedResult, evaluate_paired, paired_difference
from .metrics import frechet_distance, mean_pairwise_distance

__all__ = ["AugmentedClassifier", "ModelGenerator", "PairedResult", "evaluate_paired", "frechet_distance",
           "mean_pairwise_distance", "paired_difference"]
