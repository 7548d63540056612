"""CPU-seconds per training step of a method's recipe, on one thread: what a long run will cost here.

Usage (nothing else may run on the machine while it measures)::

    OMP_NUM_THREADS=1 FSLCOURSE_DEVICE=cpu python benchmarks/step_cost.py relation paper-20way 10

It draws the recipe's batches from its own split (``options["split"]``, else the alphabet split), takes one
warm-up step, then times ``K`` training steps with ``time.process_time`` (validation is not included).
"""
import argparse
import sys
import time

import torch

from fslcourse.cli import whole
from fslcourse.data import load_omniglot
from fslcourse.training.api import recipe_for
from fslcourse.training.trainers import TRAINERS


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("name", help="a method, e.g. relation")
    p.add_argument("recipe", help="one of its recipes, e.g. paper-20way")
    p.add_argument("k", type=whole(1), help="training steps to time")
    args = p.parse_args(argv)
    name, recipe, k = args.name, args.recipe, args.k
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
    print(f"{name} {recipe}: {(time.process_time() - start) / k:.3f} CPU-s/step over {k} steps", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
