"""Command line for instructors and scripts: ``python -m fslcourse COMMAND``.

Commands:
    doctor     what is installed, the device, where the data is, and fixes for what is missing
    download   fetch and verify Omniglot into the data directory
    evaluate   evaluate a method on meta-test episodes and optionally write a JSON record
    predict    classify your own images: a folder of labelled examples per class, then query images
    report     rebuild the course-wide benchmark table from results/*.json
    train      train a method with its profile's recipe and write its checkpoint
"""
from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from .config import RECIPE_NAMES, SEED_MAX  # SEED_MAX: benchmarks import it from here too
from .numerics import NUMERICS


@contextlib.contextmanager
def one_line_errors(*kinds: type[Exception]):
    """For the scripts in ``benchmarks/``: bad input met inside (a device that is not one, data not where
    FSLCOURSE_DATA says) ends the run with one ``error: ...`` line, as this command line does, not a traceback."""
    try:
        yield
    except kinds or (ValueError, FileNotFoundError) as err:
        raise SystemExit(f"error: {err}") from None


def add_episode_arguments(parser: argparse.ArgumentParser, episodes: int = 1000) -> None:
    """The options the protocol benchmarks share: ``--episodes``, ``--device``, ``--results`` and ``--overwrite``."""
    parser.add_argument("--episodes", type=int, default=episodes)
    parser.add_argument("--device", default=None)
    parser.add_argument("--results", default=None,
                        help="the results folder (default: FSLCOURSE_RESULTS if set, else the repository's results/)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a results file measured on other episodes or settings (default: refused)")


