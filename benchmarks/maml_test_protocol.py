"""MAML's test protocol: the paper checkpoints measured with other test-time inner steps and queries per class.

Two details of a MAML test change its result and are easy to get wrong. (1) The inner steps: the paper tests its
5-way Omniglot model with three (Finn et al. 2017, appendix A.1), the step count of our ``paper`` recipes; its code
(cbfinn/maml, ``main.py``) adapts for ten at test time. (2) The queries per class: the network normalises each
batch with its own BatchNorm statistics (transductive), so the queries that share the test batch change every
prediction, and the paper's code tests with as many queries per class as shots (2K drawings per class: K to adapt
on, K to test). Each committed paper checkpoint is measured on 1000 seeded 5-way 1-shot Vinyals test episodes
(episode seed 0, the course benchmark's) in two sweeps, each paired with the benchmark's own setting (the recipe's
steps, the paper's queries: ``fslcourse.report.published_n_query``) on the same support sets:

* ``sweep: "steps"``: ``k`` inner steps at test time (α unchanged), with the paper's queries per class;
* ``sweep: "queries"``: ``q`` queries per class with the recipe's steps. Episodes with another number of queries
  are other episodes, so these rows are not paired with the benchmark's: each gives its own interval.

Writes ``results/maml_test_protocol.json``: one record per checkpoint and setting (``variant`` names it, so the
benchmark table keeps the benchmark's own record for each cell). Accuracies only: ``eval_seconds`` is left out
(``null``), since these are not timings and may be measured beside a training run.

Usage (from the repository root, FSLCOURSE_DATA set; one CPU thread; about 10 CPU-minutes):

    OMP_NUM_THREADS=1 python benchmarks/maml_test_protocol.py
    OMP_NUM_THREADS=1 python benchmarks/maml_test_protocol.py --episodes 100 --steps 0,3 --queries 1,5 --results /tmp/look   # a look
"""
from __future__ import annotations

import argparse

from fslcourse.cli import add_episode_arguments, names_from, one_line_errors, parse_episode_arguments
from fslcourse.config import get_device
from fslcourse.data import load_omniglot
from fslcourse.evaluate import evaluate, mean_ci95
from fslcourse.io import check_writable
from fslcourse.pretrained import checkpoint_path, existing_checkpoint, load_method
from fslcourse.report import published_n_query, results_dir
from fslcourse.results import accuracy_record, check_same_episodes, save_results

NAME = "maml_test_protocol"
METHODS = ("maml", "fomaml")
STEPS = (0, 1, 2, 3, 5, 10)  # 10: the original code's test_num_updates
DRAWINGS = 20  # of each Omniglot character: the support drawing and the queries of a class come from these
QUERIES = (1, 5, 15)  # 1: the paper's code at 1 shot; 5: the course benchmark's; 15: the checkpoint's own metric


def parse_counts(text: str, flag: str, least: int) -> tuple[int, ...]:
    """``"0,1,3"`` as ``(0, 1, 3)``; exits with one line on anything else or on a count below ``least``."""
    try:
        counts = tuple(sorted({int(s) for s in text.split(",")}))
    except ValueError:
        raise SystemExit(f"error: {flag} {text!r} is not a comma-separated list of whole numbers; e.g. {flag} 1,3")
    if counts[0] < least:
        raise SystemExit(f"error: {flag} {text!r} has a count below {least}; use counts >= {least}")
    return counts


def measure(name: str, data, device, steps, queries, episodes: int) -> list[dict]:
    """Records of checkpoint ``NAME-paper.pt`` with each test-time step count and each number of queries per class."""
    model, ckpt = load_method(checkpoint_path(name, "paper"), device, expect=name)
    recipe_k, paper_q = model.test_inner_steps, published_n_query(name, 1)
    settings = [("steps", k, paper_q) for k in sorted(set(steps) | {recipe_k})]
    settings += [("queries", recipe_k, q) for q in sorted(set(queries) | {paper_q})]
    measured = {}  # (k, q) -> result: the benchmark's setting belongs to both sweeps and is measured once
    for _, k, q in settings:
        if (k, q) not in measured:
            model.test_inner_steps = k
            measured[k, q] = evaluate(model, data.test, n_way=5, n_shot=1, n_query=q, n_episodes=episodes, seed=0,
                                      device=device)
    model.test_inner_steps = recipe_k
    base = measured[recipe_k, paper_q]
    records = []
    for sweep, k, q in settings:
        res = measured[k, q]
        extra = {"variant": f"{k} test-time inner step{'s' if k != 1 else ''}, {q} quer{'ies' if q != 1 else 'y'} "
                            f"per class", "sweep": sweep, "test_inner_steps": k, "recipe_test_inner_steps": recipe_k,
                 "paper_n_query": paper_q}
        line = f"{name:7s} {k:2d} test step(s), {q:2d} queries/class: {res.accuracy:6.2f} ± {res.ci95:.2f}%"
        if sweep == "steps":  # the same episodes as the benchmark's row: a paired difference
            diff, ci = mean_ci95([a - b for a, b in zip(res.episode_accuracies, base.episode_accuracies)])
            extra.update(paired_vs_benchmark=diff, paired_vs_benchmark_ci95=ci)
            line += f"   paired vs {recipe_k} steps {diff:+.2f} ± {ci:.2f}"
        print(line)
        records.append(accuracy_record(name, res, ckpt, device, extra, config={**ckpt["config"], "test_inner_steps": k}))
    return records


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated, from {', '.join(METHODS)}")
    p.add_argument("--steps", default=",".join(map(str, STEPS)), help="test-time inner steps to measure")
    p.add_argument("--queries", default=",".join(map(str, QUERIES)), help="queries per class to measure")
    add_episode_arguments(p)
    args = parse_episode_arguments(p, argv)
    methods = names_from(args.methods, "--methods", METHODS)
    steps, queries = parse_counts(args.steps, "--steps", 0), parse_counts(args.queries, "--queries", 1)
    if queries[-1] + 1 > DRAWINGS:  # found by the sampler only after the other settings' minutes of measuring
        raise SystemExit(f"error: --queries {args.queries!r}: {queries[-1]} queries and the 1 support drawing per class "
                         f"need {queries[-1] + 1} drawings, but Omniglot has {DRAWINGS} of each character; use "
                         f"counts up to {DRAWINGS - 1}")
    out_dir = results_dir(args.results)
    try:  # refused before any work: a results file that cannot be written, a checkpoint not trained
        check_writable(out_dir / f"{NAME}.json", "the results file")
        check_same_episodes(out_dir / f"{NAME}.json", args.episodes, 0, overwrite=args.overwrite)
        if (out_dir / f"{NAME}.json").exists() and not args.overwrite and (
                methods != list(METHODS) or sorted(steps) != sorted(STEPS) or sorted(queries) != sorted(QUERIES)):
            raise ValueError(f"{out_dir / f'{NAME}.json'} holds every method, step count and query count; this run "
                             "measures only some, and the file would lose the rest: write to another folder with "
                             "--results DIR, or replace it with --overwrite")
        for name in methods:
            existing_checkpoint(name, "paper")
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(f"error: {err}")
    with one_line_errors():  # a bad --device or FSLCOURSE_DEVICE, data not found: one line
        device = get_device(args.device)
        data = load_omniglot(split="vinyals", device=device)
    records = [rec for name in methods for rec in measure(name, data, device, steps, queries, args.episodes)]
    print(f"wrote {save_results(NAME, records, directory=out_dir)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
