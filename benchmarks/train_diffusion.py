"""Train the conditional diffusion model of notebook 08 with the committed recipe and save its checkpoint.

Usage (from the repository root; FSLCOURSE_DATA must point at the data):

    OMP_NUM_THREADS=1 python benchmarks/train_diffusion.py [--profile quick] [--seed 0] [--steps N] [--out PATH]

Trains on meta-train characters only (``data.train``), conditioned on prototypes of the committed
ProtoNet backbone, for the recipe's step budget (``RECIPES`` in
``fslcourse/generative/diffusion_generator.py``). The checkpoint records the config, seed,
training seconds, steps, the classes it saw, the backbone fingerprint and the held-out (meta-val)
denoising loss against predicting zero noise, which ``tests/generative/test_diffusion.py`` re-checks.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

import fslcourse
from fslcourse.data import load_omniglot
from fslcourse.generative.diffusion_generator import CHECKPOINT, load_or_train_diffusion


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=None, help="Adam steps (default: the recipe's)")
    ap.add_argument("--out", default=None, help="checkpoint path (default fslcourse/checkpoints/diffusion-PROFILE.pt)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a busy shared CPU)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    course = fslcourse.setup(seed=args.seed, profile=args.profile)
    out = Path(args.out or str(CHECKPOINT).format(profile=args.profile))
    if out.exists():
        raise SystemExit(f"{out} exists; delete it (or pass --out elsewhere) to retrain")
    data = load_omniglot(device=course.device, progress=False)
    encoder = fslcourse.pretrained("protonet", profile=args.profile, device=course.device).backbone
    res = load_or_train_diffusion(data, encoder, args.profile, args.seed, course.device, progress=True, path=out,
                                  recipe={"steps": args.steps} if args.steps else None)
    ckpt = res["checkpoint"]
    print(f"saved {out}: {ckpt['history']['steps']} steps in {ckpt['train_seconds']:.0f} s; "
          f"meta-val loss {ckpt['metrics']['loss']:.4f} vs zero-noise {ckpt['metrics']['zero_noise']:.4f}")


if __name__ == "__main__":
    main()
