"""How the test episodes are built: the paper checkpoints on the papers' own episode constructions.

The course's Vinyals test episodes draw ``n_way`` classes from the 1,692 (character, rotation) classes of the 423
Vinyals et al. test characters, as ProtoNet's and Matching Networks' tests do, so one episode can hold two turns of
one character (often, at 20 ways). Other papers' codes built their test episodes from ``n_way`` distinct
characters (``fslcourse.data.EpisodeSampler``'s ``rotation``): MAML's code (cbfinn/maml, ``data_generator.py``;
also behind first-order MAML's published figures) turns each class by its own random multiple of 90°
(``"per-class"``), the Relation Network's (floodsung/LearningToCompare_FSL, ``omniglot_test_one_shot.py``) turns
the whole episode by one (``"per-episode"``), Reptile's (openai/supervised-reptile) tests upright characters
(``"upright"``). This measures what the construction is worth: each committed paper checkpoint on 1000 seeded
Vinyals test episodes (episode seed 0, the course benchmark's) of each construction below, with the course
benchmark's test for its row (``benchmarks/course_benchmark.py --split vinyals --profile paper``: the paper's
queries per class where its BatchNorm uses each test batch's statistics, ``fslcourse.report.published_n_query``,
else 5; Reptile transductive; the Relation Network with batch statistics, its ``relation-batch-stats`` row):

* ``protonet`` (``paper``) at 5-way and 20-way 1-shot: every construction;
* ``matching`` and ``fomaml`` (``paper-20way``) at 20-way 1-shot, ``maml`` (``paper``) at 5-way 1-shot:
  ``classes`` and ``per-class`` (first-order MAML's figures were made with MAML's code);
* ``fomaml`` (``paper``) at 5-way 1-shot: ``classes`` and ``per-class``;
* ``reptile`` (``paper``) at 5-way 1-shot, transductive (``reptile``) and not (``reptile-inductive``): ``classes``
  and ``upright``;
* ``relation-batch-stats`` (``relation-paper.pt``) at 5-way 1-shot: ``classes`` and ``per-episode``;
* the separate 20-way models of the Relation Network, MAML and Reptile (``paper-20way``) at 20-way 1-shot, each with
  its paper's construction, once committed (``--methods NAME`` after the run's benchmark rows).

A checkpoint that is not committed is skipped with a line saying so. Each row's ``classes`` episodes are the
course benchmark's: they are measured first and checked against ``results/11_benchmark.json``'s record of the same
checkpoint and cell (the same accuracy to 1e-9 and the same episodes; with fewer episodes, the same first
per-episode accuracies), and a mismatch stops the run. Episodes of different constructions are different episodes,
so each difference from ``classes`` has an unpaired 95% interval (the square root of the sum of the two squared
half-widths).

Writes ``results/episode_construction.json``: one record per checkpoint, cell and construction; ``rotation`` (top
level, and in the protocol when not ``classes``, so no record looks like the benchmark's) and ``variant`` name the
construction, and every record but ``classes``' holds ``vs_classes`` and ``vs_classes_ci95`` (points). A run of some
``--methods`` keeps the file's other rows; a run on other episodes (``--episodes``) than the file's is refused before
any work (``--results DIR`` writes elsewhere, ``--overwrite`` replaces the file). Accuracies only: ``eval_seconds`` is
left out (``null``), since these are not timings and may be measured beside a training run.

Usage (from the repository root, FSLCOURSE_DATA set; one CPU thread, measured beside two training runs: the first
seven rows took 21 CPU-minutes; ``--methods fomaml,reptile`` (both first-order MAML rows, both Reptile rows) took
34 minutes of wall time;
``--episodes 50``: about 1 CPU-minute):

    OMP_NUM_THREADS=1 python benchmarks/episode_construction.py
    OMP_NUM_THREADS=1 python benchmarks/episode_construction.py --episodes 50 --results /tmp/look   # a look
    OMP_NUM_THREADS=1 python benchmarks/episode_construction.py --methods protonet,maml
"""
from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass

import torch

