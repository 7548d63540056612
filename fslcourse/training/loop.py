"""The one training loop: every method and generator is trained by :func:`fit`.

Taught in ``notebooks/02_protonet.ipynb``.

Each step draws a batch and calls the model's ``train_step(batch, optimizer)``; the
scheduler steps once per step. Every ``recipe.val_every`` steps ``validate(model)``
scores the model on fixed episodes and the best weights are kept. Every
``recipe.state_every`` steps, at the last step (so a Ctrl-C in the final validation loses
nothing) and when the run stops early, the whole training state (weights, optimizer,
scheduler, every random stream, the log and the best weights) is written atomically, with
the run's ``label``, so ``fit(..., resume=True)`` continues a run bit for bit, and refuses a
state of another recipe or another label (maml and fomaml share their recipes).

Ctrl-C (or the notebook's stop button) finishes the current step, writes the state,
keeps the best weights and says so; a second Ctrl-C stops at once.
"""
from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..io import atomic_torch_save, load_checkpoint
from ..numerics import current_numerics
from ..recipe import Recipe
from ..results import cpu_name
from .log import TrainLog

STATE_FORMAT = 1


class TrainingStopped(RuntimeError):
    """A run stopped before its recipe's last step (Ctrl-C, ``max_seconds``) where a partial model must not be
    saved as finished (the generators); the command line says so and exits 3."""


