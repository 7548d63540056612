"""How each kind of recipe is set up for :func:`~fslcourse.training.loop.fit`.

Taught in ``notebooks/02_protonet.ipynb`` (episodic), ``04`` (pre-training) and ``06``
(meta-transfer). A recipe names its trainer (``recipe.trainer``):

* ``episodic``: meta-batches of episodes, the method's ``train_step`` (ProtoNet, Matching
  Networks, the Relation Network, MAML, first-order MAML, Reptile);
* ``pretrain``: classification pre-training of the method's backbone over every meta-train
  class (:mod:`.pretrain`; the fine-tuning baseline, MTL's phase 1);
* ``meta-transfer``: MTL's phase 2 on the phase-1 backbone, with the hard-task hook.

To add a method, give it ``RECIPES`` and, if its update is not "backpropagate the mean
query loss", a ``train_step``; a new trainer is needed only for a new kind of data.
"""
from __future__ import annotations

import dataclasses
import functools
import inspect
from dataclasses import dataclass, field

import torch

from ..config import seed_everything
from ..data.episodes import EpisodeSampler
from ..evaluate import evaluate
from ..generative.classical import Deformation
from ..generative.task_synthesis import scarce_split
from ..methods.base import fixed_n_way, get_method
from ..methods.mtl import hard_task_batch
from ..recipe import Recipe
from .loop import Hook
from .pretrain import ClassBatches, Pretrainer
from .schedules import make_scheduler


@dataclass
class Run:
    """Everything :func:`fit` needs, plus the classifier that is saved (``method``)."""

    method: torch.nn.Module
    trained: torch.nn.Module
    batches: object
    optimizer: object
    scheduler: object
    validate: object
    hook: Hook | None = None
    streams: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)


def make_optimizer(params, recipe: Recipe) -> torch.optim.Optimizer:
    """The recipe's optimizer over ``params`` (Adam or SGD, with ``optimizer_kwargs``)."""
    params = [p for p in params if p.requires_grad]
    kw = dict(recipe.optimizer_kwargs)
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(params, lr=recipe.lr, **kw)
    return torch.optim.Adam(params, lr=recipe.lr, **kw)


def make_validate(method, split, recipe: Recipe, device):
    """``validate(model) -> {"score", "accuracy", "ci95"}`` on the recipe's fixed validation episodes (seed 0).

    ``recipe.options["val_settings"]`` are attributes of ``method`` changed while it is validated
    (the fine-tuning baseline validates its features with ``steps=0``: no fine-tuning, cheap).
    """
    if recipe.val_episodes < 2:  # checked before any step: the final validation runs even with val_every=0
        raise ValueError(f"recipe val_episodes={recipe.val_episodes}, but a method is validated at the end of its "
                         "run (and every val_every steps) on at least 2 episodes; raise val_episodes")
    try:  # the validation episodes, checked before any step (they are first drawn val_every steps in)
        if split is not None:  # None: a caller that never validates (fit without validate)
            EpisodeSampler(split, recipe.val_n_way, recipe.val_n_shot, recipe.val_n_query,
                           within_alphabet=recipe.val_within_alphabet)
    except ValueError as err:
        raise ValueError(f"recipe val_n_way={recipe.val_n_way}, val_n_shot={recipe.val_n_shot}, val_n_query="
                         f"{recipe.val_n_query}: the validation episodes cannot be drawn ({err}); change those "
                         "val_ fields") from None
    fixed = fixed_n_way(method)
    if fixed is not None and fixed != recipe.val_n_way:
        raise ValueError(f"recipe val_n_way={recipe.val_n_way}, but this {type(method).__name__}'s head is fixed at "
                         f"{fixed} ways; set val_n_way={fixed}")
    settings = dict(recipe.options.get("val_settings", {}))

    def validate(_model):
        saved = {k: getattr(method, k) for k in settings}
        for k, v in settings.items():
            setattr(method, k, v)
        try:
            res = evaluate(method, split, recipe.val_n_way, recipe.val_n_shot, recipe.val_n_query,
                           recipe.val_episodes, seed=0, within_alphabet=recipe.val_within_alphabet, device=device)
        finally:
            for k, v in saved.items():
                setattr(method, k, v)
        return {"score": res.accuracy, "accuracy": res.accuracy, "ci95": res.ci95}
    return validate


