"""The papers' own test, episode count included: the rows whose paper averaged more test episodes than ours.

The course tests every row on 1000 episodes. The papers' codes averaged 1,000 (ProtoNet), 600 (MAML, also
first-order MAML's figures) and 10,000 (the Relation Network: 10 runs of 1,000; Reptile)
(``fslcourse.report.PUBLISHED_TEST_EPISODES``, with where each count is set). Where a paper used 1,000 or fewer,
``results/episode_construction.json`` already holds at least its count on its construction. Where it used more, its
interval was narrower than ours can be, and a row whose interval holds the target's edge stays *unclear*; this
script measures such a row again on its paper's construction (``fslcourse.report.PUBLISHED_EPISODES``) and count,
so the row is decided as precisely as the paper's figure was measured:

* ``relation-batch-stats`` (``relation-paper.pt``, batch statistics at test) at 5-way 1-shot, built per episode;
* ``reptile`` and ``reptile-inductive`` (``reptile-paper.pt``) at 5-way 1-shot, upright;
* the same rows of the separate 20-way models (``paper-20way``): the Relation Network's at 20-way 1-shot, built per
  episode; Reptile's two once its run is finished and committed.

Each row uses ``benchmarks/episode_construction.py``'s test (the paper's queries per class, episode seed 0), so its
first 1000 episodes are that file's record of the same row and construction; they are checked, episode for episode,
and a mismatch stops the run. A row whose checkpoint is not committed is skipped with a line; a row whose
construction record is missing or measured another checkpoint file is refused before any work.

Writes ``results/paper_episode_count.json``: one record per row, ``episodes`` the paper's count and ``rotation`` its
construction; a run of some ``--methods`` keeps the file's other rows. Accuracies only (``eval_seconds`` is
``null``). Grade the records with ``fslcourse.report.construction_gaps``, as notebook 11 section 8 does.

Usage (from the repository root, FSLCOURSE_DATA set; one CPU thread. Measured beside a training run: the Relation
Network's 5-way row took about 1 CPU-minute and its 20-way row about 5, each Reptile row about 36, since Reptile adapts
for 50 steps on every episode):

    OMP_NUM_THREADS=1 python benchmarks/paper_episode_count.py
    OMP_NUM_THREADS=1 python benchmarks/paper_episode_count.py --methods relation
"""
from __future__ import annotations

import argparse
import json

import torch
from episode_construction import CONSTRUCTIONS, ROWS, Row, check_references, committed_rows, keep_unmeasured, measure, table

from fslcourse.cli import names_from, one_line_errors
from fslcourse.config import get_device
from fslcourse.data import load_omniglot
from fslcourse.io import check_writable
from fslcourse.report import PUBLISHED_EPISODES, PUBLISHED_TEST_EPISODES, REPO_RESULTS, results_dir
from fslcourse.results import save_results

NAME = "paper_episode_count"
CONSTRUCTION = REPO_RESULTS / "episode_construction.json"  # each row's first episodes, measured on the same test


def paper_rows(reference_episodes: int = 1000) -> tuple[Row, ...]:
    """The rows of ``episode_construction.ROWS`` whose paper averaged more test episodes than ``reference_episodes``,
    each on its paper's construction alone."""
    return tuple(Row(r.name, r.recipe, r.n_way, (PUBLISHED_EPISODES[r.method],), r.method) for r in ROWS
                 if (PUBLISHED_TEST_EPISODES.get(r.method) or 0) > reference_episodes)


METHODS = tuple(dict.fromkeys(r.name for r in paper_rows()))


def construction_record(row: Row, records: list[dict]) -> dict | None:
    """``results/episode_construction.json``'s record of ``row``'s checkpoint, cell and construction."""
    return next((r for r in records if r["method"] == row.method and r.get("recipe") == row.recipe
                 and r["protocol"]["n_way"] == row.n_way and r["rotation"] == row.rotations[0]), None)


def check_construction(rows, records: list[dict]) -> None:
    """Before any work: each row has a construction record of the committed checkpoint file (else a ValueError)."""
    check_references(rows, lambda row: construction_record(row, records), CONSTRUCTION,
                     lambda row: f" built {row.rotations[0]}, the check of its first episodes",
                     lambda row: f"benchmarks/episode_construction.py --methods {row.name}")


def measure_count(row: Row, data, device, episodes: int, reference: dict) -> dict:
    """``row``'s record on ``episodes`` episodes of its construction; its first episodes must be ``reference``'s
    (``results/episode_construction.json``'s record of the same test), else the run stops with one line."""
    rec = measure(row, data, device, episodes, None, check=False)[0]
    n = reference["episodes"]
    where = f"{row.label} {row.n_way}-way 1-shot built {row.rotations[0]}"
    if rec["protocol"] != reference["protocol"] or rec["checkpoint"]["sha256"] != reference["checkpoint"]["sha256"] \
            or rec["episode_accuracies"][:n] != reference["episode_accuracies"]:
        raise SystemExit(f"error: {where}: the first {n} episodes are not {CONSTRUCTION.name}'s record of the same "
                         "test; re-run benchmarks/episode_construction.py, or find what changed")
    print(f"{where}: the first {n} episodes are {CONSTRUCTION.name}'s, episode for episode", flush=True)
    rec["variant"] = (f"{row.rotations[0]} episodes, {episodes} of them (the paper's count): "
                      f"{CONSTRUCTIONS[row.rotations[0]]}")
    return rec


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated, from {', '.join(METHODS)} "
                                                                  "(default: all)")
    p.add_argument("--device", default=None)
    p.add_argument("--results", default=None,
                   help="the results folder (default: FSLCOURSE_RESULTS if set, else the repository's results/)")
    args = p.parse_args(argv)
    methods = names_from(args.methods, "--methods", METHODS)
    out = results_dir(args.results) / f"{NAME}.json"
    try:  # refused before any work: a results file that cannot be written, a construction record missing or stale
        check_writable(out, "the results file")
        rows, skipped = committed_rows([r for r in paper_rows() if r.name in methods], args.methods)
        built = json.loads(CONSTRUCTION.read_text())["records"] if CONSTRUCTION.exists() else []
        check_construction(rows, built)
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(f"error: {err}")
    for line in skipped:
        print(line, flush=True)
    torch.set_num_threads(1)  # episode_construction's threads: its reductions, so its accuracies to the last digit
    with one_line_errors():  # a bad --device or FSLCOURSE_DEVICE, data not found: one line
        device = get_device(args.device)
        data = load_omniglot(split="vinyals", device=device, progress=False)
    records = [measure_count(row, data, device, PUBLISHED_TEST_EPISODES[row.method], construction_record(row, built))
               for row in rows]
    print(table(records))
    records = keep_unmeasured(out, records, rows)  # and the rows this run did not measure
    print(f"wrote {save_results(NAME, records, directory=out.parent)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
