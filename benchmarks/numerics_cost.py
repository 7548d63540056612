"""What portable numerics cost: training CPU-seconds per step, native against portable, in one run.

Usage (from the repository root; FSLCOURSE_DATA must point at the data; nothing else running on the CPU):

    python benchmarks/numerics_cost.py [--methods protonet,maml,relation] [--steps 40] [--rounds 3] [--out PATH.json] [--overwrite]

Each (method, numerics) pair trains the method's quick recipe for ``--steps`` steps in a fresh Python (portable
numerics can only be chosen before torch computes), one thread, on Omniglot, and reports the training loop's
CPU-seconds per step (start-up, data loading and validation left out) and the weights' digest. Each method runs
``--rounds`` rounds, native first in one round and portable first in the next, so a drift of the machine falls on
both sides; the figure quoted in ``fslcourse/numerics.py`` and ``docs/DEVELOPING.md`` is the median of the rounds'
portable/native ratios (the lower middle one for an even count), and the record's ``native`` and ``portable`` are
that round's. Every round of a side must give the same weights (the same recipe and seed). It is written
to ``results/numerics_cost.json`` (default).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from fslcourse.io import atomic_write_json, check_record_target
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
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds per method; the median ratio is reported")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "results" / "numerics_cost.json")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out (the committed record by default)")
    args = p.parse_args(argv)
    if args.steps < 2:
        p.error(f"--steps {args.steps} is too few; use at least 2 (the first step is left out of the timing)")
    if args.rounds < 1:
        p.error(f"--rounds {args.rounds} is too few; use 1 or more (3 gives a median)")
    from gpu_check import trainable_methods  # a sibling script: the registered methods with recipes

    known = trainable_methods()
    unknown = [m for m in args.methods.split(",") if m not in known]
    if unknown:  # before the first child trains: a typo used to fail after the others had run
        p.error(f"--methods {','.join(unknown)} is not a trainable method; use some of {', '.join(known)}")
    try:
        check_record_target(args.out, args.overwrite)
    except ValueError as err:
        p.error(str(err))
    rows = []
    for method in args.methods.split(","):
        samples = []
        for r in range(args.rounds):  # alternate which side runs first
            order = ("native", "portable") if r % 2 == 0 else ("portable", "native")
            got = {numerics: measure(method, numerics, args.steps) for numerics in order}
            if {k: v["numerics"] for k, v in got.items()} != {"native": "native", "portable": "portable"}:
                raise SystemExit(f"{method}: the children ran {got['native']['numerics']} and "
                                 f"{got['portable']['numerics']} numerics")
            samples.append(got)
        for side in ("native", "portable"):
            if len({s[side]["sha256"] for s in samples}) > 1:
                raise SystemExit(f"{method}: the {args.rounds} {side} runs trained different weights from the same "
                                 "recipe and seed; the timing compares unlike runs")
        ratios = [s["portable"]["cpu_seconds_per_step"] / s["native"]["cpu_seconds_per_step"] for s in samples]
        ratio = statistics.median_low(ratios)  # a round's own ratio, so native and portable below divide to it
        native, portable = next((s["native"], s["portable"]) for s, r in zip(samples, ratios) if r == ratio)
        rows.append({"method": method, "steps": args.steps, "rounds": args.rounds, "native": native,
                     "portable": portable, "slowdown": ratio, "slowdowns": ratios,
                     "native_cpu_seconds_per_step": [s["native"]["cpu_seconds_per_step"] for s in samples],
                     "portable_cpu_seconds_per_step": [s["portable"]["cpu_seconds_per_step"] for s in samples]})
        print(f"{method:9s} native {native['cpu_seconds_per_step']:.3f} CPU-s/step, "
              f"portable {portable['cpu_seconds_per_step']:.3f}: {ratio:.2f}x "
              f"(median of {args.rounds}: {', '.join(f'{x:.2f}' for x in ratios)})", flush=True)
    atomic_write_json({"format": 1, "what": "training CPU-seconds per step, quick recipes, one thread; slowdown: the median "
                       "portable/native ratio of interleaved rounds",
                       "rows": rows, "versions": versions()}, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
