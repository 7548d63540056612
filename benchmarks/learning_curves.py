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
                                                              # (--pilot --method A --method B: those only)
    OMP_NUM_THREADS=1 FSLCOURSE_DEVICE=cpu FSLCOURSE_DATA=../shared/data \\
        .venv/bin/python benchmarks/learning_curves.py --method protonet --overwrite  # one curve (replaces its record)

Each record also keeps the training CPU-seconds per 1,000 training episodes and the process's peak resident memory
(records written before these two fields existed lack them).

Writes ``results/learning_curves/METHOD.json``. A run that stops (Ctrl-C) leaves its training state in
``--state-dir`` and the same command resumes it bit for bit.
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fslcourse.cli import one_line_errors
from fslcourse.config import get_device  # noqa: E402
from fslcourse.data import load_omniglot  # noqa: E402
from fslcourse.evaluate import evaluate  # noqa: E402
from fslcourse.io import atomic_torch_save, atomic_write_json, check_record_target, check_writable  # noqa: E402
from fslcourse.report import CURVE_METHODS  # noqa: E402
from fslcourse.results import versions  # noqa: E402
from fslcourse.training import train  # noqa: E402
from fslcourse.training.api import recipe_for  # noqa: E402

METHODS = CURVE_METHODS
# The zero-head confound: MAML and first-order MAML with a zero head (the zeroing trick, Kao et al. 2022,
# arXiv:2106.15367: with it the first inner step changes only the head, so first-order MAML's meta-gradient
# loses the path through the support images) and with 5 inner steps, on the same terms and budget as the
# plain curves. Each variant is its method's curve recipe with these model changes.
VARIANTS = {"maml-zero-head": ("maml", {"zero_head": True}), "fomaml-zero-head": ("fomaml", {"zero_head": True}),
            "maml-5-steps": ("maml", {"inner_steps": 5, "test_inner_steps": 5}),
            "fomaml-5-steps": ("fomaml", {"inner_steps": 5, "test_inner_steps": 5}),
            "maml-zero-head-5-steps": ("maml", {"zero_head": True, "inner_steps": 5, "test_inner_steps": 5}),
            "fomaml-zero-head-5-steps": ("fomaml", {"zero_head": True, "inner_steps": 5, "test_inner_steps": 5})}
CURVES = METHODS + tuple(VARIANTS)
BUDGET_CPU_S = 300.0  # training CPU-seconds per method (one thread)
# steps per method: BUDGET_CPU_S / the pilot's CPU-seconds per step, rounded (--pilot, one thread of the course's
# 2-core CPU, nothing else running; results/learning_curves/pilot.json): protonet 0.817, matching 0.233,
# relation 0.192, finetune 0.638, mtl 0.986 (MTL's phase 2) CPU-s per step. The MAML family and Reptile
# were piloted again (2026-12-03) when their paper recipes took the paper code's one query per class (MAML had
# 15) and the batched back-end: maml 0.892, fomaml 0.281, reptile 0.883, maml-zero-head 0.738,
# fomaml-zero-head 0.321, maml-5-steps 3.738, fomaml-5-steps 1.008, maml-zero-head-5-steps 4.268,
# fomaml-zero-head-5-steps 1.017. Reptile again (2026-12-03) when its paper recipe took the paper's inner Adam on
# mini-batches of 10 (it had 5 full-batch SGD steps on all 50 images): 0.379.
STEPS = {"protonet": 367, "matching": 1285, "relation": 1565, "finetune": 470, "maml": 336, "fomaml": 1069,
         "reptile": 791, "mtl": 152, "maml-zero-head": 407, "fomaml-zero-head": 934, "maml-5-steps": 80,
         "fomaml-5-steps": 298, "maml-zero-head-5-steps": 70, "fomaml-zero-head-5-steps": 295}
# MTL has two phases on one Conv-4: phase 1 is the fine-tuning baseline's pre-training (same batches, rate and
# width) for half of its steps, about half the budget; phase 2 (scale and shift + hard tasks) gets the rest.
# Its curve counts both phases' CPU, so MTL is compared at the same total budget, its pre-training included.
MTL_PHASE1_STEPS = STEPS["finetune"] // 2
VALIDATIONS = 12
VAL = dict(val_n_way=5, val_n_shot=1, val_n_query=5, val_episodes=100, val_within_alphabet=False)
TEST = dict(n_way=5, n_shot=1, n_query=5, n_episodes=600, seed=0)
OUT = ROOT / "results" / "learning_curves"


