"""Train MAML / FOMAML / Reptile with the committed recipe, evaluate on meta-test, save the checkpoint.

Usage (from the repository root; FSLCOURSE_DATA must point at the data):

    python benchmarks/train_maml_family.py maml --threads 1 [--out fslcourse/checkpoints/maml-quick.pt]
    python benchmarks/train_maml_family.py maml --threads 1 --committed   # how maml-quick.pt was trained

``--committed`` applies ``COMMITTED`` of ``fslcourse/methods/maml_recipe.py`` (maml-quick.pt: 64
filters and 10,000 meta-steps instead of the quick recipe's 32 and 2400).

The checkpoint records the config, seed, training seconds, the recipe, and the
meta-test accuracy (5-way 1-shot and 5-shot, quick-profile protocol) that
``tests/methods/test_maml_checkpoint.py`` re-checks.
"""
from __future__ import annotations

import argparse
import json
import time

import torch

import fslcourse
from fslcourse.data import load_omniglot
from fslcourse.evaluate import evaluate
from fslcourse.methods import get_method
from fslcourse.pretrained import checkpoint_path, save_method

EVAL = dict(n_query=5, n_episodes=200, seed=0)  # the quick profile's protocol


def measure(model, data) -> dict:
    """Meta-test metrics in the format of :func:`fslcourse.train.train_checkpoint` (5-way 1-shot), plus 5-shot."""
    protocol = {"split": "test", "n_way": 5, "n_shot": 1, "n_query": EVAL["n_query"],
                "n_episodes": EVAL["n_episodes"], "seed": EVAL["seed"]}
    res = evaluate(model, data.test, 5, 1, **EVAL)
    five = evaluate(model, data.test, 5, 5, **EVAL)
    print(f"test {res}; {five}")
    return {"test_accuracy": res.accuracy, "test_ci95": res.ci95, "protocol": protocol,
            "test_episode_accuracies": res.episode_accuracies,
            "test_5shot_accuracy": five.accuracy, "test_5shot_ci95": five.ci95}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("method", choices=["maml", "fomaml", "reptile"])
    ap.add_argument("--budget", type=float, default=None, help="meta-training seconds (default: the recipe's)")
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="checkpoint path (default fslcourse/checkpoints/NAME-PROFILE.pt)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (1 is faster on a busy shared CPU)")
    ap.add_argument("--partial", default=None, help="also save the best model so far here while training")
    ap.add_argument("--finalize", default=None,
                    help="skip training: measure the model saved at this path by --partial and save it to --out")
    ap.add_argument("--set", default="{}", help="JSON recipe overrides, e.g. '{\"meta_batch\": 16}'")
    ap.add_argument("--committed", action="store_true",
                    help="train the committed checkpoint's recipe (the quick recipe with maml_recipe.COMMITTED)")
    args = ap.parse_args()
    if args.committed:
        from fslcourse.methods.maml_recipe import COMMITTED
        args.set = json.dumps({**COMMITTED[args.method], **json.loads(args.set)})
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_omniglot()
    if args.finalize:
        from fslcourse.pretrained import load_method
        model, ckpt = load_method(args.finalize, "cpu")
        metrics = measure(model, data)
        metrics.update({"val_accuracy": ckpt["metrics"].get("val_accuracy"), "best_step": ckpt["metrics"].get("step"),
                        "steps": ckpt["metrics"].get("step"), "interrupted": True})
        out = args.out or checkpoint_path(args.method, args.profile)
        save_method(model, out, seed=ckpt["seed"], profile=ckpt["profile"], train_seconds=ckpt["train_seconds"],
                    metrics=metrics, extra={**ckpt.get("extra", {}), "finalized_from_partial": True})
        print(json.dumps({"out": str(out), **{k: v for k, v in metrics.items() if "episode" not in k}}, default=str))
        return
    cls = get_method(args.method)
    cpu0 = time.process_time()
    model, fit = cls.train_recipe(data, args.profile, args.seed, "cpu", True, budget_seconds=args.budget,
                                  checkpoint=args.partial, **json.loads(args.set))
    cpu = time.process_time() - cpu0
    metrics = measure(model, data)
    metrics.update({"cpu_seconds": cpu, "threads": torch.get_num_threads(), "val_accuracy": fit.best_val_accuracy,
                    "best_step": fit.best_step, "steps": fit.steps, "interrupted": fit.interrupted})
    out = args.out or checkpoint_path(args.method, args.profile)
    from fslcourse.methods.maml_recipe import recipe
    r = recipe(args.method, args.profile)
    r.update(json.loads(args.set))
    save_method(model, out, seed=args.seed, profile=args.profile, train_seconds=fit.seconds, metrics=metrics,
                extra={"recipe": {k: v for k, v in r.items() if k != "model"}, "budget_seconds": args.budget,
                       "history": fit.history.as_dict()})
    print(json.dumps({"out": str(out), "train_seconds": round(fit.seconds, 1), **metrics}, default=str))


if __name__ == "__main__":
    fslcourse.setup(quiet=True)
    main()
