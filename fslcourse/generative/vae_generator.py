"""The VAEs as support generators: load ``checkpoints/vae-quick.pt`` if present, else train on meta-train only.

Taught in ``notebooks/06_vae_augmentation.ipynb``. Registers three generators for
:mod:`fslcourse.generative.augment`:

* ``"vae"``: pixel space, prototype mode (z around the support set's mean latent);
* ``"vae-prior"``: pixel space, z from the prior, conditioned on the support context;
* ``"vae-feature"``: backbone-feature space (:class:`~fslcourse.generative.vae.FeatureVAE`),
  tied to the backbone it was trained on: the checkpoint keeps one per backbone, keyed by a
  fingerprint of the backbone's weights (a new backbone means training one, about a minute).

The checkpoint records each model's config, seed, training seconds, history and the
split and class ids it was trained on.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import get_device, get_profile
from ..io import atomic_torch_save, load_checkpoint
from ..results import versions
from .augment import backbone_fingerprint, register_generator
from .vae import ConditionalVAE, FeatureVAE, train_vae

CHECKPOINT = Path(__file__).resolve().parent.parent / "checkpoints" / "vae-{profile}.pt"
RECIPES = {  # quick: a 2-core CPU; full: longer runs for a GPU
    "quick": {"pixel": dict(max_seconds=240.0, lr=2e-3, n_classes=16), "feature": dict(max_seconds=30.0, lr=2e-3,
                                                                                       n_classes=64, max_classes=1024)},
    "full": {"pixel": dict(max_seconds=1800.0, lr=1e-3, n_classes=64), "feature": dict(max_seconds=300.0, lr=1e-3,
                                                                                       n_classes=64)},
}


@dataclass
class VAEGenerator:
    """A :class:`ConditionalVAE` or :class:`FeatureVAE` behind the augmentation interface."""

    model: torch.nn.Module
    space: str = "pixel"
    mode: str = "prototype"
    spread: float | None = None
    backbone_fingerprint: str | None = None  # feature space: the backbone the model was trained on

    def generate(self, support, support_y, n_generated: int, generator: torch.Generator | None = None):
        """``(generated (n_way * m, ...), labels (n_way * m,))`` from the support images or features."""
        return self.model.generate(support, support_y, n_generated, generator, mode=self.mode, spread=self.spread)


class FeatureSplit:
    """Backbone features ``(n_classes, n_examples, D)`` as a split :class:`~fslcourse.data.EpisodeSampler` draws from."""

    def __init__(self, name: str, features: torch.Tensor):
        self.name, self.features = name, features
        self.n_classes, self.n_examples = features.shape[0], features.shape[1]

    def get(self, class_ids: torch.Tensor, example_ids: torch.Tensor) -> torch.Tensor:
        """``(n, k, D)`` features."""
        return self.features[class_ids.to(self.features.device)[:, None], example_ids.to(self.features.device)]


@torch.no_grad()
def embed_split(backbone: torch.nn.Module, split, class_ids: torch.Tensor | None = None,
                chunk: int = 2048) -> torch.Tensor:
    """Features of every image of ``split`` (or of its ``class_ids``): ``(n_classes, n_examples, D)`` (eval mode)."""
    backbone.eval()
    class_ids = torch.arange(split.n_classes) if class_ids is None else class_ids
    examples = torch.arange(split.n_examples)[None]  # (1, n_examples)
    per_chunk = max(1, chunk // split.n_examples)
    out = []
    for start in range(0, len(class_ids), per_chunk):
        ids = class_ids[start:start + per_chunk]
        x = split.get(ids, examples.expand(len(ids), -1)).flatten(0, 1)  # (n*k, 1, 28, 28)
        out.append(backbone(x.to(next(backbone.parameters()).device)).unflatten(0, (len(ids), split.n_examples)))
    return torch.cat(out)  # (n_classes, n_examples, D)


def _entry(model, hist, seed, **extra) -> dict:
    return {"config": model.config(), "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "seed": seed, "train_seconds": hist["seconds"], "history": hist, **extra}


def train_pixel_vae(data, profile: str = "quick", seed: int = 0, device=None, progress: bool = True,
                    **overrides):
    """Train a :class:`ConditionalVAE` on ``data.train`` (held-out ELBO on ``data.val``); ``(model, history)``.

    ``overrides`` replace entries of the profile's recipe (``max_seconds``, ``steps``, ``n_classes``, ``lr``, ...).
    """
    torch.manual_seed(seed)
    model = ConditionalVAE(**overrides.pop("model", {})).to(get_device(device))
    hist = train_vae(model, data.train, val_split=data.val, seed=seed, progress=progress,
                     **{**RECIPES[get_profile(profile).name]["pixel"], **overrides})
    return model, hist


def train_feature_vae(data, backbone, profile: str = "quick", seed: int = 0, device=None, progress: bool = True,
                      **overrides):
    """Train a :class:`FeatureVAE` on the backbone features of ``data.train``; ``(model, history)``.

    ``max_classes`` (recipe) embeds a seeded random subset of the meta-train classes only, to save time.
    """
    torch.manual_seed(seed)
    recipe = {**RECIPES[get_profile(profile).name]["feature"], **overrides}
    n_train = data.train.n_classes
    ids = torch.randperm(n_train, generator=torch.Generator().manual_seed(seed))[:recipe.pop("max_classes", n_train)]
    feats = embed_split(backbone, data.train, ids)  # (n_classes, 20, D)
    model = FeatureVAE(feature_dim=feats.shape[-1], **recipe.pop("model", {})).to(feats.device)
    model.scale.fill_(feats.pow(2).mean().sqrt().item())
    val_ids = torch.randperm(data.val.n_classes, generator=torch.Generator().manual_seed(seed))[:64]
    val = FeatureSplit("val", embed_split(backbone, data.val, val_ids))
    hist = train_vae(model, FeatureSplit(data.train.name, feats), val_split=val, seed=seed, progress=progress, **recipe)
    hist["seen_classes"] = ids[hist["seen_classes"]].tolist()  # back to class ids of data.train
    return model, hist


def load_or_train_vaes(data, backbone=None, profile: str = "quick", seed: int = 0, device=None,
                       progress: bool = True, path: str | Path | None = None, save: bool = True,
                       recipe: dict | None = None) -> dict:
    """The pixel VAE (and, given a backbone, the feature VAE) from the checkpoint, training what is missing.

    Only ``data.train`` is trained on (``data.val`` is scored for the curves; ``data.test`` is never read).
    ``recipe`` overrides the profile's recipe: ``{"pixel": {...}, "feature": {...}}``.

    Returns:
        ``{"pixel": ConditionalVAE, "feature": FeatureVAE or None, "checkpoint": dict, "trained": [names],
        "fingerprint": the backbone's fingerprint or None}``; ``checkpoint["feature"][fingerprint]`` holds the
        feature VAE's record.
    """
    device = get_device(device)
    path = Path(path) if path is not None else Path(str(CHECKPOINT).format(profile=get_profile(profile).name))
    ckpt = load_checkpoint(path) if path.exists() else {"format": 1, "profile": profile}
    trained = []
    if "pixel" not in ckpt:
        model, hist = train_pixel_vae(data, profile, seed, device, progress, **dict((recipe or {}).get("pixel", {})))
        ckpt["pixel"] = _entry(model, hist, seed)
        trained.append("pixel")
    pixel = ConditionalVAE(**ckpt["pixel"]["config"])
    pixel.load_state_dict(ckpt["pixel"]["state_dict"])
    feature = None
    if backbone is not None:
        fp = backbone_fingerprint(backbone)
        features = ckpt.setdefault("feature", {})  # one feature VAE per backbone fingerprint
        if fp not in features:
            model, hist = train_feature_vae(data, backbone, profile, seed, device, progress,
                                            **dict((recipe or {}).get("feature", {})))
            features[fp] = _entry(model, hist, seed, backbone_fingerprint=fp)
            trained.append("feature")
        feature = FeatureVAE(**features[fp]["config"])
        feature.load_state_dict(features[fp]["state_dict"])
        feature = feature.to(device).eval()
    if trained and save:
        ckpt["versions"] = versions()
        atomic_torch_save(ckpt, path)
    return {"pixel": pixel.to(device).eval(), "feature": feature, "checkpoint": ckpt, "trained": trained,
            "fingerprint": fp if backbone is not None else None}


def _builder(space: str, mode: str):
    def build(data, *, backbone=None, profile: str = "quick", device=None, seed: int = 0, progress: bool = False):
        if space == "feature" and backbone is None:
            raise ValueError("the 'vae-feature' generator needs the method's backbone; use a method with .backbone "
                             "(protonet, finetune) or the pixel generator 'vae'")
        vaes = load_or_train_vaes(data, backbone if space == "feature" else None, profile, seed, device, progress)
        return VAEGenerator(vaes[space], space=space, mode=mode, backbone_fingerprint=vaes["fingerprint"])
    return build


register_generator("vae")(_builder("pixel", "prototype"))
register_generator("vae-prior")(_builder("pixel", "prior"))
register_generator("vae-feature")(_builder("feature", "prior"))
