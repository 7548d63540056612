"""Lake et al.'s task (20-way 1-shot, all classes from one alphabet): the course's best one-shot model and what each
technique adds, on the same 600 within-alphabet meta-test episodes of the alphabet split.

Writes ``results/oneshot_ablation.json``. Rows: committed checkpoints (the quick ProtoNet, the ``lake`` recipe and
any training ablation whose checkpoint exists), and test-time variants of the ``lake`` model: transductive batch
normalisation (the test episode's own statistics), test-time deformations (``m`` randomly deformed copies of each
support drawing join the prototype), soft k-means refinement of the prototypes on the queries (Ren et al. 2018;
its number of steps chosen on meta-validation episodes, never on the test), and an ensemble of two lake models
trained from different seeds. Every row is paired with the ``lake`` model on the same episodes. The transductive
rows are measured again with one query per class, as in Lake et al.'s own trials.

Usage (from the repository root, FSLCOURSE_DATA set; one CPU thread):

    OMP_NUM_THREADS=1 python benchmarks/oneshot_ablation.py                  # 600 episodes
    OMP_NUM_THREADS=1 python benchmarks/oneshot_ablation.py --episodes 100 --results /tmp/look   # a quick look
    OMP_NUM_THREADS=1 python benchmarks/oneshot_ablation.py --only-new       # add new training rows to the file
    OMP_NUM_THREADS=1 python benchmarks/oneshot_ablation.py --upright        # add the upright-characters rows

``--upright`` measures the lake model, the two-seed ensemble and the best transductive row again on episodes of
**upright characters only**: the course's split counts each character's four rotations as classes, so its
within-alphabet episodes draw from an alphabet's characters and their rotations, where Lake et al.'s runs hold
20 upright characters. Alphabets with fewer than 20 characters cannot make such an episode and are left out
(named in each record). Soft k-means takes the steps chosen on meta-validation for the main rows
(``REFINE_STEPS``). The rows (``characters: "upright"``) replace any earlier upright rows; the others are kept
(a full run rewrites the file without them: run ``--upright`` again after it).

``--only-new`` measures only the training rows (``TRAINED``) whose checkpoint exists but whose row the file does
not hold yet, pairs them with the stored lake row's per-episode accuracies (the episodes are the same: seeded),
and inserts them after the other training rows; every other record is kept as it is. A full run gives the same
records, since evaluation is deterministic.
"""
from __future__ import annotations

import argparse
import json

from fslcourse.cli import one_line_errors, whole
from fslcourse.config import get_device
from fslcourse.data import load_omniglot
from fslcourse.evaluate import evaluate, mean_ci95
from fslcourse.generative.augment import AugmentedClassifier
from fslcourse.generative.classical import Deformation
from fslcourse.io import check_writable
from fslcourse.methods.ensemble import Ensemble
from fslcourse.methods.transductive import REFINE_STEPS, BatchStatistics, SoftKMeans
from fslcourse.pretrained import checkpoint_path, load_method, training_summary
from fslcourse.report import results_dir
from fslcourse.results import check_same_episodes, result_record, save_results

NAME = "oneshot_ablation"
TRAINED = [("protonet", "quick", "ProtoNet quick (32 filters, random 60-way episodes, 3000 steps)"),
           ("protonet", "lake", "lake: within-alphabet 20-way episodes, deformations, 64 filters"),
           # the training ablation: the lake recipe with one change, at the same 20,000 steps (rows once committed)
           ("protonet", "lake-no-augment", "lake without the deformations"),
           ("protonet", "lake-random-episodes", "lake with random 20-way training episodes"),
           ("protonet", "lake-32", "lake with 32 filters"),
           ("protonet", "lake-seed1", "lake from seed 1"),
           # longer training: the same recipe and schedule shape, stopped at fewer steps
           ("protonet", "lake-3000", "lake trained 3000 steps"),
           ("protonet", "lake-8000", "lake trained 8000 steps")]


