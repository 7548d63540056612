"""Evaluate every method with a committed checkpoint on the same seeded Omniglot test episodes.

Writes ``results/11_benchmark.json`` (the standard record format of :mod:`fslcourse.results`)
that ``notebooks/11_benchmark.ipynb`` and ``python -m fslcourse report`` read.

Usage (from the repository root, FSLCOURSE_DATA set; one CPU thread is enough):

    OMP_NUM_THREADS=1 python benchmarks/course_benchmark.py                       # everything available
    OMP_NUM_THREADS=1 python benchmarks/course_benchmark.py --methods matching,relation --episodes 200

Protocols: 5-way 1/5-shot, 20-way 1/5-shot and within-alphabet 20-way 1-shot, 5 queries per
class, 200 episodes, episode seed 0 (the quick profile's protocol): every method sees exactly
the same episodes. On the Vinyals split, a method whose published figure depends on the number of queries (its
paper's code normalises each test batch with its own statistics: MAML, first-order MAML, Reptile, the Relation
Network's batch-statistics row) is tested with its paper's queries per class instead
(``fslcourse.report.published_n_query``: as many as shots, or one for Reptile), all rows of its checkpoint alike.
A run with ``--methods`` replaces only those methods' records in the file and keeps the others, so partial runs
merge; a run on other episodes (``--episodes``, ``--seed``) than the file's rows of the same split and profile is
refused before any work, because the table would then compare rows on different episodes (``--results DIR`` writes
elsewhere, ``--overwrite`` replaces). ``--split vinyals`` runs the four protocols without the
within-alphabet task on the Vinyals et al. test characters (the papers' test protocol); its records say
``split_protocol: "vinyals"`` and the report sets the published figures beside them; ``--profile paper`` measures
the paper recipes' checkpoints (trained on the Vinyals split: the like-for-like row, labelled "NAME (paper recipe)");
a method that can classify each query with the support set alone (Reptile) is measured that way too, as
``NAME-inductive`` (the Reptile paper's non-transductive column); a method whose paper's code tests with each
test batch's BatchNorm statistics (``paper_test_batch_norm = "batch"``: the Relation Network's) is measured that
way too, as ``NAME-batch-stats``, on the same episodes (its support set and queries pooled in one batch, where the
Relation Network's code normalises them in two passes; the recipe's note says so).
Methods that cannot run a protocol (MAML's head
is fixed at the ``n_way`` it was trained with; the paper Relation Network sums its support maps, so it runs only
at the ``n_shot`` it was trained with) get a record with ``accuracy: null`` and the
reason in ``skipped``. ``protonet``/``finetune`` are also run with the generators named by
``--augment`` (default ``vae,vae-feature``) whose committed checkpoint exists, with the paired
difference against no augmentation.
Each record holds the trainable parameters, the training seconds (from the checkpoint) and the
test seconds (``eval_seconds``; divide by ``episodes``), measured on a shared machine.
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
import time

import torch

from fslcourse import methods as _methods  # noqa: F401  (registers every method)
from fslcourse.cli import one_line_errors
from fslcourse.config import get_device, seed_everything
from fslcourse.data import load_omniglot
from fslcourse.evaluate import evaluate
from fslcourse.generative.classical import CONTROLS
from fslcourse.methods import METHODS, get_method
from fslcourse.methods.base import fixed_n_way, n_shot_refusal
from fslcourse.methods.transductive import BatchStatistics
from fslcourse.pretrained import CHECKPOINT_DIR, checkpoint_info, checkpoint_path, pretrained
from fslcourse.report import (
    TEST_VARIANTS,
    checkpoint_method,
    method_label,
    protocol_key,
    published_n_query,
    results_dir,
    separate_paper_recipe,
)
from fslcourse.results import result_record, save_results

NAME = "11_benchmark"
PROTOCOLS = [dict(n_way=5, n_shot=1), dict(n_way=5, n_shot=5), dict(n_way=20, n_shot=1), dict(n_way=20, n_shot=5),
             dict(n_way=20, n_shot=1, within_alphabet=True)]
AUGMENTED = ("protonet", "finetune")
SPLIT_PROTOCOL = ["alphabet"]  # which split the run measures (set by --split)
SKIP_METHODS = ("sinusoid",)  # regression on sine waves, not image classification


def available_methods(profile: str = "quick") -> list[str]:
    """Registered image classifiers that need no checkpoint (quick only) or have a committed ``profile`` checkpoint."""
    return [name for name, cls in sorted(METHODS.items())
            if name not in SKIP_METHODS and ((not cls.trainable and profile == "quick")
                                             or (cls.trainable and checkpoint_path(name, profile).exists()))]


def trainable_params(module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def cannot_run(model, protocol: dict) -> str | None:
    """Why ``model`` cannot run ``protocol`` (``None`` if it can)."""
    fixed = fixed_n_way(model)
    if fixed is not None and fixed != protocol["n_way"]:
        return (f"the head has a fixed n_way={fixed} (trained {fixed}-way), so it cannot run "
                f"{protocol['n_way']}-way episodes without retraining")
    return n_shot_refusal(model, protocol["n_shot"])  # the refusal predict would raise


def skipped_record(name, proto, why, n_query, seed, model, info, profile: str = "quick") -> dict:
    """A record for a protocol the method cannot run: no accuracy, the reason in ``skipped``."""
    return {"format": 1, "method": name, "accuracy": None, "ci95": None, "skipped": why,
            "protocol": {"n_query": n_query, "within_alphabet": False, "split": "test", "episode_seed": seed,
                         "split_protocol": SPLIT_PROTOCOL[0], **proto}, "episodes": 0, "trainable_params": trainable_params(model), "profile": profile,
            "train_seconds": info.get("train_seconds")}


def setting_recipes(name: str, protocols, profile: str = "quick") -> list[tuple[str, list[dict]]]:
    """Which checkpoint measures which protocols, as ``[(recipe name, protocols)]``.

    Under ``--profile paper``, a protocol that a separate paper recipe of the method was trained for (its ``n_way``
    and ``n_shot``: ``paper-20way``, the papers' 20-way models; ``paper-5way``, Matching Networks' 5-way one) is
    measured with that recipe's checkpoint if it is committed, as the paper measures it; every other protocol with
    ``profile``'s checkpoint.
    """
    if profile != "paper":
        return [(profile, list(protocols))]
    own = {(r.n_way, r.n_shot): rn for rn, r in getattr(get_method(name), "RECIPES", {}).items()
           if rn.startswith("paper-") and checkpoint_path(name, rn).exists()}
    groups: dict[str, list[dict]] = {}
    for proto in protocols:
        rn = None if proto.get("within_alphabet") else own.get((proto["n_way"], proto["n_shot"]))
        groups.setdefault(rn or profile, []).append(proto)
    return list(groups.items())


def cell_n_query(rows, proto: dict, default: int) -> int:
    """Queries per class in one checkpoint's cell: on the Vinyals split, the paper's own where the published figure
    of any of the checkpoint's ``rows`` depends on them (its rows share the episodes), else ``default``."""
    if SPLIT_PROTOCOL[0] != "vinyals":
        return default
    own = {published_n_query(row, proto["n_shot"]) for row in rows} - {None}
    assert len(own) <= 1, f"the rows {rows} of one checkpoint want different queries per class: {own}"
    return own.pop() if own else default