from fslcourse.cli import add_episode_arguments, names_from, one_line_errors, parse_episode_arguments
from fslcourse.config import get_device, seed_everything
from fslcourse.data import load_omniglot
from fslcourse.evaluate import evaluate, same_episodes
from fslcourse.io import check_writable, file_source
from fslcourse.methods.transductive import BatchStatistics
from fslcourse.pretrained import checkpoint_path, existing_checkpoint, load_method
from fslcourse.report import REPO_RESULTS, published_n_query, results_dir
from fslcourse.results import accuracy_record, check_same_episodes, save_results

NAME = "episode_construction"
BENCHMARK = REPO_RESULTS / "11_benchmark.json"  # the course benchmark's committed records: the "classes" reference
DEFAULT_N_QUERY = 5  # the course benchmark's queries per class where the paper's figure does not depend on them
CONSTRUCTIONS = {  # EpisodeSampler's rotation -> what it builds, and whose test it is
    "classes": "n_way (character, rotation) classes of the Vinyals lists (the course benchmark's; ProtoNet's and "
               "Matching Networks' test)",
    "per-class": "n_way distinct characters, each turned by its own random multiple of 90 degrees (MAML's code)",
    "per-episode": "n_way distinct characters, the whole episode turned by one random multiple of 90 degrees (the "
                   "Relation Network's code)",
    "upright": "n_way distinct characters, upright (Reptile's test)",
}


@dataclass(frozen=True)
class Row:
    """One checkpoint's cell: ``NAME-RECIPE.pt`` measured as the benchmark's row ``method`` at ``n_way``-way 1-shot."""

    name: str  # the checkpoint's method (what --methods takes)
    recipe: str
    n_way: int
    rotations: tuple[str, ...]  # "classes" first: the benchmark's episodes, checked before the others
    method: str  # the benchmark's row: relation-batch-stats measures relation-paper.pt with batch statistics

    @property
    def label(self) -> str:
        return f"{self.method} ({self.recipe})"


ROWS = (
    Row("protonet", "paper", 5, ("classes", "per-class", "per-episode", "upright"), "protonet"),
    Row("protonet", "paper", 20, ("classes", "per-class", "per-episode", "upright"), "protonet"),
    Row("matching", "paper-20way", 20, ("classes", "per-class"), "matching"),
    Row("fomaml", "paper-20way", 20, ("classes", "per-class"), "fomaml"),
    Row("fomaml", "paper", 5, ("classes", "per-class"), "fomaml"),
    Row("maml", "paper", 5, ("classes", "per-class"), "maml"),
    Row("reptile", "paper", 5, ("classes", "upright"), "reptile"),
    Row("reptile", "paper", 5, ("classes", "upright"), "reptile-inductive"),
    Row("relation", "paper", 5, ("classes", "per-episode"), "relation-batch-stats"),
    # the papers' separate 20-way models, measured once their runs across sittings are finished and committed
    Row("relation", "paper-20way", 20, ("classes", "per-episode"), "relation-batch-stats"),
    Row("maml", "paper-20way", 20, ("classes", "per-class"), "maml"),
    Row("reptile", "paper-20way", 20, ("classes", "upright"), "reptile"),
    Row("reptile", "paper-20way", 20, ("classes", "upright"), "reptile-inductive"),
)
METHODS = tuple(dict.fromkeys(r.name for r in ROWS))


def n_query_of(row: Row) -> int:
    """Queries per class of the benchmark's cell: the paper's where its figure depends on them, else 5."""
    return published_n_query(row.method, 1) or DEFAULT_N_QUERY


def benchmark_record(row: Row, records: list[dict]) -> dict | None:
    """The course benchmark's record of ``row``'s cell (paper profile, Vinyals split, ``n_way``-way 1-shot)."""
    return next((r for r in records if r.get("method") == row.method and r.get("profile") == "paper"
                 and (r.get("recipe") or "paper") == row.recipe and r.get("episodes")
                 and (r.get("protocol") or {}).get("split_protocol") == "vinyals"
                 and r["protocol"].get("n_way") == row.n_way and r["protocol"].get("n_shot") == 1
                 and not r["protocol"].get("within_alphabet")), None)