def ensemble_training(ckpts) -> dict:
    """How an ensemble's members were trained, summed: the record's ``training`` field."""
    parts = [training_summary(c) for c in ckpts]
    return {"steps": sum(p["steps"] for p in parts), "cpu_seconds": sum(p["cpu_seconds"] for p in parts),
            "width": parts[0]["width"], "selection": parts[0]["selection"], "members": parts}


def choose_refine_steps(model, data, device, episodes: int, candidates=(1, 2, 3, 5)) -> tuple[int, dict]:
    """Soft k-means steps with the best meta-validation accuracy (within-alphabet 20-way 1-shot); never the test."""
    sweep = {}
    for steps in candidates:
        res = evaluate(SoftKMeans(model, steps=steps), data.val, device=device, n_way=20, n_shot=1, n_query=5,
                       n_episodes=episodes, seed=0, within_alphabet=True)
        sweep[steps] = res.accuracy
        print(f"meta-validation, soft k-means {steps} step(s): {res.accuracy:.1f}%")
    return max(sweep, key=sweep.get), sweep


def training_record(label: str, res, ckpt, lake: dict, device) -> dict:
    """The record of a training row ``label`` (inductive, as the lake row), paired with the stored ``lake`` record."""
    diff, ci = mean_ci95([a - b for a, b in zip(res.episode_accuracies, lake["episode_accuracies"])])
    print(f"{label:<90} {res.accuracy:5.1f} ± {res.ci95:.1f}%  paired vs lake {diff:+.1f} ± {ci:.1f}")
    return result_record("protonet", res, config=ckpt["config"], seed=ckpt["seed"], device=device,
                         profile=ckpt.get("profile"), train_seconds=ckpt.get("train_seconds"),
                         extra={"variant": label, "paired_vs_lake": diff, "paired_vs_lake_ci95": ci,
                                "transductive": "none", "queries_per_class": lake["queries_per_class"],
                                "refine_steps_val_sweep": None,
                                "refine_steps_val_episodes": lake["refine_steps_val_episodes"],
                                "training": training_summary(ckpt)})


def add_new_training_rows(data, device, protocol: dict, out_dir) -> int:
    """``--only-new``: measure the training rows the results file lacks and insert them after the others."""
    path = out_dir / f"{NAME}.json"
    if not path.exists():
        raise SystemExit(f"error: --only-new adds to {path}, which does not exist; run without --only-new first")
    records = json.loads(path.read_text())["records"]
    main_rows = [r for r in records if r["queries_per_class"] == protocol["n_query"] and not r.get("characters")]
    lake = next((r for r in main_rows if r["variant"] == TRAINED[1][2]), None)
    if lake is None or lake["episodes"] != protocol["n_episodes"]:
        raise SystemExit(f"error: {path} has no lake row on {protocol['n_episodes']} episodes with "
                         f"{protocol['n_query']} queries per class to pair with; run without --only-new")
    have = {r["variant"] for r in records}
    new = []
    for name, recipe, label in TRAINED:
        path_ckpt = checkpoint_path(name, recipe)
        if label in have or not path_ckpt.exists():
            continue
        model, ckpt = load_method(path_ckpt, device, expect=name)
        new.append(training_record(label, evaluate(model, data.test, device=device, **protocol), ckpt, lake, device))
    if not new:
        print(f"{path} already holds every training row with a checkpoint")
        return 0
    labels = [label for _, _, label in TRAINED]
    last = max(i for i, r in enumerate(records) if r["variant"] in labels and not r.get("characters")
               and r["queries_per_class"] == lake["queries_per_class"])
    print(f"wrote {save_results(NAME, records[:last + 1] + new + records[last + 1:], directory=out_dir)}")
    return 0