def other_queries(r: dict, n_query: int) -> bool:
    """Whether record ``r`` was tested with other queries per class than this run gives its cell
    (:func:`cell_n_query`, under the split in ``SPLIT_PROTOCOL``)."""
    if not isinstance(r.get("protocol"), dict):
        return False
    base = checkpoint_method(r["method"].split("+")[0])
    rows = [base] + ([base + v for v in TEST_VARIANTS] if r.get("profile") == "paper" else [])  # as run_checkpoint
    return cell_n_query(rows, r["protocol"], n_query) != r["protocol"].get("n_query")


def check_same_queries(path, n_query: int, split: str, which) -> None:
    """Refuse, before any work, a run whose queries per class differ from those of the rows it would sit beside.

    Each row is tested with ``--n-query`` queries per class, except a Vinyals cell whose published figure depends on
    them (:func:`cell_n_query`): a run with another ``--n-query`` would merge rows on other episodes into the file.

    Raises:
        ValueError: naming the file, the queries it holds and the way out.
    """
    if not path.exists():
        return
    SPLIT_PROTOCOL[0] = split  # cell_n_query's rule depends on the split
    held = {r["protocol"].get("n_query") for r in json.loads(path.read_text())["records"]
            if isinstance(r, dict) and r.get("episodes") and which(r) and other_queries(r, n_query)}
    if held:
        raise ValueError(f"{path} holds rows tested with {', '.join(map(str, sorted(held, key=str)))} queries per "
                         f"class where this run would use {n_query} (--n-query): mixing them would compare rows on "
                         "different episodes; write to another folder with --results DIR, or replace the file's rows "
                         "with --overwrite")