def benchmark_mismatch(row: Row, record: dict, reference: dict | None) -> str | None:
    """Why ``record`` (``row``'s ``classes`` measurement) is not the course benchmark's ``reference`` record of the
    same cell, or ``None`` when it is: the same checkpoint file and protocol, the same episodes (the same digest
    where the benchmark's record has one, and every per-episode accuracy) and the same accuracy to 1e-9; with fewer
    episodes than the benchmark, its first per-episode accuracies."""
    where = f"{row.label} {row.n_way}-way 1-shot"
    if reference is None:
        return f"{BENCHMARK.name} has no record of {where} on the Vinyals split"
    if (record.get("checkpoint") or {}).get("sha256") != (reference.get("checkpoint") or {}).get("sha256"):
        return f"{BENCHMARK.name}'s record of {where} measured another checkpoint file"
    if record["protocol"] != reference["protocol"]:
        return f"{where}: protocol {record['protocol']} is not the benchmark's {reference['protocol']}"
    n, digest = record["episodes"], reference.get("episodes_sha256")  # a record from before digests has none
    if n == reference["episodes"]:
        if not same_episodes(record["episodes_sha256"], digest) \
                or record["episode_accuracies"] != reference["episode_accuracies"] \
                or abs(record["accuracy"] - reference["accuracy"]) > 1e-9:
            return (f"{where} scored {record['accuracy']!r} on episodes {record['episodes_sha256'][:12]}, the "
                    f"benchmark {reference['accuracy']!r} on {digest[:12] if digest else 'episodes of no digest'}, "
                    "or their per-episode accuracies differ")
    elif n > reference["episodes"] or record["episode_accuracies"] != reference["episode_accuracies"][:n]:
        return f"{where}: the first {n} episodes' accuracies are not the benchmark's"
    return None


def check_references(rows, find, where, about, remake) -> None:
    """Before any work: each row's record in ``where`` (``find(row)``, or ``None``) measured the committed checkpoint
    file, else a ValueError naming the command that remakes it (``remake(row)``); ``about(row)`` says what the record
    is for."""
    for row in rows:
        ref = find(row)
        held = (ref or {}).get("checkpoint") or {}
        if ref is None or held.get("sha256") != file_source(checkpoint_path(row.name, row.recipe))["sha256"]:
            what = "has no record of" if ref is None else "measured another checkpoint file for"
            raise ValueError(f"{where} {what} {row.label} {row.n_way}-way 1-shot{about(row)}; run OMP_NUM_THREADS=1 python "
                             f"{remake(row)} first")


def check_benchmark(rows, records: list[dict]) -> None:
    """Before any work: each row's cell has a benchmark record of the committed checkpoint file (else a ValueError)."""
    check_references(rows, lambda row: benchmark_record(row, records), BENCHMARK,
                     lambda row: ", the reference of its 'classes' episodes",
                     lambda row: f"benchmarks/course_benchmark.py --split vinyals --profile paper --methods {row.name} "
                                 "--episodes 1000")


def committed_rows(rows, methods: str) -> tuple[list[Row], list[str]]:
    """``rows`` whose checkpoint is committed, and a line for each of the others; a ValueError when none is
    (``methods``: the ``--methods`` given, for the message)."""
    kept, skipped = [], []
    for row in rows:
        try:
            existing_checkpoint(row.name, row.recipe)
            kept.append(row)
        except FileNotFoundError as err:  # not committed (yet): said, and the row is left out
            skipped.append(f"{row.label} {row.n_way}-way 1-shot: skipped ({err})")
    if not kept:
        raise ValueError(f"no checkpoint of --methods {methods!r} is committed: " + "; ".join(skipped))
    return kept, skipped


def keep_unmeasured(out, records: list[dict], rows) -> list[dict]:
    """The records of the results file ``out`` (if any) of rows other than ``rows`` (another checkpoint, recipe or
    cell: rows this run did not measure), then ``records``."""
    if not out.exists():
        return records
    measured = {(r.method, r.recipe, r.n_way) for r in rows}
    return [r for r in json.loads(out.read_text())["records"]
            if (r["method"], r.get("recipe"), r["protocol"]["n_way"]) not in measured] + records


def unpaired(a: float, b: float) -> float:
    """The 95% half-width of a difference of two results on different episodes: ``sqrt(a**2 + b**2)``."""
    return math.sqrt(a * a + b * b)


