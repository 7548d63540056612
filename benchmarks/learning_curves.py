"""Matched-budget learning curves on the papers' protocol: which method learns most per CPU-minute?

Every method is trained from its ``paper`` recipe with the same four changes: the Vinyals et al. split (the papers'
protocol), Conv-4 with 64 filters (checked), a constant learning rate (so the point at step ``k`` is what a run of
``k`` steps gives, whatever the budget; the papers' decays would make every point depend on where the run ends),
and validation every ``steps / 12`` steps on the same 100 fixed 5-way 1-shot meta-validation episodes (seed 0,
5 queries per class) for every method. Each method's number of steps is fixed in ``STEPS`` (data, so a run is
the same on any machine) and was chosen from a pilot (``--pilot``) so that every method gets about the same
training CPU time (``BUDGET_CPU_S``) on one thread of the course's 2-core CPU. The x-axis is the training CPU time
only: what each validation cost is recorded by the loop and left out. The budget fixes the steps, not the time:
two curves run at once on two cores cost more CPU per step than the pilot measured alone, so each record keeps
its own measured training CPU time, and the figure's axis shows it.

At the end of its budget, each method (its best meta-validation step, as the papers choose) is measured on 600
fixed 5-way 1-shot meta-test episodes of the Vinyals split (seed 0, 5 queries per class), the same episodes for
every method, and the per-episode accuracies are stored, so any two methods can be compared at the matched budget
with a paired 95% interval.

Usage (from the repository root, one thread per run; two runs at once on two cores):

    OMP_NUM_THREADS=1 FSLCOURSE_DEVICE=cpu FSLCOURSE_DATA=../shared/data \\
        .venv/bin/python benchmarks/learning_curves.py --pilot            # CPU-seconds per step, per method
    OMP_NUM_THREADS=1 FSLCOURSE_DEVICE=cpu FSLCOURSE_DATA=../shared/data \\
        .venv/bin/python benchmarks/learning_curves.py --method protonet  # one curve

Writes ``results/learning_curves/METHOD.json``. A run that stops (Ctrl-C) leaves its training state in
``--state-dir`` and the same command resumes it bit for bit.
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fslcourse.config import get_device  # noqa: E402
from fslcourse.data import load_omniglot  # noqa: E402
from fslcourse.evaluate import evaluate  # noqa: E402
from fslcourse.io import atomic_write_json, check_writable  # noqa: E402
from fslcourse.results import versions  # noqa: E402
from fslcourse.training import train  # noqa: E402
from fslcourse.training.api import recipe_for  # noqa: E402

METHODS = ("protonet", "matching", "relation", "finetune", "maml", "fomaml", "reptile")
BUDGET_CPU_S = 300.0  # training CPU-seconds per method (one thread)
# steps per method: BUDGET_CPU_S / the pilot's CPU-seconds per step, rounded (--pilot, 2026-12-03, one thread of the
# course's 2-core CPU: protonet 0.817, matching 0.233, relation 0.192, finetune 0.638, maml 3.955, fomaml 4.419,
# reptile 1.229 CPU-s per step; results/learning_curves/pilot.json)
STEPS = {"protonet": 367, "matching": 1285, "relation": 1565, "finetune": 470, "maml": 76, "fomaml": 68, "reptile": 244}
VALIDATIONS = 12
VAL = dict(val_n_way=5, val_n_shot=1, val_n_query=5, val_episodes=100, val_within_alphabet=False)
TEST = dict(n_way=5, n_shot=1, n_query=5, n_episodes=600, seed=0)
OUT = ROOT / "results" / "learning_curves"


def width(recipe) -> int:
    """The backbone's number of filters a recipe builds (every curve uses Conv-4 with 64)."""
    model = recipe.model
    return int(model.get("hidden", model.get("backbone_kwargs", {}).get("hidden", 64)))


