"""Do the generators draw the right character? Recognisability, classifier score, Fréchet distance and speed.

Writes ``results/generator_quality.json``, read by notebooks 07–09.

Usage (from the repository root, FSLCOURSE_DATA set; one CPU thread, nothing else running for the timings):

    OMP_NUM_THREADS=1 FSLCOURSE_DEVICE=cpu python benchmarks/generator_quality.py --overwrite   # replaces the committed record

Every generator with a committed checkpoint (the script never trains), and the untrained controls (``CONTROLS``),
measured in one run on the meta-test characters, in the committed ProtoNet backbone's space:

* **recognisability**: % of samples (5 per class, generated from the support set) whose nearest real
  support prototype is their own class, in 30 seeded 5-way episodes, 1-shot and 5-shot, beside real
  query drawings; with the classifier score (the Inception Score's idea with ProtoNet's posterior);
* **Fréchet distance** per class (10 characters, 5 support drawings, 15 samples, against the other 15
  real drawings), beside real-vs-real and real-vs-another-character references, and diversity;
* **samples per second** for one 5-way support set, 5 per class (best of two; DDPM once).

The diffusion model's guidance scale and number of DDIM steps are chosen on the meta-*validation*
characters (best recognisability over w in {2, 4, 6} and 10 or 50 steps), then measured on the test
characters; the course's default (DDIM 10, w = 2) and DDPM are measured too.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from fslcourse.cli import one_line_errors, whole
from fslcourse.config import get_device
from fslcourse.data import EpisodeSampler, load_omniglot
from fslcourse.generative.classical import CONTROLS
from fslcourse.generative.diffusion import DiffusionGenerator
from fslcourse.generative.metrics import frechet_distance, mean_pairwise_distance, nearest_prototype_accuracy
from fslcourse.io import atomic_write_json, check_record_target
from fslcourse.pretrained import CHECKPOINT_DIR, pretrained
from fslcourse.results import device_info, versions
from fslcourse.training import load_or_train
from fslcourse.training.generators import CHECKPOINT_FAMILY, committed_only, get_generator

LEARNED = ("vae", "vae-prior", "deformation-vae", "gan", "deformation-gan")
GRID = [(w, n) for n in (10, 50) for w in (2.0, 4.0, 6.0)]


def seconds_per_sample(gen, episode, m: int = 5, repeats: int = 2) -> float:
    best = float("inf")
    for r in range(repeats):
        start = time.perf_counter()
        x, _ = gen.generate(episode.support_x, episode.support_y, m, r)
        best = min(best, (time.perf_counter() - start) / len(x))
    return best


@torch.no_grad()
def frechet(gen, backbone, split, n_cls: int = 10, seed: int = 0) -> dict:
    """Mean per-class Fréchet distance and diversity of 15 samples from 5 support drawings, against 15 real ones."""
    classes = torch.randperm(split.n_classes, generator=torch.Generator().manual_seed(seed))[:n_cls]
    real = split.get(classes, torch.arange(20)[None].expand(n_cls, -1))  # (n_cls, 20, 1, 28, 28)
    d, div = [], []
    for i in range(n_cls):
        f_real = backbone(real[i, 5:])  # (15, D)
        x = real[(i + 1) % n_cls] if gen == "other" else real[i, :5] if gen == "real" else \
            gen.generate(real[i, :5], torch.zeros(5, dtype=torch.long), 15, seed * 1_000_003 + i)[0]
        f = backbone(x)
        d.append(frechet_distance(f_real, f))
        div.append(mean_pairwise_distance(f))
    return {"frechet": sum(d) / n_cls, "diversity": sum(div) / n_cls, "classes": n_cls}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "results" / "generator_quality.json"))
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out (the committed record by default)")
    p.add_argument("--episodes", type=whole(2), default=30)
    p.add_argument("--device", default=None)
    args = p.parse_args(argv)
    try:  # before the work, not after it
        check_record_target(args.out, args.overwrite)
    except ValueError as err:
        p.error(str(err))
    torch.set_num_threads(1)
    with one_line_errors():  # a bad --device or FSLCOURSE_DEVICE, data not found: one line
        device = get_device(args.device)
        data = load_omniglot(device=device, progress=False)
    backbone = pretrained("protonet", device=device).backbone.eval()
    shown = {"copy-noise": "copy + noise"}  # the rows' names in the committed record
    gens = {f"{shown.get(name, name)} (untrained control)": control() for name, control in CONTROLS.items()}
    with committed_only():  # the script never trains: a part missing from a committed file is an error
        for name in LEARNED:
            if (CHECKPOINT_DIR / f"{CHECKPOINT_FAMILY[name]}-quick.pt").exists():
                gens[name] = get_generator(name)(data, backbone=backbone, profile="quick", device=device, progress=False)
        if (CHECKPOINT_DIR / "gan-paper.pt").exists():  # the DAGAN paper's networks and schedule (a GPU run)
            gens["gan, paper recipe"] = get_generator("gan")(data, profile="paper", device=device, progress=False)
        d = load_or_train("diffusion", "quick", data=data, backbone=backbone, device=device, progress=False) \
            if (CHECKPOINT_DIR / "diffusion-quick.pt").exists() else None
    chosen = None
    record = {"name": "generator_quality", "device": device_info(device), "versions": versions(),
              "threads": torch.get_num_threads(), "episodes": args.episodes, "rows": [], "selection": []}
    if d is not None:
        def diffusion(w, n, sampler="ddim"):
            return DiffusionGenerator(d["model"], d["schedule"], backbone, sampler=sampler, n_steps=n, guidance=w,
                                      source=d["source"])
        for w, n in GRID:  # chosen on meta-validation characters
            r = nearest_prototype_accuracy(diffusion(w, n), backbone, data.val, 5, 1, 5, args.episodes, seed=0)
            record["selection"].append({"guidance": w, "ddim_steps": n, "val_recognisability": r["generated"],
                                        "val_ci95": r["generated_ci95"]})
            print(f"  val: diffusion DDIM {n} w={w:g}: {r['generated']:.1f}", flush=True)
        best = max(record["selection"], key=lambda s: s["val_recognisability"])
        chosen = (best["guidance"], best["ddim_steps"])
        gens["diffusion DDIM 10, w=2 (default)"] = diffusion(2.0, 10)
        gens[f"diffusion DDIM {chosen[1]}, w={chosen[0]:g} (chosen on validation)"] = diffusion(*chosen)
        ddpm = diffusion(chosen[0], d["schedule"].T, "ddpm")
    ep = EpisodeSampler(data.test, 5, 1, 1, seed=0).sample()
    for ref in ("real", "other"):
        record[f"frechet_{ref}"] = frechet(ref, backbone, data.test)
    for name, gen in gens.items():
        row = {"generator": name, "space": gen.space, "source": getattr(gen, "source", None)}
        for shot in (1, 5):
            r = nearest_prototype_accuracy(gen, backbone, data.test, 5, shot, 5, args.episodes, seed=0)
            row[f"{shot}shot"] = r
        row.update(frechet(gen, backbone, data.test))
        row["samples_per_second"] = 1 / seconds_per_sample(gen, ep)
        print(f"{name:48s} recognised {row['1shot']['generated']:5.1f} ± {row['1shot']['generated_ci95']:.1f} (1-shot) "
              f"{row['5shot']['generated']:5.1f} (5-shot)  score {row['1shot']['score']:.2f}  Fréchet "
              f"{row['frechet']:6.1f}  {row['samples_per_second']:8.1f} samples/s", flush=True)
        record["rows"].append(row)
    if d is not None:
        record["ddpm_samples_per_second"] = 1 / seconds_per_sample(ddpm, ep, repeats=1)
        record["diffusion_chosen"] = {"guidance": chosen[0], "ddim_steps": chosen[1]}
    print(f"real vs real Fréchet {record['frechet_real']['frechet']:.1f}, real vs another character "
          f"{record['frechet_other']['frechet']:.1f}")
    atomic_write_json(record, args.out)
    print("wrote", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
