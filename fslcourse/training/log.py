"""The one record of a training run: per-step metrics, periodic validation, and how the run ended.

Taught in ``notebooks/02_protonet.ipynb``. Every run returns a :class:`TrainLog` (with
``.plot()``) and every checkpoint stores its ``as_dict()``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


def smooth(values, k: int) -> list[float]:
    """Moving average over windows of ``k`` values (``len(values) - k + 1`` of them)."""
    k = max(1, min(k, len(values)))
    kernel = torch.ones(1, 1, k, dtype=torch.float64) / k
    return torch.conv1d(torch.tensor(values, dtype=torch.float64)[None, None], kernel).flatten().tolist()  # (1, 1, n) -> (n - k + 1,)


def in_percent(accuracies: list[float]) -> list[float]:
    """Training accuracies in percent: logs hold fractions (0-1); a file logged in percent (the hallucinator's
    history in ``gan-quick.pt``) is left as it is."""
    return [100 * a for a in accuracies] if max(accuracies, default=0) <= 1 else list(accuracies)


@dataclass
class TrainLog:
    """What happened during training.

    Attributes:
        step: the step number of each logged training step (1-based).
        seconds, cpu_seconds: wall-clock and process CPU seconds since the run started, per step.
        train: ``{metric: [value per step]}`` (e.g. ``loss``, ``accuracy`` in 0-1).
        val_step: steps at which validation ran; ``val``: ``{metric: [value per validation]}``.
        stopped: ``"steps"`` (the budget), ``"max_seconds"`` (the optional wall-clock cap) or
            ``"interrupted"`` (Ctrl-C).
        sittings: one entry per start or resume of the run, ``{"from_step", "cpu", "device", "torch",
            "numerics"}``: with native numerics a run is bit for bit reproducible only on the same machine, so a
            run resumed elsewhere says where each stretch of steps ran (``"cpu": "not recorded"`` for a stretch
            from before sittings were logged; no ``numerics`` for one from before they were: native).
    """

    step: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)
    train: dict[str, list[float]] = field(default_factory=dict)
    val_step: list[int] = field(default_factory=list)
    val: dict[str, list[float]] = field(default_factory=dict)
    stopped: str = ""
    sittings: list[dict] = field(default_factory=list)

    def add_sitting(self, step: int, cpu: str, device: str, numerics: str = "native") -> None:
        """Record that the run (re)started at ``step`` on this ``cpu`` and ``device`` with these ``numerics``
        (:mod:`fslcourse.numerics`); an older log that has steps but no sitting gets a first one, from step 0,
        marked as not recorded."""
        if not self.sittings and step > 0:
            self.sittings.append({"from_step": 0, "cpu": "not recorded", "device": "not recorded",
                                  "torch": "not recorded"})
        self.sittings.append({"from_step": step, "cpu": cpu, "device": device, "torch": str(torch.__version__),
                              "numerics": numerics})

    @property
    def numerics(self) -> str:
        """The numerics of the last sitting (``"native"`` for a log from before they were recorded)."""
        return self.sittings[-1].get("numerics", "native") if self.sittings else "native"

    def add_step(self, step: int, seconds: float, cpu_seconds: float, stats: dict) -> None:
        self.step.append(step)
        self.seconds.append(seconds)
        self.cpu_seconds.append(cpu_seconds)
        for key, value in stats.items():
            self.train.setdefault(key, []).append(float(value))

    def add_val(self, step: int, metrics: dict) -> None:
        self.val_step.append(step)
        for key, value in metrics.items():
            self.val.setdefault(key, []).append(float(value))

    def __getattr__(self, name: str):
        """``log.loss``, ``log.val_accuracy``: a training or validation series by name."""
        d = self.__dict__
        if name in d.get("train", {}):
            return d["train"][name]
        if name.startswith("val_") and name[4:] in d.get("val", {}):
            return d["val"][name[4:]]
        raise AttributeError(name)

    def as_dict(self) -> dict:
        """One flat dict of lists: ``step``, ``seconds``, ``cpu_seconds``, every training metric, ``val_step`` and
        ``val_<metric>``, plus ``stopped`` and ``sittings``."""
        out = {"step": list(self.step), "seconds": list(self.seconds), "cpu_seconds": list(self.cpu_seconds),
               "val_step": list(self.val_step), "stopped": self.stopped, "sittings": [dict(s) for s in self.sittings]}
        out.update({k: list(v) for k, v in self.train.items()})
        out.update({f"val_{k}": list(v) for k, v in self.val.items()})
        return out

    @classmethod
    def from_dict(cls, d: dict) -> TrainLog:
        """Inverse of :meth:`as_dict`."""
        fixed = {"step", "seconds", "cpu_seconds", "val_step", "stopped", "sittings"}
        log = cls(list(d["step"]), list(d["seconds"]), list(d.get("cpu_seconds", [])), val_step=list(d["val_step"]),
                  stopped=d.get("stopped", ""), sittings=[dict(s) for s in d.get("sittings", [])])
        for key, value in d.items():
            if key in fixed:
                continue
            if key.startswith("val_"):
                log.val[key[4:]] = list(value)
            else:
                log.train[key] = list(value)
        return log

    def plot(self, smooth_over: int = 20, title: str | None = None, train_label: str = "training",
             val_label: str = "validation"):
        """One panel per training metric (smoothed over ``smooth_over`` steps) with validation points on it.

        ``train_label`` and ``val_label`` name the two curves in the legends (" (smoothed)" and, on the accuracy
        panel, " (95% CI)" are appended); say there what the episodes are when training and validation differ (a
        60-way training curve below a 5-way validation one is no overfitting in reverse).
        """
        import matplotlib.pyplot as plt

        names = list(self.train) or ["loss"]
        fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.2), squeeze=False)
        for ax, name in zip(axes[0], names):
            values = self.train.get(name, [])
            percent = name.startswith("accuracy")
            if percent:
                values = in_percent(values)
            if values:
                k = max(1, min(smooth_over, len(values)))
                ax.plot(self.step[k - 1:], smooth(values, k), label=f"{train_label} (smoothed)")
            if name in self.val:
                err = self.val.get("ci95")
                ax.errorbar(self.val_step, self.val[name], yerr=err if name == "accuracy" else None, fmt="o-", ms=3,
                            label=val_label + (" (95% CI)" if err and name == "accuracy" else ""))
            ax.set(xlabel="step", ylabel=f"{name} (%)" if percent else name, title=name)
            ax.legend(loc="best")
        if title:
            fig.suptitle(title)
        fig.tight_layout()
        return fig