def variant_record(label: str, res, ckpt, how: str, n_query: int, base, device, **extra) -> dict:
    """The record of a row ``label`` measured as ``res`` (``ckpt``: its checkpoint, or an ensemble's list), paired
    with the lake model's ``base`` result on the same episodes; ``extra`` adds fields."""
    diff, ci = mean_ci95([a - b for a, b in zip(res.episode_accuracies, base.episode_accuracies)])
    print(f"{label:<90} {n_query} q/class {res.accuracy:5.1f} ± {res.ci95:.1f}%  (error {100 - res.accuracy:4.1f}%)  "
          f"paired vs lake {diff:+.1f} ± {ci:.1f}")
    one = ckpt[0] if isinstance(ckpt, list) else ckpt
    training = ensemble_training(ckpt) if isinstance(ckpt, list) else training_summary(ckpt)
    return result_record("protonet", res, config=one["config"], seed=one["seed"], device=device,
                         profile=one.get("profile"), train_seconds=one.get("train_seconds"),
                         extra={"variant": label, "paired_vs_lake": diff, "paired_vs_lake_ci95": ci, "transductive": how,
                                "queries_per_class": n_query, "training": training, **extra})


UPRIGHT = "upright"  # the records' "characters" field for the --upright rows (the others have none: all rotations)