def run(names, data, episodes: int, n_query: int, seed: int, device, generators, protocols=None,
        profile: str = "quick") -> list[dict]:
    records = []
    protocols = PROTOCOLS if protocols is None else protocols
    for name in names:
        for recipe, protos in setting_recipes(name, protocols, profile):
            records += run_checkpoint(name, recipe, protos, data, episodes, n_query, seed, device, generators,
                                      profile)
    return records


def run_checkpoint(name, recipe, protocols, data, episodes: int, n_query: int, seed: int, device, generators,
                   profile: str) -> list[dict]:
    """The rows of one checkpoint (``NAME-RECIPE.pt``) on ``protocols``; records carry ``profile`` (their row) and,
    when the checkpoint is a separate recipe for those protocols, ``recipe``."""
    records = []
    model = pretrained(name, profile=recipe, device=device)
    info = checkpoint_info(name, recipe) if get_method(name).trainable else {}
    common = dict(config=info.get("config", model.config()), seed=info.get("seed"), device=device,
                  profile=profile, train_seconds=info.get("train_seconds"))
    own = {"recipe": recipe} if recipe != profile else {}
    switch = profile == "paper" and getattr(model, "transductive", None) is True  # Reptile: both paper columns
    inductive, batch_stats = TEST_VARIANTS  # the rows' suffixes, known to the report
    variants = [(name, model, True if switch else None)] + ([(name + inductive, model, False)] if switch else [])
    if profile == "paper" and getattr(model, "paper_test_batch_norm", "running") == "batch":
        variants.append((name + batch_stats, BatchStatistics(model), None))  # as the paper's code tests
    separate = [rn for rn, r in getattr(get_method(name), "RECIPES", {}).items() if rn.startswith("paper-")]
    for (row, row_model, transductive), proto in itertools.product(variants, protocols):
        row_common = common
        if transductive is not None:  # only a model whose flag is a plain True/False is switched
            model.transductive = transductive
            row_common = {**common, "config": {**common["config"], "transductive": transductive}}
        why = cannot_run(model, proto)
        if why and profile == "paper":
            recipes = getattr(get_method(name), "RECIPES")
            fit = separate_paper_recipe(name, protocol_key(proto))  # a recipe for this cell trains its ways and shots
            if fit:  # no dead end: say which recipe makes the model this cell needs
                why += f"; the paper's model for it: python -m fslcourse train {name} --recipe {fit}"
            same_way = [rn for rn in separate if recipes[rn].n_way == proto["n_way"] and checkpoint_path(name, rn).exists()]
            if not fit and same_way:  # a model of these ways is committed, but not the one the paper measured
                rn = same_way[0]
                why += (f"; {name}-{rn}.pt was trained {recipes[rn].n_way}-way {recipes[rn].n_shot}-shot, and the "
                        f"paper's {protocol_key(proto).split('-')[0]} figure comes from a model trained "
                        f"{proto['n_shot']}-shot, which no recipe here trains")
        label = (f"{row}" + (f" ({recipe} recipe)" if recipe != "quick" else "")
                 + f" {protocol_key({**proto, 'split_protocol': SPLIT_PROTOCOL[0]})}")  # e.g. "relation (paper recipe) 5w1s-vinyals"
        nq = cell_n_query([v[0] for v in variants], proto, n_query)
        if why:
            print(f"{label}: skipped ({why})", flush=True)
            records.append({**skipped_record(row, proto, why, nq, seed, model, info, profile), **own})
            continue
        seed_everything(seed)
        # a protocol the method cannot run was skipped above (cannot_run); any other error stops the run, so a broken
        # checkpoint or a bad option is never recorded as a "skipped" row that replaces a measured one
        res = evaluate(row_model, data.test, proto["n_way"], proto["n_shot"], nq, episodes, seed=seed,
                       within_alphabet=proto.get("within_alphabet", False), device=device)
        print(f"{label}: {res}, {nq} quer{'y' if nq == 1 else 'ies'} per class [{res.seconds / episodes:.3f} s/episode]", flush=True)
        records.append(result_record(row, res, **row_common,
                                     extra={"trainable_params": trainable_params(model), **own}))
        if row in AUGMENTED and not proto.get("within_alphabet") and profile == "quick":
            records += run_augmented(name, model, res, data, common, generators, device)
    if switch:
        model.transductive = True  # as loaded
    return records