def parse_episode_arguments(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """``parser``'s arguments (with :func:`add_episode_arguments`'), ``--episodes`` refused below 2 in one line."""
    args = parser.parse_args(argv)
    if args.episodes < 2:
        raise SystemExit(f"error: --episodes {args.episodes}: a confidence interval needs at least 2 episodes")
    return args


def names_from(text: str, flag: str, choices) -> list[str]:
    """``"a,b"`` as ``["a", "b"]``, each one of ``choices``; anything else exits with one line naming ``flag`` and
    the choices."""
    names = [name for name in text.split(",") if name]
    if not names or any(name not in choices for name in names):
        raise SystemExit(f"error: {flag} {text!r}: choose from {', '.join(choices)}")
    return names


def whole(minimum: int, maximum: int | None = None):
    """An argparse type: a whole number >= ``minimum`` (and <= ``maximum``), refused with the option's name and the
    fix."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is below {minimum}; give {minimum} or more")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"{value} is above {maximum}; give {minimum} to {maximum}")
        return value

    parse.__name__ = "whole number"  # what argparse names in its message
    return parse


def path(text: str) -> Path:
    """An argparse type: a path, refused when empty (``Path("")`` is the current folder: an unset ``$DIR`` wrote
    predictions there)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path; give a file or folder (an unset shell variable?)")
    return Path(text)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m fslcourse", description="fslcourse command line")
    sub = p.add_subparsers(dest="command", required=True)
    doc = sub.add_parser("doctor", help="check the installation, device and data")
    doc.add_argument("--drawings", action="store_true", help="also open every Omniglot drawing (under a minute)")
    d = sub.add_parser("download", help="download and verify Omniglot")
    d.add_argument("--root", type=path, default=None, help="data directory (default: FSLCOURSE_DATA or the cache)")
    e = sub.add_parser("evaluate", help="evaluate a method on meta-test episodes")
    e.add_argument("name", help="registered method name, e.g. pixel, protonet, maml; NAME-batch-stats or "
                   "NAME-inductive measures a paper checkpoint as its paper's other test does (relation-batch-stats, "
                   "reptile-inductive)")
    e.add_argument("--n-way", type=whole(1), default=5, help="classes per episode (default: 5)")
    e.add_argument("--n-shot", type=whole(1), default=1, help="support examples per class (default: 1)")
    e.add_argument("--n-query", type=whole(1), default=None,
                   help="queries per class (default: 15; for a paper checkpoint whose paper tests each batch with "
                        "its own BatchNorm statistics, that paper's: as many as shots for MAML and "
                        "relation-batch-stats, one for Reptile)")
    e.add_argument("--episodes", type=whole(2), default=1000, help="test episodes (default: 1000; 2 or more: the 95%% "
                   "interval needs two)")
    e.add_argument("--seed", type=whole(0, SEED_MAX), default=0, help="seed of the test episodes (default: 0)")
    e.add_argument("--within-alphabet", action="store_true", help="all classes of an episode from one alphabet")
    e.add_argument("--profile", choices=RECIPE_NAMES, default="quick",
                   help="which recipe's checkpoint to load: NAME-quick.pt, NAME-paper.pt, NAME-lake.pt, ...")
    e.add_argument("--split", choices=("test", "val"), default="test",
                   help="meta-test or meta-validation classes (recorded in --json; report tables only test)")
    e.add_argument("--device", default=None, help="cpu, cuda, cuda:N, mps or auto (default: FSLCOURSE_DEVICE or auto)")
    e.add_argument("--json", type=path, default=None, help="write the result record here")
    e.add_argument("--append", action="store_true",
                   help="add the record to the --json results file (created if missing) instead of writing one "
                        "record: a file of several settings, one command each")
    e.add_argument("--variant", default=None,
                   help="the setting's name, kept in the record (report tables prefer records without one)")
    e.add_argument("--overwrite", action="store_true",
                   help="replace an existing --json file (with --append: the record of the same measurement)")
    from .training.generators import add_augment_arguments
    add_augment_arguments(e, whole)  # --augment GENERATOR --n-generated M [M ...] --generation-seed S
    q = sub.add_parser("predict", help="classify your own images with a course model")
    q.add_argument("--support", type=path, required=True, help="a folder with one sub-folder of images (PNG/JPEG) per class")
    q.add_argument("--query", type=path, nargs="+", required=True, help="query image files or folders of images")
    q.add_argument("--method", default=None, help="a method with a committed checkpoint (default: protonet)")
    q.add_argument("--profile", choices=RECIPE_NAMES, default=None,
                   help="which recipe's checkpoint to load (default: the method's best: lake for protonet, else quick)")
    q.add_argument("--out", type=path, default=None,
                   help="folder for predictions.csv, predictions.json and contact_sheet.png (default: print only)")
    q.add_argument("--overwrite", action="store_true", help="replace the files an earlier --out left in the folder")
    q.add_argument("--transductive", action="store_true",
                   help="classify the queries together (batch statistics and soft k-means prototypes): more "
                        "accurate when every query shows one of the classes, several per class")
    q.add_argument("--device", default=None)
    families = "vae, deformation-vae, gan, deformation-gan, diffusion"  # training.generators.FAMILIES (tested)
    t = sub.add_parser("train", help=f"train a method, a generator family ({families}) or the sinusoid regressors "
                       "with one of its recipes and write its checkpoint")
    t.add_argument("name", help=f"a registered method, a generator family ({families}), or sinusoid")
    t.add_argument("--recipe", "--profile", dest="recipe", default="quick",
                   help="the method's recipe: quick, full, paper or one of its own, e.g. lake (default quick)")
    t.add_argument("--seed", type=whole(0, SEED_MAX), default=None, help="change the recipe's seed (default: the recipe's, 0; another needs --out)")
    t.add_argument("--steps", type=whole(1), default=None, help="change the recipe's number of steps (needs --out: the package's file is the recipe's)")
    t.add_argument("--state-every", type=whole(1), default=None,
                   help="write the resumable training state every N steps (default: the recipe's)")
    t.add_argument("--device", default=None)
    t.add_argument("--out", type=path, default=None, help="checkpoint path (default: the package's NAME-RECIPE.pt, for the recipe unchanged)")
    t.add_argument("--overwrite", action="store_true", help="replace an existing checkpoint at the target, or an unfinished run's training state")
    t.add_argument("--resume", action="store_true", help="continue the run whose training state is beside --out")
    t.add_argument("--state", type=path, default=None, help="training state path (default: beside --out)")
    t.add_argument("--numerics", choices=NUMERICS, default=None,
                   help="native (fastest here) or portable (the same weights on any x86-64 CPU, slower); "
                        "default FSLCOURSE_NUMERICS, else native")
    r = sub.add_parser("report", help="rebuild the benchmark table from results/*.json")
    r.add_argument("--results", type=path, default=None, help="folder of result files (default: FSLCOURSE_RESULTS "
                   "or the repository's results/)")
    r.add_argument("--format", choices=("markdown", "json"), default="markdown")
    r.add_argument("--out", type=path, default=None, help="also write the table here (atomic)")
    r.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    return p


def _evaluate(args) -> int:
    from .io import check_writable
    from .results import check_append, check_not_recorded

    if (args.append or args.variant is not None) and args.json is None:
        raise ValueError(f"{'--append' if args.append else '--variant'} is for the record --json writes; give --json FILE")
    if args.json is not None:  # before any work: a bad path fails now, not after the evaluation
        check_writable(args.json, "--json")
        if args.append:
            check_append(args.json)
        elif args.json.exists() and not args.overwrite:
            raise ValueError(f"--json {args.json} exists; pass --overwrite to replace it, --append to add to its "
                             "records, or choose another path")
    if not args.augment and args.n_generated is not None:
        raise ValueError("--n-generated sets how many generated examples --augment adds; give --augment GENERATOR "
                         "too, or leave --n-generated out")
    if args.augment:  # paired evaluation with and without generated support examples
        from .training.generators import evaluate_augmented
        args.n_query = 15 if args.n_query is None else args.n_query
        check_not_recorded(args, f"{args.name}+{args.augment}")
        evaluate_augmented(args, lambda model: _check_episode_shape(args.name, args.profile, model, args.n_way,
                                                                    args.n_shot))
        return 0
    from . import methods  # noqa: F401  (registers every method)
    from .config import get_device
    from .data import load_omniglot
    from .evaluate import evaluate
    from .methods.base import get_method
    from .pretrained import checkpoint_path, load_method, pretrained
    from .report import checkpoint_method, published_n_query
    from .results import result_record, write_record

    name = checkpoint_method(args.name)  # "relation-batch-stats" measures relation's checkpoint
    if not get_method(name).trainable and args.profile != "quick":  # its record would name a recipe it never had
        raise ValueError(f"{name} has no trained weights, so --profile {args.profile} does not apply; leave it out")
    device = get_device(args.device)
    path = checkpoint_path(name, args.profile)
    if get_method(name).trainable and path.exists():  # the file is read once: the model and its record
        model, ckpt = load_method(path, device, expect=name, expect_recipe=args.profile)
    else:
        model, ckpt = pretrained(name, profile=args.profile, device=device), {}
    _check_episode_shape(name, args.profile, model, args.n_way, args.n_shot)  # the model itself, before a wrapper
    model = _test_variant(args.name, name, model)
    trained_on = (getattr(model, "checkpoint_source", None) or {}).get("split")
    protocol = trained_on if trained_on in ("alphabet", "vinyals") else "alphabet"  # the split it was made for
    if args.n_query is None:
        paper = published_n_query(args.name, args.n_shot) if protocol == "vinyals" else None
        args.n_query = paper or 15
        if paper:
            why = ("" if args.name.endswith("-inductive") else ": it normalises each test batch with its own "
                   "statistics, so the queries per class change the accuracy")
            print(f"{args.n_query} quer{'y' if paper == 1 else 'ies'} per class, as the paper's test of {args.name}"
                  f"{why} (give --n-query to choose)", file=sys.stderr)
        elif args.name.endswith("-batch-stats"):
            print(f"{args.name} normalises each test batch with its own statistics, so the queries per class change "
                  f"its accuracy: 15 here (give --n-query to choose)", file=sys.stderr)
    check_not_recorded(args, args.name)
    split = load_omniglot(device=device, split=protocol).split(args.split)
    res = evaluate(model, split, args.n_way, args.n_shot, args.n_query, args.episodes, seed=args.seed,
                   within_alphabet=args.within_alphabet, device=device, progress=sys.stderr.isatty())
    weights = f"{args.profile} checkpoint" if get_method(name).trainable else "no weights"
    print(f"{args.name} ({weights}; {protocol} split, {args.split} classes; {args.n_query} "
          f"quer{'y' if args.n_query == 1 else 'ies'} per class): {res}; ± is the 95% CI over the episodes")
    if res.alphabets_left_out:
        print(f"left out {len(res.alphabets_left_out)} alphabet(s) with fewer than {args.n_way} classes: "
              f"{', '.join(res.alphabets_left_out)}", file=sys.stderr)
    if args.json:
        record = result_record(args.name, res, config=ckpt.get("config", model.config()), seed=ckpt.get("seed"),
                               device=device, profile=args.profile, train_seconds=ckpt.get("train_seconds"),
                               split=args.split)
        write_record(record, args)
    return 0


def _test_variant(row: str, name: str, model):
    """``model`` as row ``row`` measures it: ``NAME-batch-stats`` with each test batch's BatchNorm statistics (the
    Relation Network's code), ``NAME-inductive`` one query at a time (the Reptile paper's other column)."""
    from .methods.transductive import BatchStatistics

    if row == name:
        return model
    if row.endswith("-batch-stats"):
        if getattr(model, "paper_test_batch_norm", "running") != "batch":
            raise ValueError(f"{row}: {name}'s paper does not test with batch statistics; evaluate {name}")
        return BatchStatistics(model)
    if not isinstance(getattr(model, "transductive", None), bool):
        raise ValueError(f"{row}: {name} has no transductive switch (it classifies each query on its own already); "
                         f"evaluate {name}")
    model.transductive = False
    return model


def _check_episode_shape(name: str, profile: str, model, n_way: int, n_shot: int) -> None:
    """Refuse, in one line with the way out, an episode the loaded model cannot run: a head fixed at another
    ``n_way``, or a model that runs only its training ``n_shot``."""
    from .io import state_path_for
    from .methods.base import fixed_n_way, get_method, n_shot_refusal
    from .pretrained import checkpoint_path

    fixed = fixed_n_way(model)
    why = n_shot_refusal(model, n_shot) if fixed in (None, n_way) else (
        f"{name}-{profile}.pt's head has {fixed} outputs (trained {fixed}-way): evaluate --n-way {fixed}")
    if why is None:
        return
    recipes = getattr(get_method(name), "RECIPES", {})
    paper = profile.startswith("paper")  # the way out stays on the same split: a paper recipe for a paper model
    fits = [rn for rn, r in recipes.items() if (r.n_way, r.n_shot) == (n_way, n_shot) and rn != profile
            and rn.startswith("paper") == paper]
    for rn in fits[:1]:  # no dead end: the recipe that makes a model for these episodes
        model_of = f"the {n_way}-way {n_shot}-shot model"
        if checkpoint_path(name, rn).exists():
            why += f", or {model_of}: --profile {rn}"
        elif state_path_for(checkpoint_path(name, rn)).exists():  # a run across sittings: it goes on, not again
            why += f", or finish {model_of}, training across sittings: python -m fslcourse train {name} --recipe {rn} --resume"
        else:
            why += f", or train {model_of} first: python -m fslcourse train {name} --recipe {rn}"
    raise ValueError(why)


def _train(args) -> int:
    from .numerics import use_numerics

    use_numerics(args.numerics)  # before anything computes
    from .training.api import train

    changes = {k: v for k, v in (("seed", args.seed), ("steps", args.steps), ("state_every", args.state_every))
               if v is not None}
    # train() checks the name, the recipe and the target before any work
    trained, result = train(args.name, args.recipe, out=args.out, state=args.state, resume=args.resume,
                            overwrite=args.overwrite, device=args.device, progress=True, **changes)
    if result is None:  # a generator family or sinusoid: a checkpoint of several models
        print(f"{args.name}: trained and saved {trained}")
        return 0
    if result.stopped != "steps":
        then = (f"Continue from step {result.state_step} with the same command and --resume."
                if result.state_step is not None else "No training state was written: the same command starts again.")
        print(f"{args.name}: stopped at step {result.steps} ({result.stopped}); no checkpoint was written. {then}",
              file=sys.stderr)
        return 3
    m = result.metrics
    p = m["protocol"]
    print(f"{args.name}: trained {result.steps} steps in {result.seconds:.0f} s ({result.cpu_seconds:.0f} CPU-s); "
          f"saved {result.checkpoint}; its meta-test accuracy, recorded in it: {m['test_accuracy']:.1f} ± {m['test_ci95']:.1f}% "
          f"({p['n_way']}-way {p['n_shot']}-shot, {p['n_episodes']} episodes, ± the 95% CI)")
    return 0


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "doctor":
            from .doctor import main as doctor_main
            return doctor_main(["--drawings"] if args.drawings else [])
        if args.command == "download":
            from .data.download import download_omniglot
            from .data.omniglot import data_roots
            out = download_omniglot(args.root or data_roots()[0])
            print(f"Omniglot is ready in {out}")
            return 0
        if args.command == "evaluate":
            return _evaluate(args)
        if args.command == "train":
            return _train(args)
        if args.command == "predict":
            from .predict import DEFAULT_METHOD, predict_folders
            from .pretrained import default_recipe
            method = args.method or DEFAULT_METHOD
            preds = predict_folders(args.support, args.query, method, out=args.out,
                                    profile=args.profile, device=args.device, transductive=args.transductive,
                                    overwrite=args.overwrite)
            from .methods.base import get_method
            weights = f"{args.profile or default_recipe(method)} checkpoint" if get_method(method).trainable else "no weights"
            print(f"{method} ({weights}), "
                  + ("the queries classified together (--transductive):" if args.transductive else
                     "one query at a time:"))
            for p in preds:
                print(f"{p.file}: {p.predicted} ({p.confidence(p.probability)}); top: "
                      + ", ".join(f"{c} {p.confidence(q)}" for c, q in p.top))
            if args.out is not None:
                print(f"wrote predictions.csv, predictions.json and contact_sheet.png to {args.out}")
            return 0
        if args.command == "report":
            from .report import report
            if args.out is not None and Path(args.out).is_file() and not args.overwrite:  # a folder: report() says
                raise ValueError(f"--out {args.out} exists; pass --overwrite to replace it, or choose another path")
            print(report(args.results, args.format, args.out), end="")
            return 0
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted (Ctrl-C)", file=sys.stderr)
        return 130
    except Exception as err:
        from .training.loop import TrainingStopped

        if isinstance(err, TrainingStopped):  # Ctrl-C during a generator's run: said, nothing saved
            print(f"error: {err}", file=sys.stderr)
            return 3
        # a bug, not bad input: a short message here, the full traceback in a file
        from .io import save_traceback

        log = save_traceback(err)
        where = f"the full traceback is in {log}" if log else "the full traceback could not be written"
        message = (str(err).strip().splitlines() or [""])[0]
        print(f"error: {type(err).__name__}: {message} ({where}; please report it)", file=sys.stderr)
        return 1
    return 1
