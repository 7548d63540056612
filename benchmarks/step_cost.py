"""CPU-seconds per training step of a method's recipe, on one thread: what a long run will cost here.

Usage (nothing else may run on the machine while it measures)::

    OMP_NUM_THREADS=1 FSLCOURSE_DEVICE=cpu python benchmarks/step_cost.py relation paper-20way 10

It draws the recipe's batches from its own split (``options["split"]``, else the alphabet split), takes one
warm-up step, then times ``K`` training steps with ``time.process_time`` (validation is not included).
``--json FILE`` keeps the measurement in FILE's ``rows`` (one per method and recipe, replaced when measured again,
with the CPU and torch version): ``results/step_cost.json`` holds the rows ``docs/INSTRUCTORS.md``'s table of
20-way run costs shows (``tests/test_committed_results.py`` checks the table against it)::

    for r in paper paper-20way; do for m in relation fomaml maml reptile; do
        OMP_NUM_THREADS=1 FSLCOURSE_DEVICE=cpu python benchmarks/step_cost.py $m $r 10 --json results/step_cost.json
    done; done
"""
import argparse
import json
import sys
import time
from pathlib import Path

import torch

from fslcourse.cli import whole
from fslcourse.data import load_omniglot
from fslcourse.io import atomic_write_json, check_writable
from fslcourse.results import cpu_name
from fslcourse.training.api import recipe_for
from fslcourse.training.trainers import TRAINERS


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("name", help="a method, e.g. relation")
    p.add_argument("recipe", help="one of its recipes, e.g. paper-20way")
    p.add_argument("k", type=whole(1), help="training steps to time")
    p.add_argument("--json", type=Path, default=None, help="keep the measurement in this file's rows")
    args = p.parse_args(argv)
    name, recipe, k = args.name, args.recipe, args.k
    rows = []
    if args.json is not None:  # before any work
        try:
            check_writable(args.json, "--json")
            rows = json.loads(args.json.read_text())["rows"] if args.json.exists() else []
        except (ValueError, KeyError, TypeError, OSError) as err:
            p.error(f"--json {args.json}: not a step-cost file ({err}); give a new file or one this script wrote")
    try:  # an unknown method or recipe is one line, before Omniglot is loaded
        _, r = recipe_for(name, recipe)
    except ValueError as err:
        p.error(str(err))
    torch.set_num_threads(1)
    data = load_omniglot(device="cpu", progress=False, split=r.options.get("split", "alphabet"))
    run = TRAINERS[r.trainer](name, r, data, "cpu")
    run.trained.train()
    run.trained.train_step(run.batches(), run.optimizer)  # warm-up
    start = time.process_time()
    for _ in range(k):
        run.trained.train_step(run.batches(), run.optimizer)
    per_step = (time.process_time() - start) / k
    print(f"{name} {recipe}: {per_step:.3f} CPU-s/step over {k} steps", flush=True)
    if args.json is not None:
        row = {"method": name, "recipe": recipe, "steps_timed": k, "cpu_seconds_per_step": round(per_step, 4),
               "recipe_steps": r.steps, "cpu": cpu_name(), "torch": torch.__version__}
        rows = [x for x in rows if (x["method"], x["recipe"]) != (name, recipe)] + [row]
        atomic_write_json({"name": "step_cost", "rows": rows}, args.json)
        print(f"kept in {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
