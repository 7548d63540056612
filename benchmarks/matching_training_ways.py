"""Matching Networks' training and validation ways, on the same Vinyals test episodes: do they matter?

Vinyals et al. (2016, arXiv:1606.04080) match training to each test setting, so their 5-way 1-shot figure
(98.1) comes from a model trained on 5-way episodes and their 20-way 1-shot figure (93.8) from one trained on
20-way episodes. The course has three paper checkpoints: ``matching-paper.pt`` (recipe ``paper``: 20-way 1-shot
training, weights chosen on 5-way 1-shot meta-validation), ``matching-paper-5way.pt`` (recipe ``paper-5way``:
5-way 1-shot training, otherwise the same recipe) and ``matching-paper-20way.pt`` (recipe ``paper-20way``: the
``paper`` recipe, weights chosen on 20-way 1-shot meta-validation). Each is measured on the course benchmark's
1000 seeded Vinyals test episodes (episode seed 0, 5 queries per class) at 5-way 1-shot and 20-way 1-shot, and
the models are paired episode by episode: the same support sets and queries.

Writes ``results/matching_training_ways.json``: one record per checkpoint and setting, with ``variant`` naming
the training and validation episodes (so the benchmark table keeps the benchmark's own record for each cell) and,
on the records of every recipe but ``paper``, ``paired_vs_paper`` and its 95% interval (that recipe's model minus
``matching-paper.pt``, points). Accuracies only: ``eval_seconds`` is left out (``null``), since these are not
timings.

Usage (from the repository root, FSLCOURSE_DATA set; one CPU thread; about 6 CPU-minutes):

    OMP_NUM_THREADS=1 python benchmarks/matching_training_ways.py
    OMP_NUM_THREADS=1 python benchmarks/matching_training_ways.py --episodes 100 --results /tmp/look   # a look
"""
from __future__ import annotations

import argparse

from fslcourse.cli import add_episode_arguments, one_line_errors, parse_episode_arguments
from fslcourse.config import get_device
from fslcourse.data import load_omniglot
from fslcourse.evaluate import evaluate, mean_ci95
from fslcourse.io import check_writable
from fslcourse.pretrained import checkpoint_path, existing_checkpoint, load_method
from fslcourse.report import results_dir
from fslcourse.results import accuracy_record, check_same_episodes, save_results

NAME = "matching_training_ways"
RECIPES = ("paper", "paper-5way", "paper-20way")  # each checkpoint's own recipe says its training and validation ways
SETTINGS = (5, 20)  # test n_way, 1-shot
N_QUERY = 5  # the course benchmark's queries per class (Matching Networks use no test-batch statistics)


def measure(data, device, episodes: int) -> list[dict]:
    """Each checkpoint at each setting; all but ``paper``'s records carry the paired difference from it."""
    results, ckpts = {}, {}
    for recipe in RECIPES:
        model, ckpts[recipe] = load_method(checkpoint_path("matching", recipe), device, expect="matching")
        for n_way in SETTINGS:
            results[recipe, n_way] = evaluate(model, data.test, n_way=n_way, n_shot=1, n_query=N_QUERY,
                                              n_episodes=episodes, seed=0, device=device)
    records = []
    for (recipe, n_way), res in results.items():
        ckpt = ckpts[recipe]
        trained, chosen = ckpt["recipe"]["n_way"], ckpt["recipe"]["val_n_way"]
        extra = {"variant": f"trained {trained}-way 1-shot, chosen on {chosen}-way", "recipe": recipe,
                 "train_n_way": trained, "val_n_way": chosen}
        line = (f"matching trained {trained:2d}-way, chosen on {chosen:2d}-way, tested {n_way:2d}-way 1-shot: "
                f"{res.accuracy:6.2f} ± {res.ci95:.2f}%")
        if recipe != "paper":  # the same episodes as matching-paper.pt's: a paired difference
            base = results["paper", n_way]
            diff, ci = mean_ci95([a - b for a, b in zip(res.episode_accuracies, base.episode_accuracies)])
            extra.update(paired_vs_paper=diff, paired_vs_paper_ci95=ci)
            line += f"   paired vs paper {diff:+.2f} ± {ci:.2f}"
        print(line)
        records.append(accuracy_record("matching", res, ckpt, device, extra))
    return records


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_episode_arguments(p)
    args = parse_episode_arguments(p, argv)
    out_dir = results_dir(args.results)
    try:  # refused before any work: a results file that cannot be written, a checkpoint not trained
        check_writable(out_dir / f"{NAME}.json", "the results file")
        check_same_episodes(out_dir / f"{NAME}.json", args.episodes, 0, overwrite=args.overwrite)
        for recipe in RECIPES:
            existing_checkpoint("matching", recipe)
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(f"error: {err}")
    with one_line_errors():  # a bad --device or FSLCOURSE_DEVICE, data not found: one line
        device = get_device(args.device)
        data = load_omniglot(split="vinyals", device=device)
    print(f"wrote {save_results(NAME, measure(data, device, args.episodes), directory=out_dir)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
