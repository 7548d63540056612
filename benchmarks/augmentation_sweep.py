"""Why plain augmentation hurts ProtoNet, measured: the λ sweep, rejection and the untrained controls.

Writes ``results/07_augmentation_sweep.json`` (standard result records) that notebook 07 reads.

Usage (from the repository root, FSLCOURSE_DATA set; one CPU thread):

    OMP_NUM_THREADS=1 FSLCOURSE_DEVICE=cpu python benchmarks/augmentation_sweep.py
    OMP_NUM_THREADS=1 FSLCOURSE_DEVICE=cpu python benchmarks/augmentation_sweep.py --generators vae,deformation

For each generator and protocol, the committed quick ProtoNet classifies the same seeded
meta-test episodes (5 queries per class, episode seed 0) without augmentation and with
``--n-generated`` generated examples per class, weighted by λ in the prototype
(:mod:`fslcourse.generative.weighted_prototypes`), with and without rejection. Every row is
a record with its paired difference against no augmentation (95% CI). Each episode's samples are
generated once and shared by every (λ, rejection) row, so the rows differ only in how the
samples are used. Protocols: 5-way 1-shot, and within-alphabet 20-way 1-shot (more headroom).
Generators: the committed VAE (pixel, prototype mode), deformation VAE, DAGAN, deforming DAGAN, diffusion model (DDIM 10, w=2) and
feature hallucinator, and the untrained controls of ``CONTROLS``: ``deformation`` (affine + elastic) and
``copy-noise``. The script never trains: a generator without its committed checkpoint is skipped.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from fslcourse.cli import one_line_errors, whole
from fslcourse.config import get_device
from fslcourse.data import load_omniglot
from fslcourse.evaluate import evaluate
from fslcourse.generative.augment import paired_difference
from fslcourse.generative.classical import CONTROLS
from fslcourse.generative.weighted_prototypes import WeightedAugmentation
from fslcourse.io import check_writable
from fslcourse.pretrained import CHECKPOINT_DIR, checkpoint_info, pretrained
from fslcourse.report import protocol_key, results_dir
from fslcourse.results import check_same_episodes, result_record, save_results

NAME = "07_augmentation_sweep"
PROTOCOLS = {"5w1s": dict(n_way=5, n_shot=1), "20w1s-alphabet": dict(n_way=20, n_shot=1, within_alphabet=True)}
WEIGHTS = (0.1, 0.25, 0.5, 1.0)
LEARNED = ("vae", "deformation-vae", "gan", "deformation-gan", "diffusion", "hallucinator")


class Cached:
    """A support generator whose samples are computed once per (seed, m) and then reused."""

    def __init__(self, generator):
        self.generator, self.space, self.cache = generator, generator.space, {}
        self.source = getattr(generator, "source", None)

    def generate(self, support, support_y, n_per_class, seed):
        key = (seed, n_per_class)
        if key not in self.cache:
            self.cache[key] = self.generator.generate(support, support_y, n_per_class, seed)
        return self.cache[key]


def key_of(record) -> tuple:
    """A row's identity: method (with generator), variant and protocol."""
    return record["method"], record.get("variant"), protocol_key(record["protocol"])


