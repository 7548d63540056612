"""MAML meta-training throughput and peak memory: ours (batched / torch.func vmap / autograd loop) vs learn2learn.

Usage (from the repository root):

    python benchmarks/maml_vs_l2l.py [--hidden 64] [--meta-batch 8] [--n-query 5] [--rounds 3] \
        [--threads 1] [--out results/maml_vs_l2l.json --overwrite]

Every implementation trains the same MAMLConv4 (5-way 1-shot, stride-2 Conv-4 with
batch-statistics BatchNorm) from the same initial weights on the same Omniglot-sized
glyph tasks, one inner step of α = 0.4, Adam. Throughput (tasks/s) is measured in
one process with the implementations interleaved round by round, each round starting
with the next implementation (so a drift of the machine falls on each in turn; with as
many rounds as implementations, each takes every position once), and the median round
is reported. Peak memory is the growth of
the peak resident set size during two meta-steps, each implementation in its own
subprocess (peak resident set reset just before the steps). Ratios are ours / learn2learn.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from fslcourse.cli import whole
from fslcourse.data import EpisodeSampler, glyph_splits
from fslcourse.io import atomic_write_json, check_record_target
from fslcourse.methods.maml import FOMAML, MAML

IMPLS = ["ours-batched", "ours-vmap", "ours-loop", "learn2learn"]


def make_step(impl: str, first_order: bool, args):
    """A ``step(batch)`` closure doing one meta-update with ``impl``."""
    torch.manual_seed(0)
    cls = FOMAML if first_order else MAML
    model = cls(hidden=args.hidden, inner_lr=0.4, inner_steps=1,
                backend=impl.removeprefix("ours-") if impl != "learn2learn" else "vmap")
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    if impl != "learn2learn":
        return lambda batch: model.train_step(batch, opt)
    import learn2learn as l2l
    maml = l2l.algorithms.MAML(model.net, lr=0.4, first_order=first_order)

    def step(batch):
        opt.zero_grad(set_to_none=True)
        losses = []
        for ep in batch:
            learner = maml.clone()
            learner.adapt(F.cross_entropy(learner(ep.support_x), ep.support_y))
            losses.append(F.cross_entropy(learner(ep.query_x), ep.query_y))
        loss = torch.stack(losses).mean()
        loss.backward()
        opt.step()
        return {"loss": loss.item()}
    return step


def batches(args, n):
    train, _, _ = glyph_splits()
    sampler = EpisodeSampler(train, n_way=5, n_shot=1, n_query=args.n_query, seed=0)
    return [sampler.sample_batch(args.meta_batch) for _ in range(n)]


def _status_kib(field: str) -> int:
    """A ``/proc/self/status`` field in KiB (``VmRSS``, ``VmHWM``)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def peak_memory(impl: str, first_order: bool, args) -> float:
    """MiB of peak resident memory above the resident memory before two meta-steps, in this (fresh) process.

    The peak (``VmHWM``) is reset just before the steps by writing 5 to ``/proc/self/clear_refs``
    (Linux), so imports and data creation do not hide the peak of the steps themselves.
    """
    data = batches(args, 2)
    step = make_step(impl, first_order, args)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = _status_kib("VmRSS")
    for b in data:
        step(b)
    return (_status_kib("VmHWM") - before) / 1024


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", type=whole(1), default=64)
    ap.add_argument("--meta-batch", type=whole(1), default=8)
    ap.add_argument("--n-query", type=whole(1), default=5, help="query examples per class")
    ap.add_argument("--rounds", type=whole(1), default=3)
    ap.add_argument("--steps", type=whole(1), default=2, help="meta-steps per implementation per round")
    ap.add_argument("--threads", type=whole(1), default=None, help="torch threads (default: torch's)")
    ap.add_argument("--out", type=Path, default=None, help="also write the results as JSON here (atomically)")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing --out (the committed record)")
    ap.add_argument("--memory-of", nargs=2, help=argparse.SUPPRESS)  # internal: IMPL ORDER in a subprocess
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.out:
        try:
            check_record_target(args.out, args.overwrite)
        except ValueError as err:
            ap.error(str(err))
    if args.memory_of:
        print(peak_memory(args.memory_of[0], args.memory_of[1] == "first", args))
        return
    data = batches(args, args.steps)
    config = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    out = {"config": config, "torch": torch.__version__, "threads": torch.get_num_threads(), "results": {}}
    for order in ("second", "first"):
        steps = {impl: make_step(impl, order == "first", args) for impl in IMPLS}
        for impl in IMPLS:  # warm-up
            steps[impl](data[0])
        rates = {impl: [] for impl in IMPLS}
        for r in range(args.rounds):
            for impl in IMPLS[r % len(IMPLS):] + IMPLS[:r % len(IMPLS)]:  # each round starts with the next one
                start = time.perf_counter()
                for b in data:
                    steps[impl](b)
                rates[impl].append(args.steps * args.meta_batch / (time.perf_counter() - start))
        for impl in IMPLS:
            cmd = [sys.executable, __file__, "--memory-of", impl, order, "--hidden", str(args.hidden),
                   "--meta-batch", str(args.meta_batch), "--n-query", str(args.n_query)]
            cmd += ["--threads", str(args.threads)] if args.threads else []
            mem = float(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split()[-1])
            out["results"][f"{order}-order/{impl}"] = {"tasks_per_s": statistics.median(rates[impl]),
                                                       "peak_rss_growth_mib": mem}
        ref = out["results"][f"{order}-order/learn2learn"]
        for impl in IMPLS:
            r = out["results"][f"{order}-order/{impl}"]
            r["throughput_ratio_vs_l2l"] = r["tasks_per_s"] / ref["tasks_per_s"]
            r["memory_ratio_vs_l2l"] = r["peak_rss_growth_mib"] / max(ref["peak_rss_growth_mib"], 1e-9)
            print(f"{order}-order {impl:12s} {r['tasks_per_s']:7.2f} tasks/s  x{r['throughput_ratio_vs_l2l']:.2f} "
                  f"vs learn2learn   peak RSS +{r['peak_rss_growth_mib']:.0f} MiB "
                  f"x{r['memory_ratio_vs_l2l']:.2f}", flush=True)
    print(json.dumps(out, indent=1))
    if args.out:
        atomic_write_json(out, args.out)


if __name__ == "__main__":
    main()
