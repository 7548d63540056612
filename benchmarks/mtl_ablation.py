"""Train the MTL rows, then measure notebook 06's ablation table and learning curves into results JSON.

    OMP_NUM_THREADS=1 FSLCOURSE_DEVICE=cpu python benchmarks/mtl_ablation.py --train      # the four checkpoints
    OMP_NUM_THREADS=1 FSLCOURSE_DEVICE=cpu python benchmarks/mtl_ablation.py --ablation   # the table
    OMP_NUM_THREADS=1 FSLCOURSE_DEVICE=cpu python benchmarks/mtl_ablation.py --curve      # the learning curves

``--train`` trains what is missing (``mtl-theta-only`` is phase 1; the other rows start
from its backbone) with :func:`fslcourse.training.train`, the same path as
``python -m fslcourse train NAME --recipe quick``. ``--ablation`` evaluates every row, with ProtoNet and
MAML as references, on the same fixed test episodes (seed 0) of 5-way 1-shot and of
within-alphabet 20-way 1-shot (Lake et al.), each cell as ``python -m fslcourse evaluate
NAME [--n-way 20 --within-alphabet] --n-query 5 --episodes N`` computes it. ``--curve``
meta-trains MTL with HT, MTL without HT (both from the phase-1 backbone) and second-order MAML (from
scratch, with first-order MAML's quick recipe's 32-filter network and optimiser, constant learning rate) on 5-way
1-shot tasks and measures 5-way 1-shot test accuracy against the number of
meta-training tasks seen. Everything goes to ``results/06_mtl_ablation.json``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fslcourse.cli import one_line_errors
from fslcourse.config import get_device  # noqa: E402
from fslcourse.data import find_omniglot, load_omniglot  # noqa: E402
from fslcourse.evaluate import evaluate  # noqa: E402
from fslcourse.io import atomic_write_json  # noqa: E402
from fslcourse.methods import get_method  # noqa: E402
from fslcourse.methods.maml import FOMAML  # noqa: E402
from fslcourse.methods.mtl import PHASE2  # noqa: E402
from fslcourse.pretrained import checkpoint_info, checkpoint_path, load_method, pretrained  # noqa: E402
from fslcourse.recipe import Recipe  # noqa: E402
from fslcourse.results import result_record  # noqa: E402
from fslcourse.training import Hook, Hooks, fit  # noqa: E402
from fslcourse.training import train as train_method  # noqa: E402
from fslcourse.training.trainers import episodic, meta_transfer  # noqa: E402

OUT = ROOT / "results" / "06_mtl_ablation.json"
ROWS = ("mtl-theta-only", "mtl-ft", "mtl-no-ht", "mtl", "protonet", "maml")
PROTOCOLS = {"5-way 1-shot": dict(n_way=5, within_alphabet=False),
             "within-alphabet 20-way 1-shot": dict(n_way=20, within_alphabet=True)}
CURVE_AT = (0, 50, 100, 200, 400, 800, 1600)


def _load(out: Path = OUT) -> dict:
    return json.loads(out.read_text()) if out.exists() else {"name": out.stem, "records": []}


def train(device):
    data = load_omniglot(device=device)
    for name in ("mtl-theta-only", "mtl", "mtl-no-ht", "mtl-ft"):
        if checkpoint_path(name).exists():
            print(f"{name}: {checkpoint_path(name).name} exists, kept")
            continue
        _, fit_result = train_method(name, "quick", data=data, device=device, progress=True)
        info = checkpoint_info(name)
        print(json.dumps({"method": name, "train_seconds": round(fit_result.seconds, 1), "steps": fit_result.steps,
                          "val_accuracy": fit_result.best_score,
                          "test_5way1shot": round(info["metrics"]["test_accuracy"], 2),
                          "recipe": info["recipe"]}, default=str))


def ablation(device, episodes: int, out_path: Path = OUT):
    data = load_omniglot(device=device)
    records = []
    for label, proto in PROTOCOLS.items():
        for name in ROWS:
            model = pretrained(name, device=device)
            if name == "maml" and proto["n_way"] != model.n_way and not model.zero_head:
                print(f"{name} ({label}): n/a, its head has {model.n_way} outputs")
                continue
            res = evaluate(model, data.test, proto["n_way"], 1, 5, episodes, seed=0,
                           within_alphabet=proto["within_alphabet"], device=device, progress=True)
            info = checkpoint_info(name)
            trainable = {"mtl": "scale+shift", "mtl-no-ht": "scale+shift", "mtl-ft": "all", "mtl-theta-only": "head"}
            records.append(result_record(
                name, res, config=info["config"], seed=info["seed"], device=device, profile="quick",
                train_seconds=info["train_seconds"],
                extra={"trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
                       "meta_trained": trainable.get(name, "reference"), "protocol_label": label,
                       **({} if name.startswith("mtl") else {"variant": "reference run in the MTL ablation"})}))
            print(f"{name:15s} {res}")
    out = _load(out_path)
    out["records"] = records
    atomic_write_json(out, out_path)
    print(f"wrote {out_path}")


class CurveProbe(Hook):
    """Measures 5-way 1-shot test accuracy whenever the tasks seen pass the next of ``at``."""

    def __init__(self, name, measure, tasks, at=CURVE_AT):
        self.name, self.measure, self.tasks, self.points, self.at = name, measure, tasks, [], at

    def after_step(self, model, step, stats):
        tasks = self.tasks(model, step)
        if len(self.points) < len(self.at) and tasks >= self.at[len(self.points)]:
            self.points.append({"tasks": tasks, "accuracy": self.measure(model)})
            print(f"{self.name}: {tasks} tasks, {self.points[-1]['accuracy']:.1f}%", flush=True)
            model.train()


def curve(device, eval_episodes: int = 100, seed: int = 0, *, data=None, at=CURVE_AT, out_path: Path = OUT):
    """MTL with and without hard tasks, and MAML, against meta-training tasks seen; written to ``out_path``."""
    data = load_omniglot(device=device) if data is None else data
    state = load_method(checkpoint_path("mtl-theta-only"), "cpu", expect="mtl-theta-only")[0].backbone.state_dict()
    curves, max_tasks = {}, at[-1]

    def measure(model):
        return evaluate(model, data.test, 5, 1, 5, eval_episodes, seed=0, device=device).accuracy

    for name in ("mtl", "mtl-no-ht"):  # 5-way tasks from any alphabets, at the quick recipe's rate and batches
        r = PHASE2["quick"].replace(n_way=5, within_alphabet=False, steps=max_tasks // 2, val_every=0, seed=seed,
                                    val_n_way=5, val_within_alphabet=False)  # no validation here: the probe measures
        run = meta_transfer(name, r, data, device, state)
        probe = CurveProbe(name, measure, lambda m, step: m.tasks_seen, at)
        probe.points.append({"tasks": 0, "accuracy": measure(run.method)})
        start = time.perf_counter()
        fit(run.trained, run.batches, r, optimizer=run.optimizer, hook=Hooks(run.hook, probe), streams=run.streams,
            progress=False)
        curves[name] = {"points": probe.points, "seconds": time.perf_counter() - start,
                        "tasks_seen": run.method.tasks_seen}
    q = FOMAML.RECIPES["quick"]  # MAML's 5-minute network (32 filters, zero head), second order, constant rate
    r = Recipe(n_way=5, n_shot=q.n_shot, n_query=q.n_query, meta_batch=q.meta_batch, lr=q.lr,
               steps=max_tasks // q.meta_batch, val_every=0, model=q.model, seed=seed)
    run = episodic("maml", r, data, device)
    probe = CurveProbe("maml", measure, lambda m, step: step * r.meta_batch, at)
    probe.points.append({"tasks": 0, "accuracy": measure(run.method)})
    start = time.perf_counter()
    fit(run.trained, run.batches, r, optimizer=run.optimizer, hook=probe, streams=run.streams, progress=False)
    points = probe.points
    ckpt = checkpoint_info("maml")
    done = ckpt["metrics"]["steps"] * ckpt["recipe"]["meta_batch"]
    points.append({"tasks": done, "accuracy": measure(pretrained("maml", device=device)),
                   "note": f"the committed maml-quick checkpoint ({ckpt['config']['hidden']} filters, "
                           f"{ckpt['recipe']['n_way']}-way tasks, {ckpt['recipe']['schedule']} schedule)"})
    curves["maml"] = {"points": points, "seconds": time.perf_counter() - start}
    out = _load(out_path)
    out["learning_curve"] = {"protocol": {"n_way": 5, "n_shot": 1, "n_query": 5, "episodes": eval_episodes,
                                          "split": "test", "episode_seed": 0,
                                          "checkpoint": "each point's weights as they stand (no selection)",
                                          "batch_norm": {name: get_method(name).test_batch_norm
                                                         for name in ("mtl", "mtl-no-ht", "maml")}},
                             "training": "5-way 1-shot tasks, 3 queries per class; MTL: 2 tasks per step "
                                         "(+2 hard tasks per hard batch), Adam 2e-3, from the phase-1 "
                                         f"backbone; MAML: the quick recipe's network ({r.model['hidden']} filters, "
                                         f"{r.meta_batch} tasks per step, 5-way), constant lr",
                             "curves": curves}
    atomic_write_json(out, out_path)
    print(f"wrote {out_path}")


def main(argv=None):
    from fslcourse.cli import whole
    from fslcourse.io import check_writable
    from fslcourse.report import results_dir
    from fslcourse.results import check_same_episodes

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train", action="store_true")
    p.add_argument("--ablation", action="store_true")
    p.add_argument("--curve", action="store_true")
    p.add_argument("--episodes", type=whole(2), default=600, help="test episodes per ablation cell")
    p.add_argument("--device", default=None)
    p.add_argument("--results", default=None, help="results folder (default: FSLCOURSE_RESULTS or results/)")
    p.add_argument("--overwrite", action="store_true",
                   help="let --ablation replace a table measured on other episodes (default: refused)")
    args = p.parse_args(argv)
    if not (args.train or args.ablation or args.curve):
        p.error("say what to do: --train, --ablation and/or --curve")
    out_path = results_dir(args.results) / OUT.name
    try:  # before any work: a results file that cannot be written, or a table on other episodes
        if args.ablation or args.curve:
            check_writable(out_path, "the results file")
        if args.ablation:
            check_same_episodes(out_path, args.episodes, 0, overwrite=args.overwrite)
        # the checkpoints each part reads: missing, it stopped with a traceback minutes into the work
        needed = (ROWS if args.ablation else ()) + (("mtl-theta-only", "maml") if args.curve else ())
        for name in dict.fromkeys(needed):
            if not checkpoint_path(name, "quick").exists() and not (args.train and name.startswith("mtl")):
                raise ValueError(f"{checkpoint_path(name, 'quick').name} is not there; train it first with python -m "
                                 f"fslcourse train {name} --recipe quick (the mtl rows: this script's --train)")
    except ValueError as err:
        p.error(str(err))
    torch.set_num_threads(1)
    with one_line_errors():
        device = get_device(args.device)
        if find_omniglot() is None:  # missing: fetched (or FSLCOURSE_DATA's wrong path said) before any work, once
            load_omniglot(device="cpu", progress=False)
    if args.train:
        train(device)
    if args.ablation:
        ablation(device, args.episodes, out_path)
    if args.curve:
        curve(device, out_path=out_path)


if __name__ == "__main__":
    main()