def measure(row: Row, data, device, episodes: int, reference: dict | None, check: bool = True) -> list[dict]:
    """``row``'s records, one per construction; its ``classes`` record is checked against ``reference`` first."""
    model, ckpt = load_method(checkpoint_path(row.name, row.recipe), device, expect=row.name)
    config = ckpt["config"]
    if getattr(model, "transductive", None) is not None:  # Reptile: the benchmark's two rows
        model.transductive = not row.method.endswith("-inductive")
        config = {**config, "transductive": model.transductive}
    tested = BatchStatistics(model) if row.method.endswith("-batch-stats") else model
    n_query, records = n_query_of(row), []
    for rotation in row.rotations:
        seed_everything(0)  # as the benchmark does before each cell
        res = evaluate(tested, data.test, n_way=row.n_way, n_shot=1, n_query=n_query, n_episodes=episodes, seed=0,
                       device=device, rotation=rotation)
        extra = {"variant": f"{rotation} episodes: {CONSTRUCTIONS[rotation]}", "rotation": rotation,
                 "recipe": row.recipe}
        if records:
            base = records[0]
            extra.update(vs_classes=res.accuracy - base["accuracy"], vs_classes_ci95=unpaired(res.ci95, base["ci95"]))
        rec = accuracy_record(row.method, res, ckpt, device, extra, config=config)
        rec["profile"] = "paper"  # the benchmark's row (a paper-20way checkpoint measures the paper row's 20-way cell)
        if rotation == "classes" and check:
            problem = benchmark_mismatch(row, rec, reference)
            if problem:
                raise SystemExit(f"error: the 'classes' episodes are not the course benchmark's test: {problem}; "
                                 "re-run benchmarks/course_benchmark.py --split vinyals --profile paper, or find what "
                                 "changed")
            same = "record" if episodes == reference["episodes"] else f"first {episodes} episodes"
            print(f"{row.label} {row.n_way}-way 1-shot, classes: the benchmark's {same}, episode for episode", flush=True)
        records.append(rec)
        print(f"{row.label:28s} {row.n_way:2d}-way 1-shot, {n_query} quer{'y' if n_query == 1 else 'ies'}/class, "
              f"{rotation:11s}: {res.accuracy:6.2f} ± {res.ci95:.2f}%", flush=True)
    return records


def table(records: list[dict]) -> str:
    """The measured rows: accuracy ± 95% CI per construction, and each difference from ``classes`` ± its unpaired
    95% interval (points)."""
    lines = [f"{'row':30s} {'protocol':32s} {'construction':12s} {'accuracy (%)':>14s}   {'minus classes':>14s}"]
    for rec in records:
        proto = rec["protocol"]
        q = proto['n_query']
        setting = f"{proto['n_way']}-way {proto['n_shot']}-shot, {q} quer{'y' if q == 1 else 'ies'}/class"
        diff = f"{rec['vs_classes']:+6.2f} ± {rec['vs_classes_ci95']:.2f}" if "vs_classes" in rec else ""
        lines.append(f"{rec['method'] + ' (' + rec['recipe'] + ')':30s} {setting:32s} {rec['rotation']:12s} "
                     f"{rec['accuracy']:7.2f} ± {rec['ci95']:.2f}   {diff:>14s}")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated, from {', '.join(METHODS)} "
                                                                  "(default: all)")
    add_episode_arguments(p)
    args = parse_episode_arguments(p, argv)
    methods = names_from(args.methods, "--methods", METHODS)
    out = results_dir(args.results) / f"{NAME}.json"
    try:  # refused before any work: a results file that cannot be written, a benchmark record to check against missing
        check_writable(out, "the results file")
        check_same_episodes(out, args.episodes, 0, overwrite=args.overwrite)
        rows, skipped = committed_rows([r for r in ROWS if r.name in methods], args.methods)
        bench = json.loads(BENCHMARK.read_text())["records"] if BENCHMARK.exists() else []
        check_benchmark(rows, bench)
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(f"error: {err}")
    for line in skipped:
        print(line, flush=True)
    torch.set_num_threads(1)  # the benchmark's threads: its reductions, so its accuracies to the last digit
    with one_line_errors():  # a bad --device or FSLCOURSE_DEVICE, data not found: one line
        device = get_device(args.device)
        data = load_omniglot(split="vinyals", device=device, progress=False)
    records = [rec for row in rows for rec in measure(row, data, device, args.episodes, benchmark_record(row, bench))]
    print(table(records))
    if not args.overwrite:  # keep the rows this run did not measure (on the same episodes: checked above)
        records = keep_unmeasured(out, records, rows)
    print(f"wrote {save_results(NAME, records, directory=out.parent)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