def run_augmented(name, model, baseline, data, common, generators, device, n_generated: int = 5) -> list[dict]:
    """The same episodes with ``n_generated`` generated support examples per class, for each generator."""
    from fslcourse.generative.augment import evaluate_paired
    from fslcourse.training.generators import CHECKPOINT_FAMILY, committed_only, get_generator

    out = []
    for gen_name in generators:
        stem = CHECKPOINT_FAMILY[gen_name]  # vae-feature -> vae-quick.pt, hallucinator -> gan-quick.pt
        if not (CHECKPOINT_DIR / f"{stem}-quick.pt").exists():  # a builder without its checkpoint would train one
            print(f"{name}+{gen_name}: skipped (no committed {stem}-quick.pt; this script never trains)", flush=True)
            continue
        try:
            with committed_only():  # an entry missing for this backbone is named, never trained and saved here
                gen = get_generator(gen_name)(data, backbone=getattr(model, "backbone", None), profile="quick",
                                              device=device, seed=0, progress=False)
        except (ValueError, FileNotFoundError) as err:  # e.g. its checkpoint is not committed yet: say so, go on
            print(f"{name}+{gen_name}: skipped ({err})", flush=True)
            continue
        (r,) = evaluate_paired(model, gen, data.test, baseline.n_way, baseline.n_shot, (n_generated,),
                               baseline.n_query, baseline.n_episodes, seed=baseline.seed, baseline=baseline,
                               method_name=name, generator_name=gen_name, device=device)
        print(f"  {r}", flush=True)
        params = trainable_params(gen) if isinstance(gen, torch.nn.Module) else None
        out.append(result_record(f"{name}+{gen_name}", r.augmented, **common, extra={
            **r.as_dict(), "method": f"{name}+{gen_name}", "trainable_params": trainable_params(model),
            "generator_params": params}))
    return out


def drop_other_episodes(old: list[dict], episodes: int, seed: int, n_query: int, which) -> list[dict]:
    """``old`` without the records ``which`` picks (this run's split and profile) that were measured on other
    episodes (count, seed or queries per class): what ``--overwrite`` replaces, so no row of the split is left on the
    old episodes."""
    return [r for r in old if not (which(r) and r.get("episodes") and (
        (r["episodes"], (r.get("protocol") or {}).get("episode_seed")) != (episodes, seed) or other_queries(r, n_query)))]


def merge(old: list[dict], new: list[dict]) -> list[dict]:
    """Replace the old records of every (method, protocol) in ``new``; keep the rest."""
    fresh = {(method_label(r), protocol_key(r["protocol"])) for r in new}
    return [r for r in old if (method_label(r), protocol_key(r["protocol"])) not in fresh] + new