def add_upright_rows(device, protocol: dict, out_dir) -> int:
    """``--upright``: the lake model, the ensemble and the best transductive row on upright characters only."""
    path = out_dir / f"{NAME}.json"
    if not path.exists():
        raise SystemExit(f"error: --upright adds to {path}, which does not exist; run without --upright first")
    records = [r for r in json.loads(path.read_text())["records"] if r.get("characters") != UPRIGHT]
    data = load_omniglot(device=device, rotations=False)
    lake_path, seed1_path = checkpoint_path("protonet", "lake"), checkpoint_path("protonet", "lake-seed1")
    for needed in (lake_path, seed1_path):
        if not needed.exists():
            raise SystemExit(f"error: --upright needs {needed.name}; train it with python -m fslcourse train protonet "
                             f"--recipe {needed.stem.removeprefix('protonet-')}")
    lake, lake_ckpt = load_method(lake_path, device, expect="protonet")
    seed1, seed1_ckpt = load_method(seed1_path, device, expect="protonet")
    skm = f"soft k-means ({REFINE_STEPS} steps, chosen on meta-validation)"
    rows = [(TRAINED[1][2], lake, lake_ckpt, "none"),
            ("ensemble of lake and lake from seed 1", Ensemble([lake, seed1]), [lake_ckpt, seed1_ckpt], "none"),
            (f"ensemble of lake and lake from seed 1 + transductive batch norm + {skm}",
             Ensemble([SoftKMeans(BatchStatistics(m), REFINE_STEPS) for m in (lake, seed1)]), [lake_ckpt, seed1_ckpt],
             "batch norm + soft k-means")]
    for n_query in (protocol["n_query"], 1):
        results = [(label, evaluate(model, data.test, device=device, **{**protocol, "n_query": n_query}), ckpt, how)
                   for label, model, ckpt, how in rows]
        records += [variant_record(label, res, ckpt, how, n_query, results[0][1], device, characters=UPRIGHT,
                                   refine_steps_val_sweep=None, refine_steps_val_episodes=None)
                    for label, res, ckpt, how in results]
        print(f"(upright characters; alphabets left out: {', '.join(results[0][1].alphabets_left_out) or 'none'})")
    print(f"wrote {save_results(NAME, records, directory=out_dir)}")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--episodes", type=whole(2), default=600)
    p.add_argument("--n-query", type=whole(1), default=5)
    p.add_argument("--val-episodes", type=whole(2), default=200, help="meta-validation episodes per soft k-means setting")
    p.add_argument("--copies", type=whole(1), default=4, help="test-time deformed copies per support drawing")
    p.add_argument("--device", default=None)
    p.add_argument("--results", default=None)
    p.add_argument("--only-new", action="store_true",
                   help="measure only training rows missing from the results file and add them to it")
    p.add_argument("--upright", action="store_true",
                   help="add rows measured on upright characters only (no rotations), Lake et al.'s episode shape")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a results file measured on other episodes (default: refused)")
    args = p.parse_args(argv)
    out_dir = results_dir(args.results)
    try:  # before any work: an unwritable file, or a table on other episodes (a quick look would replace it)
        check_writable(out_dir / f"{NAME}.json", "the results file")
        check_same_episodes(out_dir / f"{NAME}.json", args.episodes, 0, overwrite=args.overwrite)
    except ValueError as err:
        p.error(str(err))
    with one_line_errors():
        device = get_device(args.device)
    protocol = dict(n_way=20, n_shot=1, n_query=args.n_query, n_episodes=args.episodes, seed=0, within_alphabet=True)
    if args.upright:
        return add_upright_rows(device, protocol, out_dir)
    with one_line_errors(FileNotFoundError):
        data = load_omniglot(device=device)
    if args.only_new:
        return add_new_training_rows(data, device, protocol, out_dir)
    records = []
    models = {}
    for name, recipe, label in TRAINED:
        path = checkpoint_path(name, recipe)
        if not path.exists():
            print(f"{label}: no checkpoint {path.name}; train it with python -m fslcourse train {name} --recipe {recipe}")
            continue
        models[label] = load_method(path, device, expect=name)
    lake_label = TRAINED[1][2]
    if lake_label not in models:
        raise SystemExit(f"error: the ablation needs {checkpoint_path('protonet', 'lake').name}")
    lake_model, lake_ckpt = models[lake_label]
    steps, sweep = choose_refine_steps(BatchStatistics(lake_model), data, device, args.val_episodes)
    skm = f"soft k-means ({steps} step{'s' if steps > 1 else ''}, chosen on meta-validation)"
    variants = [(label, model, ckpt, "none") for label, (model, ckpt) in models.items()]
    variants += [("lake + transductive batch norm", BatchStatistics(lake_model), lake_ckpt, "batch norm"),
                 (f"lake + {args.copies} test-time deformations per support drawing",
                  AugmentedClassifier(lake_model, Deformation(), args.copies, seed=0), lake_ckpt, "none"),
                 (f"lake + {skm}", SoftKMeans(lake_model, steps), lake_ckpt, "soft k-means"),
                 (f"lake + transductive batch norm + {skm}", SoftKMeans(BatchStatistics(lake_model), steps),
                  lake_ckpt, "batch norm + soft k-means")]
    seed1 = models.get("lake from seed 1")
    if seed1:
        members = [lake_model, seed1[0]]
        variants += [("ensemble of lake and lake from seed 1", Ensemble(members), [lake_ckpt, seed1[1]], "none"),
                     (f"ensemble of lake and lake from seed 1 + transductive batch norm + {skm}",
                      Ensemble([SoftKMeans(BatchStatistics(m), steps) for m in members]), [lake_ckpt, seed1[1]],
                      "batch norm + soft k-means")]
    # Lake et al.'s own trials have one query per class: transductive methods see 20 queries, not 100
    lake_trials = [(label, model, ckpt, how) for label, model, ckpt, how in variants
                   if label == lake_label or how != "none" and "deformations" not in label]
    for n_query, todo in ((args.n_query, variants), (1, lake_trials)):
        base, results = None, []
        for label, model, ckpt, how in todo:
            res = evaluate(model, data.test, device=device, **{**protocol, "n_query": n_query})
            base = res if label == lake_label else base
            results.append((label, res, ckpt, how))
        records += [variant_record(label, res, ckpt, how, n_query, base, device,
                                   refine_steps_val_sweep=sweep if "soft k-means" in how else None,
                                   refine_steps_val_episodes=args.val_episodes)
                    for label, res, ckpt, how in results]
    path = save_results(NAME, records, directory=out_dir)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
