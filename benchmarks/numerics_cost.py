"""What portable numerics cost: training CPU-seconds per step, native against portable, in one run.

Usage (from the repository root; FSLCOURSE_DATA must point at the data; nothing else running on the CPU):

    python benchmarks/numerics_cost.py [--methods protonet,maml,relation] [--steps 40] [--out PATH.json]

Each (method, numerics) pair trains the method's quick recipe for ``--steps`` steps in a fresh Python (portable
numerics can only be chosen before torch computes), one thread, on Omniglot, and reports the training loop's
CPU-seconds per step (start-up, data loading and validation left out) and the weights' digest. The ratio
portable/native is the figure quoted in ``fslcourse/numerics.py`` and ``docs/DEVELOPING.md``; it is written to
``results/numerics_cost.json`` (default).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from fslcourse.io import atomic_write_json, check_writable
from fslcourse.numerics import PORTABLE_ENV
from fslcourse.results import versions

CHILD = """
import hashlib, json, sys
import fslcourse
from fslcourse.data import load_omniglot
from fslcourse.training import train
numerics = fslcourse.setup(0, quiet=True).numerics
data = load_omniglot(device="cpu", progress=False)
steps = int(sys.argv[2])
model, result = train(sys.argv[1], "quick", data=data, save=False, progress=False, device="cpu", steps=steps,
                      val_every=steps, val_episodes=2, eval_episodes=2)
digest = hashlib.sha256(b"".join(v.detach().contiguous().numpy().tobytes() for _, v in sorted(model.state_dict().items())))
train_cpu = result.log.cpu_seconds[-1] - result.log.cpu_seconds[0]  # the loop's steps 2..steps, no validation
print(json.dumps({"numerics": numerics, "cpu_seconds_per_step": train_cpu / (steps - 1), "sha256": digest.hexdigest()}))
"""


def measure(method: str, numerics: str, steps: int) -> dict:
    """Train ``method`` for ``steps`` steps in a fresh Python with ``numerics``; its record."""
    env = {k: v for k, v in os.environ.items() if k not in {"FSLCOURSE_NUMERICS", *PORTABLE_ENV}}
    env.update(FSLCOURSE_NUMERICS=numerics, FSLCOURSE_DEVICE="cpu", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", CHILD, method, str(steps)], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{method} ({numerics}) failed: {proc.stderr.strip().splitlines()[-1]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--methods", default="protonet,maml,relation")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "results" / "numerics_cost.json")
    args = p.parse_args(argv)
    if args.steps < 2:
        p.error(f"--steps {args.steps} is too few; use at least 2 (the first step is left out of the timing)")
    from gpu_check import trainable_methods  # a sibling script: the registered methods with recipes

    known = trainable_methods()
    unknown = [m for m in args.methods.split(",") if m not in known]
    if unknown:  # before the first child trains: a typo used to fail after the others had run
        p.error(f"--methods {','.join(unknown)} is not a trainable method; use some of {', '.join(known)}")
    try:
        check_writable(args.out, "--out")
    except ValueError as err:
        p.error(str(err))
    rows = []
    for method in args.methods.split(","):
        native, portable = measure(method, "native", args.steps), measure(method, "portable", args.steps)
        if (native["numerics"], portable["numerics"]) != ("native", "portable"):
            raise SystemExit(f"{method}: the children ran {native['numerics']} and {portable['numerics']} numerics")
        ratio = portable["cpu_seconds_per_step"] / native["cpu_seconds_per_step"]
        rows.append({"method": method, "steps": args.steps, "native": native, "portable": portable,
                     "slowdown": ratio})
        print(f"{method:9s} native {native['cpu_seconds_per_step']:.3f} CPU-s/step, portable "
              f"{portable['cpu_seconds_per_step']:.3f}: {ratio:.2f}x", flush=True)
    atomic_write_json({"format": 1, "what": "training CPU-seconds per step, quick recipes, one thread",
                       "rows": rows, "versions": versions()}, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
