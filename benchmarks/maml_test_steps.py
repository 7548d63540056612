"""MAML's test-time inner steps: the paper checkpoints measured with 0 to 10 steps on the same Vinyals test episodes.

The MAML paper tests its 5-way Omniglot model with three inner steps (Finn et al. 2017, appendix A.1), the step
count of our ``paper`` recipes; its code (cbfinn/maml, ``main.py``) adapts for ten steps at test time and logs
the accuracy after each one. This measures how much of the gap to the published 5-way 1-shot figures
(MAML 98.7, first-order MAML 98.3) the number of test steps could explain: each committed paper checkpoint,
adapted with ``k`` steps (α unchanged), on the 1000 seeded 5-way 1-shot episodes (5 queries per class) of the
course benchmark's Vinyals rows, paired with the recipe's own ``k`` on the same episodes.

Writes ``results/maml_test_steps.json``: one record per checkpoint and ``k`` (``variant`` names it, so the
benchmark table keeps the benchmark's own record for each cell). Accuracies only: ``eval_seconds`` is left
out (``null``), since these are not timings and may be measured beside a training run.

Usage (from the repository root, FSLCOURSE_DATA set; one CPU thread; about 10 CPU-minutes):

    OMP_NUM_THREADS=1 python benchmarks/maml_test_steps.py
    OMP_NUM_THREADS=1 python benchmarks/maml_test_steps.py --episodes 100 --steps 0,1,3   # a quick look
"""
from __future__ import annotations

import argparse

from fslcourse.config import get_device
from fslcourse.data import load_omniglot
from fslcourse.evaluate import evaluate, mean_ci95
from fslcourse.io import check_writable
from fslcourse.pretrained import checkpoint_path, load_method
from fslcourse.report import results_dir
from fslcourse.results import result_record, save_results

NAME = "maml_test_steps"
METHODS = ("maml", "fomaml")
STEPS = (0, 1, 2, 3, 5, 10)  # 10: the original code's test_num_updates


def parse_steps(text: str) -> tuple[int, ...]:
    """``"0,1,3"`` as ``(0, 1, 3)``; exits with one line on anything else."""
    try:
        steps = tuple(sorted({int(s) for s in text.split(",")}))
    except ValueError:
        raise SystemExit(f"error: --steps {text!r} is not a comma-separated list of whole numbers; e.g. --steps 0,1,3")
    if steps[0] < 0:
        raise SystemExit(f"error: --steps {text!r} has a negative step count; use steps >= 0")
    return steps


def measure(name: str, data, device, steps: tuple[int, ...], episodes: int) -> list[dict]:
    """Records of checkpoint ``NAME-paper.pt`` adapted with each ``k`` in ``steps``, paired with its recipe's ``k``."""
    model, ckpt = load_method(checkpoint_path(name, "paper"), device, expect=name)
    recipe_k = model.test_inner_steps
    results = {}
    for k in sorted(set(steps) | {recipe_k}):
        model.test_inner_steps = k
        results[k] = evaluate(model, data.test, n_way=5, n_shot=1, n_query=5, n_episodes=episodes, seed=0,
                              device=device)
    model.test_inner_steps = recipe_k
    records = []
    for k, res in results.items():
        diff, ci = mean_ci95([a - b for a, b in zip(res.episode_accuracies, results[recipe_k].episode_accuracies)])
        print(f"{name:<7} {k:2d} test step(s): {res.accuracy:5.2f} ± {res.ci95:.2f}%   "
              f"paired vs {recipe_k} steps {diff:+.2f} ± {ci:.2f}")
        rec = result_record(name, res, config={**ckpt["config"], "test_inner_steps": k}, seed=ckpt["seed"],
                            device=device, profile=ckpt.get("profile"), train_seconds=ckpt.get("train_seconds"),
                            extra={"variant": f"{k} test-time inner step{'s' if k != 1 else ''}",
                                   "test_inner_steps": k, "recipe_test_inner_steps": recipe_k,
                                   "paired_vs_recipe": diff, "paired_vs_recipe_ci95": ci})
        rec["eval_seconds"] = None  # accuracies only; see the module docstring
        records.append(rec)
    return records


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated, from {', '.join(METHODS)}")
    p.add_argument("--steps", default=",".join(map(str, STEPS)), help="test-time inner steps to measure")
    p.add_argument("--episodes", type=int, default=1000)
    p.add_argument("--device", default=None)
    p.add_argument("--results", default=None, help="the results folder (default: results/)")
    args = p.parse_args(argv)
    methods = [m for m in args.methods.split(",") if m]
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise SystemExit(f"error: --methods {args.methods!r}: choose from {', '.join(METHODS)}")
    if args.episodes < 2:
        raise SystemExit(f"error: --episodes {args.episodes}: a confidence interval needs at least 2 episodes")
    steps = parse_steps(args.steps)
    out_dir = results_dir(args.results)
    try:  # refused before any work if it cannot be written
        check_writable(out_dir / f"{NAME}.json", "the results file")
    except ValueError as err:
        raise SystemExit(f"error: {err}")
    for name in methods:
        if not checkpoint_path(name, "paper").exists():
            raise SystemExit(f"error: no checkpoint {checkpoint_path(name, 'paper')}; "
                             f"train it with python -m fslcourse train {name} --recipe paper")
    device = get_device(args.device)
    data = load_omniglot(split="vinyals", device=device)
    records = [rec for name in methods for rec in measure(name, data, device, steps, args.episodes)]
    print(f"wrote {save_results(NAME, records, directory=out_dir)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