def build(name, data, backbone, device):
    """The generator named ``name``, or a string saying why it is not available."""
    if name in CONTROLS:
        return CONTROLS[name]()
    from fslcourse.training.generators import CHECKPOINT_FAMILY, committed_only, get_generator

    stem = CHECKPOINT_FAMILY[name]
    if not (CHECKPOINT_DIR / f"{stem}-quick.pt").exists():
        return f"no committed {stem}-quick.pt (this script never trains)"
    with committed_only():  # a part missing from the file (a feature entry for this backbone) is an error, not trained
        return get_generator(name)(data, backbone=backbone, profile="quick", device=device, seed=0, progress=False)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--generators", default=",".join(LEARNED + tuple(CONTROLS)))
    p.add_argument("--protocols", default=",".join(PROTOCOLS))
    p.add_argument("--n-generated", type=whole(1), default=5)
    p.add_argument("--episodes", type=whole(2), default=200)
    p.add_argument("--n-query", type=whole(1), default=5)
    p.add_argument("--device", default=None)
    p.add_argument("--results", default=None, help="results folder (default: FSLCOURSE_RESULTS or results/)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a results file measured on other episodes or settings (default: refused)")
    args = p.parse_args(argv)
    names, protos = args.generators.split(","), args.protocols.split(",")
    bad = [n for n in names if n not in LEARNED + tuple(CONTROLS)] + [q for q in protos if q not in PROTOCOLS]
    if bad:
        p.error(f"{', '.join(bad)} is not known; generators: {', '.join(LEARNED + tuple(CONTROLS))}; "
                f"protocols: {', '.join(PROTOCOLS)}")
    path = results_dir(args.results) / f"{NAME}.json"
    try:  # before any work: the rows a partial run replaces must share the others' episodes, queries and m
        check_writable(path, "the results file")
        check_same_episodes(path, args.episodes, 0, overwrite=args.overwrite)
        held = {(r["protocol"]["n_query"], r.get("n_generated")) for r in json.loads(path.read_text())["records"]
                if r.get("n_generated") is not None} if path.exists() and not args.overwrite else set()
        if held and held != {(args.n_query, args.n_generated)}:
            raise ValueError(f"{path} holds rows with (queries per class, generated per class) "
                             f"{', '.join(map(str, sorted(held)))}; this run measures {(args.n_query, args.n_generated)}"
                             ": write to another folder with --results DIR, or replace the file with --overwrite")
    except ValueError as err:
        p.error(str(err))
    torch.set_num_threads(1)
    with one_line_errors():  # a bad --device or FSLCOURSE_DEVICE, data not found: one line
        device = get_device(args.device)
        data = load_omniglot(device=device, progress=False)
    protonet = pretrained("protonet", device=device)
    info = checkpoint_info("protonet")
    common = dict(config=info["config"], seed=info.get("seed"), device=device, profile="quick",
                  train_seconds=info.get("train_seconds"))
    m, start, records = args.n_generated, time.perf_counter(), []
    for key in protos:
        proto = PROTOCOLS[key]
        ev = dict(n_query=args.n_query, n_episodes=args.episodes, seed=0,
                  within_alphabet=proto.get("within_alphabet", False), device=device)
        base = evaluate(protonet, data.test, proto["n_way"], proto["n_shot"], **ev)
        print(f"protonet {key}: {base}", flush=True)
        records.append(result_record("protonet", base, **common, extra={"variant": "augmentation sweep baseline"}))
        for name in names:
            gen = build(name, data, protonet.backbone, device)
            if isinstance(gen, str):
                print(f"  {name}: skipped ({gen})", flush=True)
                continue
            gen = Cached(gen)
            for reject in (False, True):
                for weight in WEIGHTS:
                    wrapped = WeightedAugmentation(protonet, gen, m, weight=weight, reject=reject)
                    res = evaluate(wrapped, data.test, proto["n_way"], proto["n_shot"], **ev)
                    diff, ci = paired_difference(base.episode_accuracies, res.episode_accuracies)
                    kept = 100 * sum(wrapped.kept) / len(wrapped.kept)
                    variant = f"weight={weight:g}" + (", rejection" if reject else "")
                    print(f"  {name:12s} {variant:22s} {res.accuracy:5.1f}  paired {diff:+5.1f} ± {ci:.1f}  "
                          f"kept {kept:5.1f}%", flush=True)
                    records.append(result_record(f"protonet+{name}", res, **common, extra={
                        "variant": variant, "n_generated": m, "weight": weight, "reject": reject,
                        "kept_percent": kept, "baseline_accuracy": base.accuracy, "paired_difference": diff,
                        "paired_ci95": ci, "augment": {"generator": name, "space": gen.space, "generation_seed": 0}}))
    old = json.loads(path.read_text())["records"] if path.exists() and not args.overwrite else []
    fresh = {key_of(r) for r in records}
    merged = [r for r in old if key_of(r) not in fresh] + records  # a partial run replaces only its own rows
    save_results(NAME, merged, directory=results_dir(args.results))
    print(f"wrote {len(records)} records ({len(merged)} in all) to {path} in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