def episodic(name: str, recipe: Recipe, data, device) -> Run:
    """Meta-batches of ``recipe.meta_batch`` episodes; the method's own ``train_step``."""
    seed_everything(recipe.seed)
    model = get_method(name)(**recipe.model).to(device)
    optimizer = make_optimizer(model.parameters(), recipe)
    train = data.train
    if "alphabets" in recipe.options:  # the scarce setting, with synthetic classes if asked (task synthesis)
        train = scarce_split(train, recipe.options["alphabets"], recipe.options.get("recombined", 0), recipe.seed)
    sampler = EpisodeSampler(train.to(device), recipe.n_way, recipe.n_shot, recipe.n_query, seed=recipe.seed,
                             within_alphabet=recipe.within_alphabet)
    streams = {"episodes": sampler.generator}
    if isinstance(getattr(model, "generator", None), torch.Generator):  # the method's own draws (Reptile's batches)
        streams["method"] = model.generator.manual_seed(recipe.seed + 2)
    batches = functools.partial(sampler.sample_batch, recipe.meta_batch)
    if "augment" in recipe.options:
        batches = deformed(batches, Deformation(**recipe.options["augment"]), streams, recipe.seed)
    return Run(model, model, batches, optimizer, make_scheduler(optimizer, recipe),
               make_validate(model, data.val, recipe, device), streams=streams, info={"train_split": train})


def deformed(batches, deformation: Deformation, streams: dict, seed: int):
    """``batches`` with every support and query image deformed at random (``recipe.options["augment"]``).

    Classical augmentation in training (Simard et al. 2003): each image is moved by its own
    random affine map and elastic field, drawn from a stream of its own (``streams["augment"]``,
    saved with the training state, so a resumed run draws the same deformations).
    """
    g = streams["augment"] = torch.Generator().manual_seed(seed + 1)

    def warp(x):
        return deformation.deform(x.flatten(0, -4), g).view_as(x)  # (..., C, H, W) -> (n, C, H, W) -> back

    def draw():
        ep = batches()
        return dataclasses.replace(ep, support_x=warp(ep.support_x), query_x=warp(ep.query_x))
    return draw


def pretrain(name: str, recipe: Recipe, data, device) -> Run:
    """Cross-entropy over every meta-train class: ``recipe.n_way`` classes × ``recipe.n_shot`` images a batch.

    The method's ``backbone`` is trained with its ``classifier`` if it has one (the fine-tuning
    baseline), else with a new linear head that is dropped afterwards (MTL's phase 1).
    """
    seed_everything(recipe.seed)
    cls = get_method(name)
    kwargs = dict(recipe.model)
    if "n_classes" in inspect.signature(cls).parameters:  # a pre-training head of its own (fine-tuning baseline)
        kwargs.setdefault("n_classes", data.train.n_classes)
    model = cls(**kwargs)
    head = getattr(model, "classifier", None)
    if head is None:
        head = torch.nn.Linear(model.backbone.out_dim, data.train.n_classes)
    frozen = [p for p in model.backbone.parameters() if not p.requires_grad]
    for p in frozen:  # MTL's θ-only model freezes Θ; phase 1 is what trains it
        p.requires_grad_(True)
    trained = Pretrainer(model.backbone, head).to(device)
    model.to(device)
    optimizer = make_optimizer(trained.parameters(), recipe)
    g = torch.Generator().manual_seed(recipe.seed)
    batches = ClassBatches(data.train, recipe.n_way, recipe.n_shot, g, device)
    validate = make_validate(model, data.val, recipe, device)
    return Run(model, trained, batches, optimizer, make_scheduler(optimizer, recipe), validate,
               streams={"batches": g}, info={"refreeze": frozen})


