"""Train the MTL rows, then measure notebook 05's ablation table and learning curves into results JSON.

    OMP_NUM_THREADS=1 FSLCOURSE_DEVICE=cpu python benchmarks/mtl_ablation.py --train      # the four checkpoints
    OMP_NUM_THREADS=1 FSLCOURSE_DEVICE=cpu python benchmarks/mtl_ablation.py --ablation   # the table
    OMP_NUM_THREADS=1 FSLCOURSE_DEVICE=cpu python benchmarks/mtl_ablation.py --curve      # the learning curves

``--train`` trains what is missing (``mtl-theta-only`` is phase 1; the other rows start
from its backbone) with :func:`fslcourse.train.train_checkpoint`, the same path as
``python -m fslcourse train NAME``. ``--ablation`` evaluates every row, with ProtoNet and
MAML as references, on the same fixed test episodes (seed 0) of 5-way 1-shot and of
within-alphabet 20-way 1-shot (Lake et al.), each cell as ``python -m fslcourse evaluate
NAME [--n-way 20 --within-alphabet] --n-query 5 --episodes N`` computes it. ``--curve``
meta-trains MTL with HT, MTL without HT (both from the phase-1 backbone) and MAML (from
scratch, the quick recipe's network and optimiser, constant learning rate) on 5-way
1-shot tasks and measures 5-way 1-shot test accuracy against the number of
meta-training tasks seen. Everything goes to ``results/05_mtl_ablation.json``.
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

from fslcourse.config import get_device, seed_everything  # noqa: E402
from fslcourse.data import EpisodeSampler, load_omniglot  # noqa: E402
from fslcourse.evaluate import evaluate  # noqa: E402
from fslcourse.io import atomic_write_json  # noqa: E402
from fslcourse.methods import get_method  # noqa: E402
from fslcourse.methods.maml_recipe import recipe as maml_recipe  # noqa: E402
from fslcourse.methods.mtl_recipe import PHASE1, meta_transfer, phase1_backbone  # noqa: E402
from fslcourse.pretrained import checkpoint_info, checkpoint_path, pretrained  # noqa: E402
from fslcourse.results import result_record  # noqa: E402

OUT = ROOT / "results" / "05_mtl_ablation.json"
ROWS = ("mtl-theta-only", "mtl-ft", "mtl-no-ht", "mtl", "protonet", "maml")
PROTOCOLS = {"5-way 1-shot": dict(n_way=5, within_alphabet=False),
             "within-alphabet 20-way 1-shot": dict(n_way=20, within_alphabet=True)}
CURVE_AT = (0, 50, 100, 200, 400, 800, 1600)


def _load() -> dict:
    return json.loads(OUT.read_text()) if OUT.exists() else {"name": OUT.stem, "records": []}


def train(device):
    from fslcourse.train import train_checkpoint
    data = load_omniglot(device=device)
    for name in ("mtl-theta-only", "mtl", "mtl-no-ht", "mtl-ft"):
        if checkpoint_path(name).exists():
            print(f"{name}: {checkpoint_path(name).name} exists, kept")
            continue
        seed_everything(0)
        _, fit = train_checkpoint(name, data, profile="quick", seed=0, device=device, progress=True)
        info = checkpoint_info(name)
        print(json.dumps({"method": name, "train_seconds": round(fit.seconds, 1), "steps": fit.steps,
                          "val_accuracy": fit.best_val_accuracy,
                          "test_5way1shot": round(info["metrics"]["test_accuracy"], 2),
                          "recipe": info["extra"]["recipe"]}, default=str))


def ablation(device, episodes: int):
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
                       "episode_accuracies": res.episode_accuracies,
                       **({} if name.startswith("mtl") else {"variant": "reference run in the MTL ablation"})}))
            print(f"{name:15s} {res}")
    out = _load()
    out["records"] = records
    atomic_write_json(out, OUT)
    print(f"wrote {OUT}")


def curve(device, eval_episodes: int = 100, seed: int = 0):
    data = load_omniglot(device=device)
    state, _ = phase1_backbone(data, "quick", seed, device, progress=False)
    curves, max_tasks = {}, CURVE_AT[-1]

    def measure(model):
        return evaluate(model, data.test, 5, 1, 5, eval_episodes, seed=0, device=device).accuracy

    for name in ("mtl", "mtl-no-ht"):
        seed_everything(seed)
        model = get_method(name)(widths=PHASE1["quick"]["widths"])
        model.load_backbone(state)
        points, start = [], time.perf_counter()

        def on_step(m, tasks, points=points):
            if len(points) < len(CURVE_AT) and tasks >= CURVE_AT[len(points)]:
                points.append({"tasks": tasks, "accuracy": measure(m)})
                print(f"{name}: {tasks} tasks, {points[-1]['accuracy']:.1f}%", flush=True)
        meta_transfer(model, data.train, None, n_way=5, n_shot=1, n_query=3, within_alphabet=False, meta_batch=2,
                      hard_tasks=2, steps=max_tasks // 2, lr=2e-3, seed=seed, device=device, progress=False,
                      on_step=on_step)
        curves[name] = {"points": points, "seconds": time.perf_counter() - start, "tasks_seen": model.tasks_seen}
    r = maml_recipe("maml", "quick")
    seed_everything(seed)
    maml = get_method("maml")(**r["model"]).to(device)
    optimizer = torch.optim.Adam(maml.parameters(), lr=r["lr"])
    sampler = EpisodeSampler(data.train, 5, r["n_shot"], r["n_query"], seed=seed)
    points, tasks, start = [], 0, time.perf_counter()
    while True:
        if len(points) < len(CURVE_AT) and tasks >= CURVE_AT[len(points)]:
            points.append({"tasks": tasks, "accuracy": measure(maml)})
            print(f"maml: {tasks} tasks, {points[-1]['accuracy']:.1f}%", flush=True)
            maml.train()
        if tasks >= max_tasks:
            break
        maml.train_step(sampler.sample_batch(r["meta_batch"]), optimizer)
        tasks += r["meta_batch"]
    ckpt = checkpoint_info("maml")
    done = ckpt["metrics"]["steps"] * r["meta_batch"]
    points.append({"tasks": done, "accuracy": measure(pretrained("maml", device=device)),
                   "note": f"the committed maml-quick checkpoint ({ckpt['config']['hidden']} filters, "
                           f"{ckpt['extra']['recipe'].get('n_way', 5)}-way tasks, cosine schedule)"})
    curves["maml"] = {"points": points, "seconds": time.perf_counter() - start}
    out = _load()
    out["learning_curve"] = {"protocol": {"n_way": 5, "n_shot": 1, "n_query": 5, "episodes": eval_episodes,
                                          "split": "test", "episode_seed": 0},
                             "training": "5-way 1-shot tasks, 3 queries per class; MTL: 2 tasks per step "
                                         "(+2 hard tasks per hard batch), Adam 2e-3, from the phase-1 "
                                         f"backbone; MAML: the quick recipe's network ({r['model']['hidden']} filters, "
                                         f"{r['meta_batch']} tasks per step, 5-way), constant lr",
                             "curves": curves}
    atomic_write_json(out, OUT)
    print(f"wrote {OUT}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train", action="store_true")
    p.add_argument("--ablation", action="store_true")
    p.add_argument("--curve", action="store_true")
    p.add_argument("--episodes", type=int, default=600, help="test episodes per ablation cell")
    p.add_argument("--device", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    device = get_device(args.device)
    if args.train:
        train(device)
    if args.ablation:
        ablation(device, args.episodes)
    if args.curve:
        curve(device)


if __name__ == "__main__":
    main()
