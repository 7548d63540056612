"""Lake et al.'s task (20-way 1-shot, all classes from one alphabet): the course's best one-shot model and what each
technique adds, on the same 600 within-alphabet meta-test episodes of the alphabet split.

Writes ``results/oneshot_ablation.json``. Rows: committed checkpoints (the quick ProtoNet, the ``lake`` recipe and
any training ablation whose checkpoint exists), and test-time variants of the ``lake`` model: transductive batch
normalisation (the test episode's own statistics) and test-time deformations (``m`` randomly deformed copies of
each support drawing join the prototype). Every row is paired with the ``lake`` model on the same episodes.

Usage (from the repository root, FSLCOURSE_DATA set; one CPU thread):

    OMP_NUM_THREADS=1 python benchmarks/oneshot_ablation.py                  # 600 episodes
    OMP_NUM_THREADS=1 python benchmarks/oneshot_ablation.py --episodes 100   # a quick look
"""
from __future__ import annotations

import argparse

import torch

from fslcourse.config import get_device
from fslcourse.data import load_omniglot
from fslcourse.evaluate import evaluate, mean_ci95
from fslcourse.generative.augment import AugmentedClassifier
from fslcourse.generative.classical import Deformation
from fslcourse.methods.base import FewShotClassifier
from fslcourse.pretrained import checkpoint_path, load_method, training_summary
from fslcourse.report import results_dir
from fslcourse.results import result_record, save_results

NAME = "oneshot_ablation"
TRAINED = [("protonet", "quick", "ProtoNet quick (32 filters, random 60-way episodes, 3000 steps)"),
           ("protonet", "lake", "lake: within-alphabet 20-way episodes, deformations, 64 filters"),
           # the training ablation: the lake recipe with one change, at the same 20,000 steps (rows once committed)
           ("protonet", "lake-no-augment", "lake without the deformations"),
           ("protonet", "lake-random-episodes", "lake with random 20-way training episodes"),
           ("protonet", "lake-32", "lake with 32 filters")]


class Transductive(FewShotClassifier):
    """``method`` with batch normalisation from each test batch's own statistics; the running ones are kept."""

    def __init__(self, method):
        super().__init__()
        self.method, self.name = method, method.name
        self.test_batch_norm = "batch"
        self.checkpoint_source = getattr(method, "checkpoint_source", None)  # records name the file measured

    def predict(self, support_x, support_y, query_x):
        bns = [m for m in self.method.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        saved = [(m.momentum, m.training) for m in bns]
        for m in bns:
            m.momentum = 0.0  # batch statistics used, running statistics left unchanged
            m.train()
        try:
            return self.method.predict(support_x, support_y, query_x)
        finally:
            for m, (momentum, training) in zip(bns, saved):
                m.momentum = momentum
                m.train(training)

def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--episodes", type=int, default=600)
    p.add_argument("--n-query", type=int, default=5)
    p.add_argument("--copies", type=int, default=4, help="test-time deformed copies per support drawing")
    p.add_argument("--device", default=None)
    p.add_argument("--results", default=None)
    args = p.parse_args(argv)
    device = get_device(args.device)
    out_dir = results_dir(args.results)
    data = load_omniglot(device=device)
    protocol = dict(n_way=20, n_shot=1, n_query=args.n_query, n_episodes=args.episodes, seed=0, within_alphabet=True)
    rows, records, lake = [], [], None
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
    lake_model = models[lake_label][0]
    variants = [(label, model, ckpt) for label, (model, ckpt) in models.items()]
    variants += [("lake + transductive batch norm", Transductive(lake_model), models[lake_label][1]),
                 (f"lake + {args.copies} test-time deformations per support drawing",
                  AugmentedClassifier(lake_model, Deformation(), args.copies, seed=0), models[lake_label][1])]
    for label, model, ckpt in variants:
        res = evaluate(model, data.test, device=device, **protocol)
        if label == lake_label:
            lake = res
        rows.append((label, res, ckpt))
    for label, res, ckpt in rows:
        diff, ci = mean_ci95([a - b for a, b in zip(res.episode_accuracies, lake.episode_accuracies)])
        print(f"{label:<70} {res.accuracy:5.1f} ± {res.ci95:.1f}%  (error {100 - res.accuracy:4.1f}%)  "
              f"paired vs lake {diff:+.1f} ± {ci:.1f}")
        records.append(result_record("protonet", res, config=ckpt["config"], seed=ckpt["seed"], device=device,
                                     profile=ckpt.get("profile"), train_seconds=ckpt.get("train_seconds"),
                                     extra={"variant": label, "paired_vs_lake": diff, "paired_vs_lake_ci95": ci,
                                            "training": training_summary(ckpt)}))
    path = save_results(NAME, records, directory=out_dir)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