def curve_recipe(name: str, steps: int):
    """The method's paper recipe with the curves' changes: Vinyals split, constant rate, shared validation."""
    _, paper = recipe_for(name, "paper")
    options = {**paper.options, "split": "vinyals"}
    if name == "finetune":  # validate the method as it is tested (it fine-tunes a head), not its features alone
        options["val_settings"] = {}
    recipe = paper.replace(steps=steps, schedule="constant", schedule_kwargs={}, options=options,
                           val_every=max(1, steps // VALIDATIONS), state_every=max(1, steps // VALIDATIONS), **VAL)
    if width(recipe) != 64 or recipe.model.get("backbone", "conv4") != "conv4":
        raise ValueError(f"{name}'s paper recipe does not build Conv-4 with 64 filters: {recipe.model}")
    return recipe


def pilot(data, device, steps: int = 6) -> dict:
    """CPU-seconds per training step of every method (the first step, which warms up, left out)."""
    out = {}
    for name in METHODS:
        recipe = curve_recipe(name, steps).replace(val_every=0, state_every=0)
        _, result = train(name, recipe, data=data, save=False, device=device, progress=False)
        cpu = result.log.cpu_seconds
        per_step = (cpu[-1] - cpu[0]) / (len(cpu) - 1)
        out[name] = {"cpu_seconds_per_step": per_step, "steps_for_budget": max(VALIDATIONS, round(BUDGET_CPU_S / per_step))}
        print(f"{name:10s} {per_step:7.3f} CPU-s per step -> {out[name]['steps_for_budget']} steps", flush=True)
    return out


def run_curve(name: str, data, device, state_dir: Path, out_dir: Path) -> dict:
    """Train one method for its ``STEPS``; its curve, its meta-test result and how it was made."""
    steps = STEPS[name]
    if steps <= 0:
        raise ValueError(f"STEPS[{name!r}] is {steps}: run --pilot and fill STEPS first")
    out = out_dir / f"{name}.json"
    check_writable(out)
    recipe = curve_recipe(name, steps)
    state = state_dir / f"curve-{name}.state.pt"
    state_dir.mkdir(parents=True, exist_ok=True)
    model, result = train(name, recipe, data=data, save=False, state=state, resume=state.exists(), device=device)
    if result.stopped != "steps":
        raise SystemExit(f"{name}: stopped at step {result.steps} ({result.stopped}); run the same command to resume")
    log = result.log
    val_cpu = log.val["cpu_seconds"]
    train_cpu = [log.cpu_seconds[s - 1] - sum(val_cpu[:i]) for i, s in enumerate(log.val_step)]
    res = evaluate(model, data.test, TEST["n_way"], TEST["n_shot"], TEST["n_query"], TEST["n_episodes"],
                   seed=TEST["seed"], device=device)
    record = {
        "method": name, "recipe": recipe.as_dict(), "budget_cpu_seconds": BUDGET_CPU_S,
        "curve": {"step": list(log.val_step), "train_cpu_seconds": train_cpu, "val_accuracy": log.val["accuracy"],
                  "val_ci95": log.val["ci95"], "val_cpu_seconds": val_cpu},
        "best_step": result.best_step, "best_val_accuracy": result.best_score,
        "test": {"protocol": {"split": "vinyals", **TEST, "checkpoint": "best meta-validation step"},
                 "accuracy": res.accuracy, "ci95": res.ci95, "episode_accuracies": res.episode_accuracies},
        "train_cpu_seconds": train_cpu[-1], "resumed": result.log.step[0] != 1,
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": 1}, "versions": versions(),
        "command": f"OMP_NUM_THREADS=1 python benchmarks/learning_curves.py --method {name}",
    }
    atomic_write_json(record, out)
    state.unlink(missing_ok=True)
    print(f"{name}: {steps} steps, {train_cpu[-1]:.0f} training CPU-s; best meta-val {result.best_score:.1f}% at step "
          f"{result.best_step}; meta-test {res.accuracy:.1f} ± {res.ci95:.1f}%  -> {out}", flush=True)
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--method", choices=METHODS, help="train this method's curve")
    parser.add_argument("--pilot", action="store_true", help="measure CPU-seconds per step of every method")
    parser.add_argument("--state-dir", type=Path, default=ROOT / "build" / "curves", help="resumable training states")
    parser.add_argument("--out-dir", type=Path, default=OUT)
    args = parser.parse_args()
    if args.pilot == (args.method is not None):
        parser.error("give --pilot or --method NAME")
    device = get_device()
    started = time.time()
    data = load_omniglot(device=device, progress=False, split="vinyals")
    if args.pilot:
        record = {"pilot": pilot(data, device), "budget_cpu_seconds": BUDGET_CPU_S, "versions": versions(),
                  "machine": {"cpu": platform.processor() or platform.machine(), "threads": 1}}
        atomic_write_json(record, args.out_dir / "pilot.json")
    else:
        run_curve(args.method, data, device, args.state_dir, args.out_dir)
    print(f"done in {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
