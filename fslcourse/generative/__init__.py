"""Generative models that make extra support examples, and the protocol that measures whether they help.

Taught in ``notebooks/06_vae_augmentation.ipynb`` (VAE); the GAN and diffusion notebooks add
their generators to the same registry (:func:`~fslcourse.generative.augment.register_generator`).
"""
from .augment import (
                      GENERATORS,
                      AugmentedClassifier,
                      PairedResult,
                      evaluate_paired,
                      get_generator,
                      paired_difference,
                      register_generator,
)
from .metrics import frechet_distance, mean_pairwise_distance

__all__ = ["GENERATORS", "AugmentedClassifier", "PairedResult", "evaluate_paired", "frechet_distance",
           "get_generator", "mean_pairwise_distance", "paired_difference", "register_generator"]