class Hook:
    """Extra per-step work of an algorithm (MTL's hard tasks); its run-state is saved with the training state."""

    def after_step(self, model, step: int, stats: dict) -> None:
        """Called after every training step (before validation)."""

    def state_on_disk(self, step: int) -> None:
        """Called when the training state of ``step`` is on disk (written, or the one a run resumed from)."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class Hooks(Hook):
    """Several hooks run in order (e.g. MTL's hard tasks, then a learning-curve probe)."""

    def __init__(self, *hooks: Hook):
        self.hooks = [h for h in hooks if h is not None]

    def after_step(self, model, step: int, stats: dict) -> None:
        for h in self.hooks:
            h.after_step(model, step, stats)

    def state_on_disk(self, step: int) -> None:
        for h in self.hooks:
            h.state_on_disk(step)

    def state_dict(self) -> dict:
        return {str(i): h.state_dict() for i, h in enumerate(self.hooks)}

    def load_state_dict(self, state: dict) -> None:
        for i, h in enumerate(self.hooks):
            h.load_state_dict(state[str(i)])


@dataclass
class FitResult:
    """The trained model (best validation weights), its log and how the run ended."""

    model: torch.nn.Module
    log: TrainLog
    best_score: float | None
    best_step: int | None
    steps: int
    seconds: float
    cpu_seconds: float
    stopped: str
    state_step: int | None = None  # the step of the training state on disk (None: none was written)
    checkpoint: Path | None = None  # the file train() wrote, and the metrics it measured for it (None: not saved)
    metrics: dict | None = None

    @property
    def interrupted(self) -> bool:
        return self.stopped == "interrupted"

    @property
    def history(self) -> TrainLog:
        return self.log

    @property
    def best_val_accuracy(self) -> float | None:
        return self.best_score


def _states(obj):
    """``state_dict()`` of an optimizer/scheduler, a dict of them, or ``None``."""
    if obj is None:
        return None
    if isinstance(obj, dict):
        return {k: v.state_dict() for k, v in obj.items()}
    return obj.state_dict()


def _load_states(obj, state) -> None:
    if obj is None:
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            v.load_state_dict(state[k])
    else:
        obj.load_state_dict(state)


def _step_all(scheduler) -> None:
    for s in (scheduler.values() if isinstance(scheduler, dict) else [scheduler]):
        if s is not None:
            s.step()


class _StopRequest:
    """SIGINT during :func:`fit`: the first one asks to stop after the current step, a second one stops now."""

    def __init__(self):
        self.requested, self._old = False, None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
        return False


def _accelerator_generator(device: torch.device):
    """``(get_state, set_state)`` of the generator of the accelerator ``device`` (CUDA, MPS); ``None`` on the CPU,
    whose generator the state saves apart."""
    if device.type == "cuda":  # cuda-ok: only reads the model's device type
        return (lambda: torch.cuda.get_rng_state(device)), (lambda s: torch.cuda.set_rng_state(s, device))
    if device.type == "mps":
        return torch.mps.get_rng_state, torch.mps.set_rng_state
    return None


def fit(model: torch.nn.Module, batches, recipe: Recipe, *, optimizer, scheduler=None, validate=None,
        hook: Hook | None = None, streams: dict[str, torch.Generator] | None = None,
        state_path: str | Path | None = None, resume: bool = False, label: str | None = None,
        keep_best: bool = True, progress: bool = True) -> FitResult:
    """Train ``model`` for ``recipe.steps`` steps, keeping the best weights on validation.

    Args:
        model: has ``train_step(batch, optimizer) -> {"loss": float, ...}``.
        batches: no-argument callable returning the next batch (it draws from ``streams``).
        recipe: steps, validation cadence, state cadence and the optional wall-clock cap.
        optimizer: a :class:`torch.optim.Optimizer`, or a dict of them (a GAN's two players).
        scheduler: ``None``, a scheduler, or a dict of them; stepped once per step.
        validate: ``callable(model) -> {"score": float, ...}`` (higher is better; the other
            entries are logged, with ``cpu_seconds``, what the validation cost), or ``None`` to keep the last weights.
        hook: per-step extra work and its saved run-state.
        streams: every random generator the batches and the step draw from, by name
            (their states are saved with the training state).
        state_path: where the resumable training state is written (``None``: never).
        resume: continue from ``state_path`` if it exists (the recipe must match).
        label: name in the progress bar.
        keep_best: return the weights with the best validation score (else the last weights; validation
            is then only logged, as for the generators).
        progress: show a tqdm progress bar.

    Returns:
        A :class:`FitResult`; ``model`` holds the best validation weights (or the last, see ``keep_best``).
    """
    streams = dict(streams or {})
    hook = hook or Hook()
    state_path = Path(state_path) if state_path is not None else None
    log, best, step, saved = TrainLog(), (None, None, None), 0, None
    device = next(model.parameters(), torch.empty(0)).device
    accelerator = _accelerator_generator(device)
    wall0, cpu0 = 0.0, 0.0
    if resume and state_path is not None and state_path.exists():
        st = load_checkpoint(state_path, map_location="cpu")  # RNG states must stay on the CPU; load_state_dict moves the rest
        if st.get("label", label) != label:  # first: another method's recipe differs too, but that is not the cause
            raise ValueError(f"the training state {state_path} was written by a run of {st['label']}, not "
                             f"{label}; resume it with {st['label']}, or give {label} another state file")
        if st.get("format") != STATE_FORMAT or recipe.differs_from(st.get("recipe", {})):
            diff = recipe.differs_from(st.get("recipe", {}))
            raise ValueError(f"the training state {state_path} was written by another recipe (differs in "
                             f"{', '.join(diff) or 'its format'}); resume with the recipe it was started with, "
                             f"or start again with --overwrite (train(..., overwrite=True)), which replaces {state_path}")
        model.load_state_dict(st["model"])
        _load_states(optimizer, st["optimizer"])
        _load_states(scheduler, st["scheduler"])
        for name, g in streams.items():
            g.set_state(st["streams"][name])
        torch.set_rng_state(st["torch_rng"])
        if st.get("gpu_rng") is not None and accelerator is not None:  # the GPU's own generator (dropout there)
            accelerator[1](st["gpu_rng"])
        hook.load_state_dict(st["hook"])
        log, step = TrainLog.from_dict(st["log"]), st["step"]
        saved = step
        hook.state_on_disk(step)
        best = (st["best_score"], st["best_step"], st["best_state"])
        wall0, cpu0 = st["seconds"], st["cpu_seconds"]
    numerics = current_numerics()
    if step and log.numerics != numerics:  # the other numerics round differently: the resumed run would drift
        raise ValueError(f"the training state {state_path} was written with {log.numerics} numerics and this "
                         f"process has {numerics} ones; resume with FSLCOURSE_NUMERICS={log.numerics} (or "
                         f"--numerics {log.numerics}) so that the run stays bit for bit")
    log.add_sitting(step, cpu_name(), str(device), numerics)
    start, cpu_start = time.perf_counter() - wall0, time.process_time() - cpu0
    sitting_start = time.perf_counter()  # max_seconds caps each sitting: a resumed run gets its time again

    def write_state():
        nonlocal saved
        if state_path is None:
            return
        atomic_torch_save({
            "format": STATE_FORMAT, "recipe": recipe.as_dict(), "label": label, "step": step,
            "model": {k: v.detach().clone() for k, v in model.state_dict().items()},
            "optimizer": _states(optimizer), "scheduler": _states(scheduler),
            "streams": {k: g.get_state() for k, g in streams.items()}, "torch_rng": torch.get_rng_state(),
            "gpu_rng": accelerator[0]() if accelerator is not None else None,
            "hook": hook.state_dict(), "log": log.as_dict(), "best_score": best[0], "best_step": best[1],
            "best_state": best[2], "seconds": time.perf_counter() - start,
            "cpu_seconds": time.process_time() - cpu_start}, state_path)
        saved = step  # only once it is on disk: a Ctrl-C during the write leaves the older state
        hook.state_on_disk(step)

    def run_validation():
        nonlocal best
        cpu0 = time.process_time()
        metrics = dict(validate(model))
        metrics["cpu_seconds"] = time.process_time() - cpu0  # what validating cost (a learning curve leaves it out)
        score = metrics.pop("score")
        log.add_val(step, metrics)
        model.train()
        if best[0] is None or score > best[0]:
            state = {k: v.detach().clone() for k, v in model.state_dict().items()} if keep_best else None
            best = (score, step, state)

    model.train()
    stopped = "steps"
    bar = tqdm(total=recipe.steps, initial=step, desc=f"training {label or type(model).__name__}",
               disable=not progress)
    with _StopRequest() as stop:
        try:
            while step < recipe.steps:
                stats = model.train_step(batches(), optimizer)
                _step_all(scheduler)
                step += 1
                log.add_step(step, time.perf_counter() - start, time.process_time() - cpu_start, stats)
                hook.after_step(model, step, stats)
                bar.update(1)
                if step % 10 == 0:
                    bar.set_postfix({k: f"{v:.3f}" for k, v in stats.items()})
                if validate is not None and recipe.val_every and step % recipe.val_every == 0:
                    run_validation()
                if recipe.state_every and step % recipe.state_every == 0 and step < recipe.steps:
                    write_state()
                if stop.requested:
                    stopped = "interrupted"
                    break
                if recipe.max_seconds is not None and time.perf_counter() - sitting_start > recipe.max_seconds:
                    stopped = "max_seconds"
                    break
        except KeyboardInterrupt:  # raised inside a step: its weights may be half-updated; keep the last state file
            stopped = "interrupted-in-step"
        finally:
            bar.close()
    if stopped in ("interrupted", "max_seconds") or (stopped == "steps" and recipe.state_every):
        write_state()  # at the last step too: Ctrl-C in the final validation or test leaves every step saved
    log.stopped = "interrupted" if stopped.startswith("interrupted") else stopped
    if validate is not None and log.stopped == "steps" and (not log.val_step or log.val_step[-1] != step):
        run_validation()
    if best[2] is not None:
        model.load_state_dict(best[2])
    if log.stopped == "interrupted":
        kept = (f"the best model so far (validation score {best[0]:.1f} at step {best[1]})"
                if best[0] is not None else "the current weights (no validation had run yet)")
        where = (f"; the training state of step {saved} is in {state_path} (resume with --resume)"
                 if saved is not None else "; no training state was written (a new run starts again)"
                 if state_path else "")
        print(f"Training interrupted at step {step}; kept {kept}{where}.")
    model.eval()
    return FitResult(model, log, best[0], best[1], step, time.perf_counter() - start,
                     time.process_time() - cpu_start, log.stopped, saved)
