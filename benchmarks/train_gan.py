"""Train the notebook-07 generators with the committed recipe and save ``fslcourse/checkpoints/gan-quick.pt``.

Usage (from the repository root; FSLCOURSE_DATA must point at the data; one thread on a shared CPU):

    OMP_NUM_THREADS=1 python benchmarks/train_gan.py [--profile quick] [--seed 0] [--out PATH]

Trains, with the step budget of ``fslcourse.generative.gan_generator.RECIPES``, the DAGAN twice
(``wgan-gp`` and the ``standard`` non-saturating loss: the mode-collapse comparison, with their
diversity histories on meta-validation characters) and the feature hallucinator for the committed
ProtoNet backbone. Each entry records its config, seed, recipe, training seconds and history; the
pixel generators also record ``metrics`` (:func:`~fslcourse.generative.gan_generator.quality` on
meta-test characters, in the ProtoNet backbone's feature space), which ``tests/generative/test_gan.py``
re-checks. An existing file is replaced (written atomically at the end).
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

import fslcourse
from fslcourse.data import load_omniglot
from fslcourse.generative.gan_generator import CHECKPOINT, load_or_train_gans
from fslcourse.io import atomic_torch_save, load_checkpoint


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="default fslcourse/checkpoints/gan-PROFILE.pt")
    args = parser.parse_args()
    torch.set_num_threads(1)
    course = fslcourse.setup(seed=args.seed, profile=args.profile)
    data = load_omniglot(device=course.device, progress=False)
    protonet = fslcourse.pretrained("protonet", profile=args.profile, device=course.device)
    out = Path(args.out or str(CHECKPOINT).format(profile=args.profile))
    with tempfile.TemporaryDirectory() as tmp:  # train from scratch into a fresh file, then replace atomically
        gans = load_or_train_gans(data, protonet.backbone, args.profile, args.seed, course.device,
                                  progress=True, path=Path(tmp) / "gan.pt")
        atomic_torch_save(load_checkpoint(Path(tmp) / "gan.pt"), out)
    ckpt = gans["checkpoint"]
    for loss, entry in ckpt["pixel"].items():
        print(f"{loss}: {entry['history']['steps']} steps in {entry['train_seconds']:.0f} s; "
              f"meta-test quality {json.dumps(entry['metrics'])}")
    for fp, entry in ckpt["feature"].items():
        h = entry["history"]
        print(f"hallucinator for backbone {fp}: {h['steps']} steps in {entry['train_seconds']:.0f} s; last 100 "
              f"steps: accuracy {sum(h['accuracy'][-100:]) / 100:.1f}% with hallucination, "
              f"{sum(h['accuracy_real'][-100:]) / 100:.1f}% without")
    print(f"saved {out} ({out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