def main(argv=None) -> int:
    from fslcourse.cli import SEED_MAX, whole
    from fslcourse.io import check_writable
    from fslcourse.results import check_same_episodes
    from fslcourse.training.generators import CHECKPOINT_FAMILY

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--methods", default=None, help="comma-separated method names (default: all available)")
    p.add_argument("--augment", default="vae,vae-feature",
                   help="generators tried with protonet/finetune (comma-separated; '' for none), e.g. "
                        "vae,vae-feature,gan,hallucinator,diffusion once their checkpoints cover both backbones "
                        "(this script never trains: a generator whose checkpoint lacks an entry is skipped, "
                        "naming the command that trains it)")
    p.add_argument("--episodes", type=whole(2), default=200)
    p.add_argument("--n-query", type=whole(1), default=5)
    p.add_argument("--seed", type=whole(0, SEED_MAX), default=0, help="seed of the test episodes")
    p.add_argument("--protocols", default=None,
                   help=f"comma-separated subset of {', '.join(protocol_key(q) for q in PROTOCOLS)} (default: all "
                        "the split has)")
    p.add_argument("--split", choices=("alphabet", "vinyals"), default="alphabet",
                   help="the course's alphabet split, or the papers' Vinyals et al. test characters (no within-alphabet "
                        "task there; checkpoints trained on the alphabet split never saw a Vinyals test character)")
    p.add_argument("--profile", choices=("quick", "paper"), default="quick",
                   help="which checkpoints: the quick ones, or the paper recipes' (trained on the Vinyals split; "
                        "use with --split vinyals, where the report sets the published figure beside them)")
    p.add_argument("--device", default=None)
    p.add_argument("--results", default=None, help="results folder (default: FSLCOURSE_RESULTS or results/)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace this split's rows of a results file measured on other episodes (default: refused)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    # everything is checked before Omniglot is loaded: a typo costs a line, not a half-written table
    if args.profile == "paper" and args.split != "vinyals":
        p.error("--profile paper measures checkpoints trained on the Vinyals split; add --split vinyals")
    if args.methods is not None and not args.methods.strip(","):  # '' ran every method: an unset $METHODS?
        p.error("--methods is empty; name some methods (e.g. --methods protonet,matching) or leave it out for all")
    names = args.methods.split(",") if args.methods else available_methods(args.profile)
    for name in names:
        if name not in METHODS:
            p.error(f"--methods {name} is not a method; use some of {', '.join(sorted(METHODS))}")
        if METHODS[name].trainable and not checkpoint_path(name, args.profile).exists():
            p.error(f"--methods {name}: {checkpoint_path(name, args.profile).name} is not there; train it with "
                    f"python -m fslcourse train {name} --recipe {args.profile}")
    generators = [g for g in args.augment.split(",") if g]
    unknown = [g for g in generators if g not in CHECKPOINT_FAMILY]
    if unknown:
        controls = [g for g in unknown if g in CONTROLS]
        p.error(f"--augment {','.join(unknown)} is not a learned generator; use some of {', '.join(CHECKPOINT_FAMILY)}"
                + (f" ({', '.join(controls)}: an untrained control, measured by benchmarks/augmentation_sweep.py "
                   "--generators)" if controls else ""))
    protocols = PROTOCOLS if args.split == "alphabet" else [q for q in PROTOCOLS if not q.get("within_alphabet")]
    if args.protocols:
        keys = {protocol_key(q): q for q in protocols}
        unknown = [k for k in args.protocols.split(",") if k not in keys]
        if unknown:
            p.error(f"--protocols {','.join(unknown)} is not a protocol of the {args.split} split; use some of "
                    f"{', '.join(keys)}")
        protocols = [keys[k] for k in args.protocols.split(",")]
    path = results_dir(args.results) / f"{NAME}.json"

    def beside(r):  # the rows this run's rows sit beside: its split and profile
        return ((r.get("protocol") or {}).get("split_protocol", "alphabet"), r.get("profile")) == (args.split,
                                                                                                   args.profile)
    try:
        check_writable(path, "the results file")
        check_same_episodes(path, args.episodes, args.seed, overwrite=args.overwrite, which=beside)
        if not args.overwrite:
            check_same_queries(path, args.n_query, args.split, beside)
    except ValueError as err:
        p.error(str(err))
    with one_line_errors():  # a bad --device or FSLCOURSE_DEVICE, data not found: one line
        device = get_device(args.device)
        data = load_omniglot(device=device, progress=False, split=args.split)
    SPLIT_PROTOCOL[0] = args.split
    start = time.perf_counter()
    new = run(names, data, args.episodes, args.n_query, args.seed, device, generators, protocols, args.profile)
    old = json.loads(path.read_text())["records"] if path.exists() else []
    if args.overwrite:  # the help's promise: the split's rows on other episodes go, not only this run's methods'
        old = drop_other_episodes(old, args.episodes, args.seed, args.n_query, beside)
    records = merge(old, new)
    save_results(NAME, records, directory=results_dir(args.results))
    print(f"wrote {len(new)} records ({len(records)} in all) to {path} in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
