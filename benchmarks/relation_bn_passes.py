"""The Relation Network's batch-statistics test: support and queries normalised together (ours) or apart (its code).

The paper's code never switches its networks to evaluation mode, so every test batch is normalised with its own
BatchNorm statistics, and it embeds an episode in two passes: the support set, then the queries
(floodsung/LearningToCompare_FSL, ``omniglot_test_one_shot.py``). The course's ``relation-batch-stats`` row, and
its training, embed both in one batch (``RelationNet.embed_passes = "pooled"``). This measures what that departure
is worth: each committed paper checkpoint, wrapped in :class:`~fslcourse.methods.transductive.BatchStatistics`, on
the same 1000 seeded Vinyals test episodes (episode seed 0, the course benchmark's) at the setting its recipe was
trained for (``paper``: 5-way 1-shot; ``paper-20way``: 20-way 1-shot), with the paper's queries
per class (``fslcourse.report.published_n_query``), both ways, paired.

Writes ``results/relation_bn_passes.json``: one record per checkpoint and way of embedding (``variant`` names it;
the ``separate`` record holds the paired difference ``separate - pooled``); a run of one recipe keeps the other's. Accuracies only: ``eval_seconds`` is
left out (``null``), since these are not timings and may be measured beside a training run.

Usage (from the repository root, FSLCOURSE_DATA set; one CPU thread; a few CPU-minutes):

    OMP_NUM_THREADS=1 python benchmarks/relation_bn_passes.py
    OMP_NUM_THREADS=1 python benchmarks/relation_bn_passes.py --episodes 100 --results /tmp/look   # a look
"""
from __future__ import annotations

import argparse
import json

from fslcourse.cli import add_episode_arguments, names_from, one_line_errors, parse_episode_arguments
from fslcourse.config import get_device
from fslcourse.data import load_omniglot
from fslcourse.evaluate import evaluate
from fslcourse.io import check_writable
from fslcourse.methods.transductive import BatchStatistics
from fslcourse.pretrained import checkpoint_path, existing_checkpoint, load_method
from fslcourse.report import paired_episodes, published_n_query, results_dir
from fslcourse.results import accuracy_record, check_same_episodes, save_results

NAME = "relation_bn_passes"
RECIPES = {"paper": 5, "paper-20way": 20}  # the recipe and the n_way of the test it was trained for


def measure(recipe: str, n_way: int, data, device, episodes: int) -> list[dict]:
    """Records of ``relation-RECIPE.pt`` with batch statistics, its episode embedded in one pass and in two."""
    model, ckpt = load_method(checkpoint_path("relation", recipe), device, expect="relation")
    n_query = published_n_query("relation-batch-stats", 1)
    measured = {}
    for passes in model.EMBED_PASSES:
        model.embed_passes = passes
        measured[passes] = evaluate(BatchStatistics(model), data.test, n_way=n_way, n_shot=1, n_query=n_query,
                                    n_episodes=episodes, seed=0, device=device)
    model.embed_passes = "pooled"
    diff, ci = paired_episodes(measured["separate"].episode_accuracies, measured["pooled"].episode_accuracies)
    records = []
    for passes, res in measured.items():
        extra = {"variant": f"{recipe}: batch statistics, support and queries embedded "
                            + ("in one batch (the course)" if passes == "pooled" else "in two passes (the paper's code)"),
                 "recipe": recipe, "embed_passes": passes}
        line = f"relation ({recipe}) {n_way}-way 1-shot, {passes:8s}: {res.accuracy:6.2f} ± {res.ci95:.2f}%"
        if passes == "separate":
            extra.update(paired_vs_pooled=diff, paired_vs_pooled_ci95=ci)
            line += f"   paired separate - pooled {diff:+.2f} ± {ci:.2f}"
        print(line)
        records.append(accuracy_record("relation-batch-stats", res, ckpt, device, extra))
    return records


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--recipes", default="paper", help=f"comma-separated, from {', '.join(RECIPES)} (default: paper)")
    add_episode_arguments(p)
    args = parse_episode_arguments(p, argv)
    recipes = names_from(args.recipes, "--recipes", RECIPES)
    out = results_dir(args.results) / f"{NAME}.json"
    try:  # refused before any work: a results file that cannot be written, a checkpoint not trained
        check_writable(out, "the results file")
        check_same_episodes(out, args.episodes, 0, overwrite=args.overwrite)
        for recipe in recipes:
            existing_checkpoint("relation", recipe)
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(f"error: {err}")
    with one_line_errors():  # a bad --device or FSLCOURSE_DEVICE, data not found: one line
        device = get_device(args.device)
        data = load_omniglot(split="vinyals", device=device)
    records = [rec for recipe in recipes for rec in measure(recipe, RECIPES[recipe], data, device, args.episodes)]
    if out.exists() and not args.overwrite:  # keep the other recipe's records (the same episodes: checked above)
        records = [r for r in json.loads(out.read_text())["records"] if r.get("recipe") not in recipes] + records
    print(f"wrote {save_results(NAME, records, directory=out.parent)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