def width(recipe) -> int:
    """The backbone's number of filters a recipe builds (every curve uses Conv-4 with 64)."""
    model = recipe.model
    return int(model.get("hidden", model.get("backbone_kwargs", {}).get("hidden", 64)))


def method_of(name: str) -> str:
    """The registered method a curve trains (a variant's base method)."""
    return VARIANTS[name][0] if name in VARIANTS else name


def curve_recipe(name: str, steps: int):
    """The method's paper recipe with the curves' changes: Vinyals split, constant rate, shared validation."""
    _, paper = recipe_for(method_of(name), "paper")
    if name in VARIANTS:
        paper = paper.replace(model=VARIANTS[name][1])
    options = {**paper.options, "split": "vinyals"}
    if name == "finetune":  # validate the method as it is tested (it fine-tunes a head), not its features alone
        options["val_settings"] = {}
    recipe = paper.replace(steps=steps, schedule="constant", schedule_kwargs={}, options=options,
                           val_every=max(1, steps // VALIDATIONS), state_every=max(1, steps // VALIDATIONS), **VAL)
    if width(recipe) != 64 or recipe.model.get("backbone", "conv4") != "conv4":
        raise ValueError(f"{name}'s paper recipe does not build Conv-4 with 64 filters: {recipe.model}")
    return recipe


def mtl_recipes(steps: int):
    """MTL's two curve recipes on Conv-4 with 64 filters: phase 1 (``mtl-theta-only``: the fine-tuning baseline's
    pre-training for ``MTL_PHASE1_STEPS``) and phase 2 (``mtl``: its paper recipe for ``steps``, constant rate)."""
    pre = curve_recipe("finetune", MTL_PHASE1_STEPS)
    conv4 = {"backbone": "conv4", "hidden": 64}
    every1, every2 = max(1, MTL_PHASE1_STEPS // (VALIDATIONS // 2)), max(1, steps // (VALIDATIONS // 2))
    _, p1 = recipe_for("mtl-theta-only", "paper")
    phase1 = p1.replace(n_way=pre.n_way, n_shot=pre.n_shot, lr=pre.lr, steps=MTL_PHASE1_STEPS, schedule="constant",
                        schedule_kwargs={}, model=conv4, options={"split": "vinyals"}, val_every=every1,
                        state_every=every1, **VAL)
    _, p2 = recipe_for("mtl", "paper")
    phase2 = p2.replace(steps=steps, schedule="constant", schedule_kwargs={}, model=conv4,
                        options={"split": "vinyals"}, val_every=every2, state_every=every2, **VAL)
    return phase1, phase2


def train_mtl(data, device, state_dir: Path, steps: int, progress: bool = True):
    """Both phases of MTL's curve, resumable: phase 1's result is kept in ``state_dir`` until phase 2 is done.

    Returns:
        ``(model, phase-2 FitResult, phase-1 log (as a dict), (phase-1 recipe, phase-2 recipe))``.
    """
    import torch

    r1, r2 = mtl_recipes(steps)
    done1 = state_dir / "curve-mtl.phase1.pt"
    if done1.exists():
        kept = torch.load(done1, weights_only=True)
        backbone, log1 = kept["backbone"], kept["log"]
        if log1["step"][-1] != r1.steps:
            raise SystemExit(f"{done1} holds a phase 1 of {log1['step'][-1]} steps but MTL_PHASE1_STEPS is {r1.steps}; "
                             "delete it to train phase 1 again")
    else:
        state1 = state_dir / "curve-mtl-phase1.state.pt"
        model1, res1 = train("mtl-theta-only", r1, data=data, save=False, state=state1, resume=state1.exists(),
                             device=device, progress=progress)
        if res1.stopped != "steps":
            raise SystemExit(f"mtl phase 1: stopped at step {res1.steps} ({res1.stopped}); run the same command to resume")
        backbone = {k: v.detach().cpu() for k, v in model1.backbone.state_dict().items()}
        log1 = res1.log.as_dict()
        atomic_torch_save({"backbone": backbone, "log": log1}, done1)
        state1.unlink(missing_ok=True)
    state2 = state_dir / "curve-mtl.state.pt"
    model, result = train("mtl", r2, data=data, save=False, state=state2, resume=state2.exists(), device=device,
                          phase1=backbone, progress=progress)
    return model, result, log1, (r1, r2)


def episodes_seen(recipe, model, phase1=None) -> int:
    """Training episodes a curve's run saw: ``steps × meta_batch`` (MTL: its recorded tasks, hard tasks included,
    plus one per phase-1 batch; a pre-training batch counts as one episode)."""
    if hasattr(model, "tasks_seen"):
        return model.tasks_seen + (phase1.steps if phase1 is not None else 0)
    return recipe.steps * recipe.meta_batch


def training_cpu(log: dict) -> float:
    """Training CPU-seconds at the end of a run: its last logged step's, the validations before that step left out.

    ``fit`` logs a step's CPU time before that step's validation, so a validation at the last step is not in it."""
    last = len(log["cpu_seconds"])  # steps are logged one by one from step 1
    return log["cpu_seconds"][-1] - sum(c for s, c in zip(log["val_step"], log["val_cpu_seconds"]) if s < last)


def train_points(log: dict) -> tuple[list[int], list[float]]:
    """Validation steps and the training CPU-seconds before each (what the validations cost left out)."""
    val_cpu = log["val_cpu_seconds"]
    return list(log["val_step"]), [log["cpu_seconds"][s - 1] - sum(val_cpu[:i]) for i, s in enumerate(log["val_step"])]


def pilot(data, device, names=CURVES, known: dict | None = None, steps: int = 6) -> dict:
    """CPU-seconds per training step of each of ``names`` (the first step, which warms up, left out).

    ``known``: earlier pilot entries (MTL's phase-2 budget is what phase 1, the fine-tuning baseline's
    pre-training for ``MTL_PHASE1_STEPS``, leaves of the budget).
    """
    out = dict(known or {})
    if "mtl" in names and "finetune" not in out and "finetune" not in names[:names.index("mtl")]:
        raise ValueError("MTL's budget leaves out its phase-1 pre-training, priced at the fine-tuning baseline's cost "
                         "per step: measure it first, or with it (--pilot --method finetune --method mtl)")
    for name in names:
        if name == "mtl":  # phase 2's cost per step, from a backbone pre-trained for 2 steps
            r1, r2 = (r.replace(val_every=0, state_every=0) for r in mtl_recipes(steps))
            model1, _ = train("mtl-theta-only", r1.replace(steps=2), data=data, save=False, device=device,
                              progress=False)
            _, result = train(name, r2, data=data, save=False, device=device, progress=False,
                              phase1=model1.backbone.state_dict())
        else:
            recipe = curve_recipe(name, steps).replace(val_every=0, state_every=0)
            _, result = train(method_of(name), recipe, data=data, save=False, device=device, progress=False)
        cpu = result.log.cpu_seconds
        per_step = (cpu[-1] - cpu[0]) / (len(cpu) - 1)
        budget = BUDGET_CPU_S - (MTL_PHASE1_STEPS * out["finetune"]["cpu_seconds_per_step"] if name == "mtl" else 0)
        out[name] = {"cpu_seconds_per_step": per_step, "steps_for_budget": max(VALIDATIONS, round(budget / per_step))}
        print(f"{name:10s} {per_step:7.3f} CPU-s per step -> {out[name]['steps_for_budget']} steps", flush=True)
    return out


def run_curve(name: str, data, device, state_dir: Path, out_dir: Path) -> dict:
    """Train one method for its ``STEPS``; its curve, its meta-test result and how it was made."""
    steps = STEPS[name]
    if steps <= 0:
        raise ValueError(f"STEPS[{name!r}] is {steps}: run --pilot and fill STEPS first")
    out = out_dir / f"{name}.json"
    check_writable(out)
    state_dir.mkdir(parents=True, exist_ok=True)
    state = state_dir / f"curve-{name}.state.pt"
    log1 = recipe1 = None
    if name == "mtl":
        model, result, log1, (recipe1, recipe) = train_mtl(data, device, state_dir, steps)
    else:
        recipe = curve_recipe(name, steps)
        model, result = train(method_of(name), recipe, data=data, save=False, state=state, resume=state.exists(),
                              device=device)
    if result.stopped != "steps":
        raise SystemExit(f"{name}: stopped at step {result.steps} ({result.stopped}); run the same command to resume")
    log = result.log.as_dict()
    step, train_cpu = train_points(log)
    val_cpu, acc, ci = log["val_cpu_seconds"], log["val_accuracy"], log["val_ci95"]
    if log1 is not None:  # one curve over both phases: phase 2's steps and CPU come after phase 1's
        offset = training_cpu(log1)  # phase 1's training CPU, validations left out
        step = list(log1["val_step"]) + [recipe1.steps + s for s in step]
        train_cpu = train_points(log1)[1] + [offset + c for c in train_cpu]
        val_cpu, acc, ci = (log1["val_cpu_seconds"] + val_cpu, log1["val_accuracy"] + acc, log1["val_ci95"] + ci)
    res = evaluate(model, data.test, TEST["n_way"], TEST["n_shot"], TEST["n_query"], TEST["n_episodes"],
                   seed=TEST["seed"], device=device)
    record = {
        "method": name, "recipe": recipe.as_dict(), "budget_cpu_seconds": BUDGET_CPU_S,
        "curve": {"step": step, "train_cpu_seconds": train_cpu, "val_accuracy": acc, "val_ci95": ci,
                  "val_cpu_seconds": val_cpu},
        "best_step": result.best_step, "best_val_accuracy": result.best_score,
        "test": {"protocol": {"split": "vinyals", **TEST, "checkpoint": "best meta-validation step",
                              "batch_norm": res.batch_norm},  # "batch": transductive, the queries shape each other
                 "accuracy": res.accuracy, "ci95": res.ci95, "episode_accuracies": res.episode_accuracies,
                 "episodes_sha256": res.episodes_sha256},  # curves pair only on the same episodes
        "train_cpu_seconds": train_cpu[-1], "resumed": len(result.log.sittings) > 1 or len((log1 or {}).get("sittings", [])) > 1,  # either phase
        # training episodes (tasks) per step: a meta-batch's, plus MTL's hard tasks; pre-training batches count one
        "cpu_seconds_per_1000_episodes": 1000 * train_cpu[-1] / episodes_seen(recipe, model, recipe1),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # the whole process, data included
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": 1}, "versions": versions(),
        "command": f"OMP_NUM_THREADS=1 python benchmarks/learning_curves.py --method {name} --overwrite",
    }
    if log1 is not None:
        record["phase1"] = {"recipe": recipe1.as_dict(), "steps": recipe1.steps, "val_step": list(log1["val_step"]),
                            "val_accuracy": log1["val_accuracy"]}
        record["note"] = ("the curve's steps count phase 1 (pre-training, mtl-theta-only) then phase 2 (meta-transfer); "
                          "recipe, steps and best_step are phase 2's; the meta-test uses phase 2's best meta-validation "
                          "step")
    atomic_write_json(record, out)
    state.unlink(missing_ok=True)
    if name == "mtl":
        (state_dir / "curve-mtl.phase1.pt").unlink(missing_ok=True)
    print(f"{name}: {steps} steps, {train_cpu[-1]:.0f} training CPU-s; best meta-val {result.best_score:.1f}% at step "
          f"{result.best_step}; meta-test {res.accuracy:.1f} ± {res.ci95:.1f}%  -> {out}", flush=True)
    return record


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--method", choices=CURVES, action="append",
                        help="train this method's (or variant's) curve; with --pilot, may be given several times")
    parser.add_argument("--pilot", action="store_true",
                        help="measure CPU-seconds per step of every method (or of --method's), into pilot.json")
    parser.add_argument("--state-dir", type=Path, default=ROOT / "build" / "curves", help="resumable training states")
    parser.add_argument("--out-dir", type=Path, default=OUT)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing curve record (the pilot is extended)")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)  # the records say one thread, and CPU-seconds of several would add up
    if not args.pilot and args.method is None:
        parser.error("give --pilot (every method, or those of --method NAME ...) or --method NAME")
    if not args.pilot and len(args.method) > 1:
        parser.error(f"one curve per run: --method was given {len(args.method)} times ({', '.join(args.method)})")
    try:  # before the hours of training: the record's file, and the pilot that --method --pilot extends
        if args.pilot:  # --pilot extends pilot.json
            check_writable(args.out_dir / "pilot.json", "the record")
        else:
            check_record_target(args.out_dir / f"{args.method[0]}.json", args.overwrite, "the record",
                                "give --out-dir another folder")
            check_writable(args.state_dir / f"curve-{args.method[0]}.state.pt", "--state-dir's training state")
    except ValueError as err:
        parser.error(str(err))
    with one_line_errors():  # a bad --device or FSLCOURSE_DEVICE, data not found: one line
        device = get_device()
        started = time.time()
        data = load_omniglot(device=device, progress=False, split="vinyals")
    if args.pilot:
        out = args.out_dir / "pilot.json"
        old = json.loads(out.read_text()) if out.exists() else {}
        names = args.method or CURVES
        try:
            pilot_runs = pilot(data, device, names, old.get("pilot"))
        except ValueError as err:
            parser.error(str(err))
        record = {**old, "pilot": pilot_runs, "budget_cpu_seconds": BUDGET_CPU_S,
                  "versions": versions(), "machine": {"cpu": platform.processor() or platform.machine(), "threads": 1}}
        atomic_write_json(record, out)
    else:
        run_curve(args.method[0], data, device, args.state_dir, args.out_dir)
    print(f"done in {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
