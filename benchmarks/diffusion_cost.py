"""Notebook 09's offline measurements: sampling cost, sample quality, recognisability and the augmentation table.

Usage (from the repository root; FSLCOURSE_DATA must point at the data; one thread on the shared CPU):

    OMP_NUM_THREADS=1 FSLCOURSE_DEVICE=cpu python benchmarks/diffusion_cost.py [--out PATH.json] [--overwrite]

Measures, on this machine and in one run (so the ratios are comparable):

* **cost**: samples per second of DDPM (all T steps) and DDIM (50, 20, 10 steps), guidance w = 2
  (two network calls per step), against the pixel VAE and the GAN (if its checkpoint exists);
* **quality** at each setting: Fréchet distance to 15 held-out real drawings and diversity, in the
  ProtoNet backbone's space, over 10 meta-test characters with K = 5 support drawings (the protocol
  of notebook 07), with the real-vs-real and different-class references;
* **recognisability**: nearest-real-prototype accuracy of generated samples in 30 seeded 5-way episodes,
  for several guidance scales, next to chance and to real query drawings;
* **augmentation**: ProtoNet with and without m generated examples per class on the same 80 seeded
  5-way episodes as notebook 07 (paired differences with 95% CIs, 1-shot and 5-shot).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import fslcourse
from fslcourse.data import load_omniglot
from fslcourse.evaluate import evaluate
from fslcourse.generative.augment import evaluate_paired
from fslcourse.generative.diffusion import DiffusionGenerator
from fslcourse.generative.metrics import frechet_distance, mean_pairwise_distance, nearest_prototype_accuracy
from fslcourse.io import atomic_write_json
from fslcourse.results import device_info, versions
from fslcourse.training import load_or_train
from fslcourse.training.generators import committed_only, get_generator

SETTINGS = [("ddpm", 200), ("ddim", 50), ("ddim", 20), ("ddim", 10)]  # (sampler, steps); DDPM uses all T


def other_generators(data, backbone, seed):
    """The VAE (prototype mode) and, if it can be built, the GAN: ``{name: generator or reason}``."""
    from fslcourse.pretrained import CHECKPOINT_DIR

    out = {}
    for name in ("vae", "gan"):
        if not (CHECKPOINT_DIR / f"{name}-quick.pt").exists():  # never train a generator inside the benchmark
            out[name] = f"not available: no {name}-quick.pt checkpoint"
            continue
        try:
            with committed_only():
                out[name] = get_generator(name)(data, backbone=backbone, profile="quick", seed=seed, progress=False)
        except (ValueError, FileNotFoundError, ImportError, KeyError) as err:
            out[name] = f"not available: {err}"
    return out


def time_generation(gen, support, support_y, m, repeats=2):
    """Seconds per generated sample (best of ``repeats``) for one 5-way support set, m per class."""
    best = float("inf")
    for r in range(repeats):
        start = time.perf_counter()
        x, _ = gen.generate(support, support_y, m, r)
        best = min(best, (time.perf_counter() - start) / len(x))
    return best


@torch.no_grad()
def quality(gens: dict, backbone, split, n_cls=10, seed=0) -> dict:
    """Mean Fréchet distance and diversity per generator over ``n_cls`` meta-test classes (K = 5, 15 generated)."""
    g = torch.Generator().manual_seed(seed)
    classes = torch.randperm(split.n_classes, generator=g)[:n_cls]
    real = split.get(classes, torch.arange(20)[None].expand(n_cls, -1))  # (n_cls, 20, 1, 28, 28)
    rows = {"real vs other real drawings (same class)": [], "real vs a different class": []}
    div = {"real": []}
    for i in range(n_cls):
        f_real = backbone(real[i])  # (20, D)
        rows["real vs other real drawings (same class)"].append(frechet_distance(f_real[5:], f_real[:5]))
        rows["real vs a different class"].append(frechet_distance(f_real[5:], backbone(real[(i + 1) % n_cls])))
        div["real"].append(mean_pairwise_distance(f_real[5:]))
        for name, gen in gens.items():
            x, _ = gen.generate(real[i, :5], torch.zeros(5, dtype=torch.long), 15, seed * 1_000_003 + i)
            f_gen = backbone(x)  # (15, D)
            rows.setdefault(name, []).append(frechet_distance(f_real[5:], f_gen))
            div.setdefault(name, []).append(mean_pairwise_distance(f_gen))
    return {"frechet": {k: sum(v) / len(v) for k, v in rows.items()},
            "diversity": {k: sum(v) / len(v) for k, v in div.items()}, "n_classes": n_cls}


def main(argv=None):
    from fslcourse.cli import SEED_MAX, whole
    from fslcourse.io import check_record_target

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "results" / "09_diffusion_benchmark.json"))
    ap.add_argument("--overwrite", action="store_true", help="replace an existing --out (the committed record by default)")
    ap.add_argument("--seed", type=whole(0, SEED_MAX), default=0)
    ap.add_argument("--episodes", type=whole(2), default=80, help="augmentation episodes (80: notebook 07's quick protocol)")
    ap.add_argument("--guidance", type=float, default=2.0)
    args = ap.parse_args(argv)
    try:  # before the hour of sampling, not after it
        check_record_target(args.out, args.overwrite)
    except ValueError as err:
        ap.error(str(err))
    torch.set_num_threads(1)
    course = fslcourse.setup(seed=args.seed, profile="quick")
    data = load_omniglot(device=course.device, progress=False)
    protonet = fslcourse.pretrained("protonet", device=course.device)
    backbone = protonet.backbone.eval()
    with committed_only():  # measures the committed model; a missing one is named with its train command
        d = load_or_train("diffusion", "quick", data=data, backbone=backbone, device=course.device, progress=False)
    ckpt = d["checkpoint"]
    diff = {f"diffusion {s.upper()} {n}": DiffusionGenerator(d["model"], d["schedule"], backbone, sampler=s,
                                                              n_steps=n, guidance=args.guidance, source=d["source"])
            for s, n in SETTINGS}
    others = other_generators(data, backbone, args.seed)
    usable = {k: v for k, v in others.items() if not isinstance(v, str)}
    record = {"name": "09_diffusion_benchmark", "device": device_info(course.device), "versions": versions(),
              "threads": torch.get_num_threads(), "guidance": args.guidance, "seed": args.seed,
              "checkpoint": {"config": ckpt["config"], "T": ckpt["T"], "schedule": ckpt["schedule"],
                             "steps": ckpt["history"]["steps"], "train_seconds": ckpt["train_seconds"],
                             "metrics": ckpt["metrics"]},
              "sources": {"diffusion": d["source"], **{k: getattr(v, "source", None) for k, v in usable.items()}},
              "not_available": {k: v for k, v in others.items() if isinstance(v, str)},
              "note": "one process, one thread, on a 2-core CPU shared with other work: times are noisy, ratios "
                      "between rows of one run are the meaningful figures"}
    print("cost ...", flush=True)
    ep = fslcourse.data.EpisodeSampler(data.test, 5, 1, 1, seed=args.seed).sample()
    cost = []
    for name, gen in {**diff, **usable}.items():
        sec = time_generation(gen, ep.support_x, ep.support_y, 5, repeats=1 if "DDPM" in name else 2)
        calls = (0 if not name.startswith("diffusion") else
                 (ckpt["T"] if "DDPM" in name else gen.n_steps) * (1 if args.guidance in (0, 1) else 2))
        cost.append({"generator": name, "seconds_per_sample": sec, "samples_per_second": 1 / sec,
                     "network_calls_per_sample": calls})
        print(f"  {name:24s} {1 / sec:8.1f} samples/s", flush=True)
    record["cost"] = cost
    print("quality ...", flush=True)
    record["quality"] = quality({**diff, **usable}, backbone, data.test, seed=args.seed)
    print(record["quality"], flush=True)
    print("recognisability ...", flush=True)
    rec = []
    for w, n_shot in ((0.0, 1), (1.0, 1), (2.0, 1), (4.0, 1), (2.0, 5)):
        gen = DiffusionGenerator(d["model"], d["schedule"], backbone, n_steps=10, guidance=w)
        r = nearest_prototype_accuracy(gen, backbone, data.test, 5, n_shot, 5, n_episodes=30, seed=args.seed)
        rec.append({"generator": f"diffusion DDIM 10, w={w:g}", "guidance": w, **r})
        print(f"  w={w:g} {n_shot}-shot: generated {r['generated']:.1f}% real {r['real']:.1f}%", flush=True)
    for name, gen in usable.items():
        for n_shot in (1, 5):
            r = nearest_prototype_accuracy(gen, backbone, data.test, 5, n_shot, 5, n_episodes=30, seed=args.seed)
            rec.append({"generator": name, **r})
    record["recognisability"] = rec
    print("augmentation ...", flush=True)
    gen = diff["diffusion DDIM 10"]
    rows = []
    for n_shot in (1, 5):
        base = evaluate(protonet, data.test, 5, n_shot, course.profile.n_query, args.episodes, seed=0,
                        device=course.device)
        res = evaluate_paired(protonet, gen, data.test, 5, n_shot, (1, 5), course.profile.n_query, args.episodes,
                              seed=0, generation_seed=args.seed, method_name="protonet", generator_name="diffusion",
                              baseline=base, device=course.device)
        rows += [r.as_dict() | {"augmented_eval": r.augmented.as_dict()} for r in res]
        for r in res:
            print(" ", r, flush=True)
    record["augmentation"] = {"generator": "diffusion DDIM 10", "guidance": args.guidance, "rows": rows}
    atomic_write_json(record, args.out)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