class HardTasks(Hook):
    """MTL's hard-task (HT) meta-batches: once ``n_way`` distinct failure classes are recorded, train on a
    batch of tasks drawn from them only (Sun et al. 2019, arXiv:1812.02391, Section 4.2)."""

    def __init__(self, model, split, recipe: Recipe, optimizer, generator: torch.Generator):
        self.model, self.split, self.recipe, self.optimizer, self.generator = model, split, recipe, optimizer, generator

    def after_step(self, model, step: int, stats: dict) -> None:
        r = self.recipe
        model.tasks_seen += r.meta_batch
        if model.hard_tasks and len(set(model.failures)) >= r.n_way:
            batch = hard_task_batch(self.split, model.failures, r.n_way, r.n_shot, r.n_query,
                                    r.options["hard_tasks"], self.generator)
            model.train_step(batch, self.optimizer)
            model.tasks_seen += r.options["hard_tasks"]
            model.hard_batches += 1
            model.failures = []

    def state_dict(self) -> dict:
        m = self.model
        return {"failures": list(m.failures), "tasks_seen": m.tasks_seen, "hard_batches": m.hard_batches}

    def load_state_dict(self, state: dict) -> None:
        self.model.failures = list(state["failures"])
        self.model.tasks_seen, self.model.hard_batches = state["tasks_seen"], state["hard_batches"]


def check_hard_tasks(recipe: Recipe) -> None:
    """Refuse, before phase 1 is trained, an MTL recipe whose hard-task batches could not be drawn (it failed at
    the first hard batch, mid-run, inside ``torch.stack``)."""
    n = recipe.options.get("hard_tasks")
    if recipe.model.get("hard_tasks", True) and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"recipe options hard_tasks={n!r}: give the tasks of a hard-task batch, a whole number of 1 "
                         "or more, or model hard_tasks=False to train without hard tasks")


def meta_transfer(name: str, recipe: Recipe, data, device, phase1_state: dict) -> Run:
    """MTL's phase 2: Φ (or Θ for ``mode="ft"``) and θ's initialisation, on the phase-1 backbone."""
    model = get_method(name)(**recipe.model)
    model.load_backbone(phase1_state)
    model.to(device)
    seed_everything(recipe.seed)
    train = data.train.to(device)
    sampler = EpisodeSampler(train, recipe.n_way, recipe.n_shot, recipe.n_query, seed=recipe.seed,
                             within_alphabet=recipe.within_alphabet)
    g_hard = torch.Generator().manual_seed(recipe.seed + 1)
    optimizer = make_optimizer(model.parameters(), recipe)
    model.failures, model.tasks_seen, model.hard_batches = [], 0, 0
    hook = HardTasks(model, train, recipe, optimizer, g_hard)
    return Run(model, model, lambda: sampler.sample_batch(recipe.meta_batch), optimizer,
               make_scheduler(optimizer, recipe), make_validate(model, data.val, recipe, device), hook,
               streams={"episodes": sampler.generator, "hard_tasks": g_hard})


TRAINERS = {"episodic": episodic, "pretrain": pretrain, "meta-transfer": meta_transfer}


def regression(model_cls, recipe: Recipe) -> Run:
    """Sinusoid regression (MAML's Section 5.1): ``recipe.meta_batch`` tasks of ``n_shot`` + ``n_query`` points."""
    from ..data.sinusoid import SinusoidTasks

    torch.manual_seed(recipe.seed)
    model = model_cls(**recipe.model)
    tasks = SinusoidTasks(seed=recipe.seed)
    optimizer = make_optimizer(model.parameters(), recipe)
    return Run(model, model, lambda: tasks.sample(recipe.meta_batch, recipe.n_shot, recipe.n_query), optimizer,
               make_scheduler(optimizer, recipe), None, streams={"tasks": tasks.generator})
