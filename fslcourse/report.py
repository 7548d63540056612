"""The course-wide benchmark table, rebuilt from the result records in ``results/*.json``.

Taught in ``notebooks/11_benchmark.ipynb``; ``python -m fslcourse report`` prints it.

Nothing is recomputed: every notebook (and ``benchmarks/course_benchmark.py``) writes
records with :func:`fslcourse.results.save_results`; :func:`load_records` reads them,
:func:`build_table` keeps one row per (method, protocol) and adds the published
figure for the same protocol, and :data:`CLAIMS` checks claims from the literature
against the records (``"not measured yet"`` when a result file does not exist).
"""
from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist

MISSING = "—"
BENCHMARK_FILE = "11_benchmark"
PROTOCOLS = ("5w1s", "5w5s", "20w1s", "20w5s", "20w1s-alphabet")
VINYALS = tuple(f"{p}-vinyals" for p in PROTOCOLS[:4])  # the papers' character split

# Published Omniglot figures (5w1s / 5w5s / 20w1s / 20w5s, percent), transcribed with their sources
# from the course's reference notes (../shared/reference/README.md), which cite the papers' tables.
# They were measured on the Vinyals et al. protocol (both sets of alphabets pooled, 1,200 training and 423 test
# characters, rotations as classes), so they sit only beside records of that split ("5w1s-vinyals"); the course's
# alphabet split ("5w1s") is another protocol (other test characters). Which 423 characters, :data:`PUBLISHED_DRAW`.
PUBLISHED: dict[str, tuple[tuple[float, float, float, float], str]] = {
    "protonet": ((98.8, 99.7, 96.0, 98.9), "Snell et al. 2017, arXiv:1703.05175"),
    "maml": ((98.7, 99.9, 95.8, 98.9), "Finn et al. 2017, arXiv:1703.03400, Table 1"),
    "fomaml": ((98.3, 99.2, 89.4, 97.9), "Nichol et al. 2018, arXiv:1803.02999"),
    "reptile": ((97.68, 99.48, 89.43, 97.12), "Nichol et al. 2018, arXiv:1803.02999 (transductive)"),
    "reptile-inductive": ((95.39, 98.90, 88.14, 96.65), "Nichol et al. 2018, arXiv:1803.02999 (non-transductive)"),
    "matching": ((98.1, 98.9, 93.8, 98.5), "Vinyals et al. 2016, arXiv:1606.04080 (as in Snell et al. 2017, Table 1)"),
    # the Relation Network's code tests with each batch's BatchNorm statistics: its figures sit beside that row
    "relation-batch-stats": ((99.6, 99.8, 97.6, 99.1), "Sung et al. 2018, arXiv:1711.06025 (batch statistics at test)"),
}


# Which characters a paper's test used. ProtoNet's and Matching Networks' figures come from the Vinyals et al. lists
# that the course ships (fslcourse/data/vinyals/: 423 test characters from 13 alphabets, only Gurmukhi also in
# training). The codes of MAML (cbfinn/maml, data_generator.py; Nichol et al. made their first-order MAML figures
# with it), the Relation Network (floodsung/LearningToCompare_FSL, task_generator.py) and Reptile
# (openai/supervised-reptile, omniglot.py) shuffle all 1,623 characters with their own seed and keep 1,200 for
# training, 423 for test: the same sizes, other test characters, from all 50 alphabets. Their test episodes are built
# otherwise too: each holds n_way distinct characters, where ours draw (character, rotation) classes and may hold two
# rotations of one character; MAML's code turns each class by a random multiple of 90 degrees, the Relation Network's
# turns a whole episode by one, and Reptile's tests upright characters only (its rotations only augment training).
# Those figures are marked § beside ours. How much the other characters change a figure has not been measured; the
# episode construction benchmarks/episode_construction.py measures (:data:`PUBLISHED_EPISODES`, :func:`construction_gaps`).
PUBLISHED_DRAW: dict[str, str] = {"protonet": "lists", "matching": "lists", "maml": "random", "fomaml": "random",
                                  "reptile": "random", "reptile-inductive": "random", "relation-batch-stats": "random"}

# How each paper's code built its test episodes (fslcourse.data.EpisodeSampler's ``rotation``): the (character,
# rotation) classes of the lists, as ours, or distinct characters turned per class, per episode or not at all.
PUBLISHED_EPISODES: dict[str, str] = {"protonet": "classes", "matching": "classes", "maml": "per-class",
                                      "fomaml": "per-class", "relation-batch-stats": "per-episode",
                                      "reptile": "upright", "reptile-inductive": "upright"}

# How many test episodes each paper's figure averages, from its code: ProtoNet's 1,000 (jakesnell/prototypical-networks,
# scripts/predict/few_shot/run_eval.py, --data.test_episodes), MAML's 600 (cbfinn/maml, main.py, NUM_TEST_POINTS; also
# behind first-order MAML's figures), the Relation Network's 10 runs of 1,000 averaged, so 10,000
# (floodsung/LearningToCompare_FSL, omniglot_test_one_shot.py, --episode and --test_episode), Reptile's 10,000
# (openai/supervised-reptile, args.py, --eval-samples). Matching Networks' paper does not say (None). The course
# tests on 1000 episodes; where a paper used more, benchmarks/paper_episode_count.py measures the row again on its
# paper's construction and count, so an interval as narrow as the paper's decides the row.
PUBLISHED_TEST_EPISODES: dict[str, int | None] = {"protonet": 1000, "matching": None, "maml": 600, "fomaml": 600,
                                                  "relation-batch-stats": 10000, "reptile": 10000,
                                                  "reptile-inductive": 10000}

# The papers whose 5-shot figures come from a model trained on 5-shot episodes (Snell et al. match the training
# shots to the test's; MAML's and the Relation Network's codes train with the test's shots; Matching Networks train
# a model per setting). Reptile's code trains its 1-shot and 5-shot models alike (10 training shots), so its figures
# describe one model. Beside a cell measured with a checkpoint trained on other shots, such a figure is marked ‡.
PUBLISHED_PER_SHOT = frozenset({"protonet", "maml", "fomaml", "matching", "relation-batch-stats"})


# Queries per class in the test episodes behind a published figure, where the figure depends on them. These papers'
# codes normalise each test batch with its own BatchNorm statistics (transductive), so how many queries share the
# batch changes the result: MAML's code (cbfinn/maml, main.py: 2K drawings per class, K to adapt on, K to test) and
# the Relation Network's (floodsung/LearningToCompare_FSL, omniglot_test_one_shot.py and _few_shot.py) test with as
# many queries per class as shots; Reptile's (openai/supervised-reptile, reptile.py, evaluate) with one. The other
# published figures classify each query on its own, whatever the number of queries.
PUBLISHED_N_QUERY: dict[str, int | str] = {"maml": "n_shot", "fomaml": "n_shot", "relation-batch-stats": "n_shot",
                                           "reptile": 1, "reptile-inductive": 1}


def published_n_query(method: str, n_shot: int) -> int | None:
    """The queries per class of the paper's test behind ``method``'s published figure at ``n_shot`` shots, or
    ``None`` when its figure does not depend on them (:data:`PUBLISHED_N_QUERY`)."""
    rule = PUBLISHED_N_QUERY.get(method)
    return int(n_shot) if rule == "n_shot" else rule


# rows that measure one checkpoint another way at test time (benchmarks/course_benchmark.py --profile paper)
TEST_VARIANTS = ("-inductive", "-batch-stats")


def checkpoint_method(row: str) -> str:
    """The method whose checkpoint a row measured: ``"reptile-inductive"`` -> ``"reptile"``."""
    for suffix in TEST_VARIANTS:
        row = row.removesuffix(suffix)
    return row


def protocol_key(protocol: dict) -> str:
    """``{"n_way": 20, "n_shot": 1, "within_alphabet": True}`` -> ``"20w1s-alphabet"``; a record on the
    Vinyals split (``split_protocol: "vinyals"``) -> ``"20w1s-vinyals"``."""
    try:
        key = f"{int(protocol['n_way'])}w{int(protocol['n_shot'])}s"
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"protocol {protocol!r} needs integer n_way and n_shot") from err
    return key + ("-alphabet" if protocol.get("within_alphabet") else "") + \
        ("-vinyals" if protocol.get("split_protocol") == "vinyals" else "")


def separate_paper_recipe(method: str, protocol: str) -> str | None:
    """The recipe (``paper-20way``, ``paper-5way``) of ``method`` trained for ``protocol``'s ways and shots when its
    paper trains a separate model for that setting, so that its published figure describes that model; else ``None``."""
    from . import methods  # noqa: F401  (registers every method)
    from .methods.base import METHODS

    ways, shots = (int(x) for x in re.match(r"(\d+)w(\d+)s", protocol).groups())
    recipes = getattr(METHODS.get(checkpoint_method(method)), "RECIPES", {})
    return next((rn for rn, r in recipes.items() if rn.startswith("paper-") and (r.n_way, r.n_shot) == (ways, shots)),
                None)


def trained_for(method: str, recipe: str | None, protocol: str, shots_only: bool = False) -> bool:
    """Whether ``method``'s recipe ``recipe`` trains with ``protocol``'s ways and shots (only its shots when
    ``shots_only``)."""
    from . import methods  # noqa: F401  (registers every method)
    from .methods.base import METHODS

    r = getattr(METHODS.get(checkpoint_method(method)), "RECIPES", {}).get(recipe)
    ways, shots = (int(x) for x in re.match(r"(\d+)w(\d+)s", protocol).groups())  # "20w5s-vinyals": 20, 5
    return r is not None and r.n_shot == shots and (shots_only or r.n_way == ways)


def published_by_other_model(method: str, recipe: str | None, protocol: str) -> bool:
    """Whether ``method``'s published figure on ``protocol`` comes from a model its paper trained for that setting
    (its ways, :func:`separate_paper_recipe`, or its shots, :data:`PUBLISHED_PER_SHOT`) while the checkpoint of
    recipe ``recipe`` (a recipe name or a profile) was trained for another."""
    if separate_paper_recipe(method, protocol) is not None and not trained_for(method, recipe, protocol):
        return True
    return method in PUBLISHED_PER_SHOT and not trained_for(method, recipe, protocol, shots_only=True)


def published(method: str, protocol: str, n_query: int | None = None) -> tuple[float | None, str | None]:
    """The published accuracy and its source for ``method`` on ``protocol`` (``(None, None)`` if none):
    only on the Vinyals split, the papers' protocol (:data:`PUBLISHED_DRAW` says which test characters), and,
    given a record's ``n_query``, only when its test had the paper's queries per class where the figure depends on
    them (:func:`published_n_query`)."""
    if method not in PUBLISHED or protocol not in VINYALS:
        return None, None
    want = published_n_query(method, int(re.match(r"\d+w(\d+)s", protocol).group(1)))  # "20w5s-vinyals": 5 shots
    if n_query is not None and want is not None and int(n_query) != want:
        return None, None
    figures, source = PUBLISHED[method]
    return figures[VINYALS.index(protocol)], source


# How far below its published figure a paper-recipe row may land at 5-way and at 20-way 1-shot, in points (the
# course's targets for its paper checkpoints); ProtoNet and MAML are held closer, every other method to DEFAULT_TARGET.
PAPER_TARGETS = {"protonet": (0.5, 1.0), "maml": (0.5, 1.0)}
DEFAULT_TARGET = (1.0, 2.0)
TARGET_PROTOCOLS = ("5w1s-vinyals", "20w1s-vinyals")


def paper_target(row: str, protocol: str) -> float:
    """The points a paper row (``"reptile-inductive"``) may fall below its published figure at ``protocol``
    (one of :data:`TARGET_PROTOCOLS`)."""
    return PAPER_TARGETS.get(checkpoint_method(row), DEFAULT_TARGET)[TARGET_PROTOCOLS.index(protocol)]


def target_status(gap: float, ci95: float, target: float) -> str:
    """``"within"`` when the 95% interval of ``gap`` (ours minus published, points) lies above ``-target``,
    ``"miss"`` when below it, ``"unclear"`` when it holds it (:func:`verdict`)."""
    return {True: "within", False: "miss", None: "unclear"}[verdict(gap, ci95, -target)]


def paper_gaps(rows: list[dict]) -> list[dict]:
    """Each paper-recipe row's 1-shot Vinyals cells set against their published figures and targets.

    Args:
        rows: :func:`build_table`'s rows; only ``profile == "paper"`` cells of :data:`TARGET_PROTOCOLS` that have
            a published figure count; a cell with ``published_other_model`` (measured with a checkpoint trained for
        another setting than the paper's separate model) is "not measured", with a ``note`` saying so.

    Returns:
        One dict per such cell, in the rows' order: ``method``, ``protocol``, ``accuracy`` and ``ci95`` (``None``
        when the cell was skipped), ``published``, ``target`` (points allowed below it), ``gap`` (ours minus
        published, points, ``None`` when skipped) and ``status``, by the rule every claim uses (:func:`verdict`):
        ``"within"`` (the 95% interval of ``gap`` lies above ``-target``), ``"miss"`` (below it), ``"unclear"``
        (it contains ``-target``, or the cell has no interval) or ``"not measured"``.
    """
    out = []
    for r in rows:
        figure = r["published"]
        if r["profile"] != "paper" or r["protocol"] not in TARGET_PROTOCOLS or figure is None:
            continue
        target = paper_target(r["method"].removesuffix(" (paper recipe)"), r["protocol"])
        # a cell measured with a model trained for another setting than the paper's figure is no measurement of it
        other = r.get("published_other_model") and r["accuracy"] is not None
        gap = None if r["accuracy"] is None or other else r["accuracy"] - r["published"]
        status = "not measured" if gap is None else "unclear" if r["ci95"] is None else \
            target_status(gap, r["ci95"], target)
        out.append({"method": r["method"], "protocol": r["protocol"], "accuracy": None if gap is None else r["accuracy"],
                    "ci95": None if gap is None else r["ci95"], "published": figure, "target": target, "gap": gap,
                    "status": status, "note": (f"measured only with a model trained for another setting "
                                               f"({r['accuracy']:.1f} ± {r['ci95']:.1f}%), not the paper's own")
                                              if other else None})
    return out


def construction_gaps(records: list[dict]) -> list[dict]:
    """Each record of ``benchmarks/episode_construction.py`` (a paper checkpoint's 1-shot Vinyals cell on episodes
    built one way) set against its published figure and target by :func:`paper_gaps`' rule.

    Args:
        records: the records of ``results/episode_construction.json`` (or ``results/paper_episode_count.json``).

    Returns:
        One dict per record, in order: ``method``, ``recipe``, ``n_way``, ``rotation`` (how its episodes were built),
        ``episodes`` (how many),
        ``papers`` (``True`` when that is how the paper's code built them, :data:`PUBLISHED_EPISODES`),
        ``accuracy``, ``ci95``, ``vs_classes`` and ``vs_classes_ci95`` (the difference from the course's episodes,
        with its unpaired interval; ``None`` for the course's own), ``published``, ``target``, ``gap`` and ``status``
        (``"within"``, ``"miss"`` or ``"unclear"``).
    """
    out = []
    for r in records:
        ways, method = int(r["protocol"]["n_way"]), r["method"]
        protocol = f"{ways}w1s-vinyals"  # "20w1s-vinyals"
        figure, target = PUBLISHED[method][0][VINYALS.index(protocol)], paper_target(method, protocol)
        gap = r["accuracy"] - figure
        out.append({"method": method, "recipe": r.get("recipe"), "n_way": ways, "rotation": r["rotation"],
                    "episodes": r["episodes"], "papers": PUBLISHED_EPISODES.get(method) == r["rotation"],
                    "accuracy": r["accuracy"], "ci95": r["ci95"], "vs_classes": r.get("vs_classes"),
                    "vs_classes_ci95": r.get("vs_classes_ci95"), "published": figure, "target": target, "gap": gap,
                    "status": target_status(gap, r["ci95"], target)})
    return out


PAPER_METHODS = ("protonet", "matching", "relation", "maml", "fomaml", "reptile")  # the methods PUBLISHED grades
RUN_STATUS = {"finished": "finished", "training": "training across sittings", "not started": "not started"}


def paper_runs(checkpoints=None) -> list[dict]:
    """Where each paper-recipe run of :data:`PAPER_METHODS` stands, read from the committed files.

    A finished run is read from its checkpoint, a run across sittings from its committed training state
    (``NAME-RECIPE.state.pt``).

    Args:
        checkpoints: the folder holding them (default: the package's checkpoints).

    Returns:
        one dict per (method, recipe starting with ``paper``): ``method``, ``recipe``, ``status`` (a key of
        :data:`RUN_STATUS`), ``step`` of ``steps``, ``cpu_hours``, the best meta-validation score ``best`` at
        ``best_step`` (``None`` before the first check) on ``val_n_way``-way episodes and the meta-validation curve ``val_step``,
        ``val_accuracy`` (empty when not started).
    """
    from .io import load_checkpoint, state_path_for
    from .methods import get_method
    from .pretrained import CHECKPOINT_DIR

    runs = []
    for name in PAPER_METHODS:
        for recipe, spec in get_method(name).RECIPES.items():
            if not recipe.startswith("paper"):
                continue
            path = Path(checkpoints or CHECKPOINT_DIR) / f"{name}-{recipe}.pt"
            run = {"method": name, "recipe": recipe, "status": "not started", "step": 0, "steps": spec.steps,
                   "val_n_way": spec.val_n_way,
                   "cpu_hours": 0.0, "best": None, "best_step": None, "val_step": [], "val_accuracy": []}
            if path.exists():
                ckpt = load_checkpoint(path, map_location="cpu")
                run.update(status="finished", step=ckpt["steps"], best=ckpt["metrics"]["val_accuracy"],
                           best_step=ckpt["metrics"]["best_step"], cpu_hours=ckpt["cpu_seconds"] / 3600)
            elif state_path_for(path).exists():
                ckpt = load_checkpoint(state_path_for(path), map_location="cpu")
                run.update(status="training", step=ckpt["step"], best_step=ckpt.get("best_step"),
                           best=ckpt.get("best_score") if ckpt.get("best_step") is not None else None,
                           cpu_hours=ckpt["cpu_seconds"] / 3600)
            else:
                ckpt = {}
            log = ckpt.get("log") or {}
            run.update(val_step=list(log.get("val_step", [])), val_accuracy=list(log.get("val_accuracy", [])))
            runs.append(run)
    return runs


def paper_runs_table(runs: list[dict] | None = None) -> str:
    """:func:`paper_runs` as a markdown table, the one ``docs/INSTRUCTORS.md`` shows (a test keeps it current).

    Args:
        runs: rows of :func:`paper_runs` (default: read them now).

    Returns:
        the table, one line per run, ending in a newline.
    """
    def spaced(n):  # 100 000, the docs' way
        return f"{n:,}".replace(",", " ")

    lines = ["| run | status | steps | CPU-hours | best meta-validation (ways) |", "|---|---|---|---|---|"]
    for r in paper_runs() if runs is None else runs:
        best = "none yet" if r["best_step"] is None else f"{r['best']:.1f}% at step {spaced(r['best_step'])}"
        best += f" ({r['val_n_way']}-way)"
        lines.append(f"| `{r['method']} --recipe {r['recipe']}` | {RUN_STATUS[r['status']]} | "
                     f"{spaced(r['step'])} of {spaced(r['steps'])} | {r['cpu_hours']:.1f} | {best} |")
    return "\n".join(lines) + "\n"


REPO_RESULTS = Path(__file__).resolve().parent.parent / "results"  # the committed records


def results_dir(directory=None) -> Path:
    """``directory``, else ``$FSLCOURSE_RESULTS``, else the repository's ``results/``."""
    if directory is None:
        directory = os.environ.get("FSLCOURSE_RESULTS") or REPO_RESULTS
    return Path(directory).expanduser()  # "~/results" as a shell would read it


def load_records(directory=None, skipped: list | None = None) -> list[dict]:
    """Every record of every ``*.json`` result file, each tagged with ``_file`` (the file's stem) and ``_index``.

    A JSON object without a ``records`` key is another kind of result (e.g. a cost table) and is
    left out; its name is appended to ``skipped`` when a list is given.

    Raises:
        ValueError: a file is not valid JSON, its ``records`` is not a list, or a record lacks
            ``method``, ``protocol`` or ``accuracy``; the message names the file and the fix.
    """
    directory = results_dir(directory)
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"results directory {directory} is a file; pass the folder that holds the result files")
    if not directory.is_dir() or not any(directory.glob("*.json")):
        what = "holds no result files (*.json)" if directory.is_dir() else "does not exist"
        raise ValueError(f"results directory {directory} {what}; run the notebooks or benchmarks/course_benchmark.py "
                         "first, or pass the right folder")
    records = []
    for path in sorted(directory.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON ({err}); re-run the notebook that writes it") from err
        if isinstance(data, dict) and "records" not in data:
            if skipped is not None:
                skipped.append(path.name)
            continue
        if not isinstance(data, dict) or not isinstance(data.get("records"), list):
            raise ValueError(f"{path} has no 'records' list; write it with fslcourse.results.save_results")
        for i, rec in enumerate(data["records"]):
            missing = [k for k in ("method", "protocol", "accuracy") if not isinstance(rec, dict) or k not in rec]
            if missing:
                raise ValueError(f"{path}: record {i} lacks {', '.join(missing)}; write records with "
                                 f"fslcourse.results.result_record")
            wrong = [f"{k}={rec.get(k)!r} (want {want})" for k, ok, want in (
                ("method", isinstance(rec["method"], str), "a name"),
                ("protocol", isinstance(rec["protocol"], dict), "a dict"),
                ("accuracy", rec["accuracy"] is None or _finite(rec["accuracy"]), "a number or null"),
                ("ci95", rec.get("ci95") is None or _finite(rec.get("ci95")), "a number or null"),
                ("episodes", rec.get("episodes") is None or (isinstance(rec.get("episodes"), int)
                                                            and not isinstance(rec.get("episodes"), bool)),
                 "a whole number"))
                if not ok]
            if wrong:
                raise ValueError(f"{path}: record {i} has {'; '.join(wrong)}; write records with "
                                 f"fslcourse.results.result_record")
            eps = rec.get("episode_accuracies")  # a NaN or a string among them: claims paired on nothing, or a TypeError
            bad = "" if eps is None else next((f"[{j}]={a!r}" for j, a in enumerate(eps) if not _finite(a)), "") \
                if isinstance(eps, list) else f" as a {type(eps).__name__}"
            if bad:
                raise ValueError(f"{path}: record {i} has episode_accuracies{bad} (want a list of finite numbers, "
                                 "percent); write records with fslcourse.results.result_record")
            if eps and rec.get("episodes") is not None and len(eps) != rec["episodes"]:
                # a paired claim would run over episodes the record does not say it measured
                raise ValueError(f"{path}: record {i} has {len(eps)} episode_accuracies for episodes="
                                 f"{rec['episodes']}; one per episode, or [] when not recorded (re-measure it)")
            protocol_key(rec["protocol"])  # validates n_way / n_shot
            records.append({**rec, "_file": path.stem, "_index": i, "_path": str(path)})
    return records


def method_label(record: dict) -> str:
    """The row's method name: augmented methods also say how many examples were generated per class, and a
    checkpoint of the paper's recipe (trained on the Vinyals split) is its own row, ``"NAME (paper recipe)"``; so is
    one of a paper's separate recipes (a record whose profile is ``paper-20way`` or ``paper-5way``): its cell is the
    paper row's, as the benchmark records it (profile ``paper``, ``recipe`` naming the separate one)."""
    n = record.get("n_generated")
    label = f"{record['method']} (+{n}/class)" if n else record["method"]
    profile = str(record.get("profile") or "")
    return label + " (paper recipe)" if profile == "paper" or profile.startswith("paper-") else label


def _priority(record: dict) -> tuple:
    """Which record wins a (method, protocol) cell: the benchmark's own run, then a record without a
    ``variant`` (the method's default), then more episodes, then the first record of a file."""
    return (record["_file"] == BENCHMARK_FILE, "variant" not in record, record.get("episodes") or 0,
            -record["_index"])


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _finite(value) -> bool:
    """Whether ``value`` is a number that means something: NaN or infinity gave a "nan ± nan" row and claims
    decided on nothing."""
    return _number(value) is not None and math.isfinite(value)


def is_meta_test(record: dict) -> bool:
    """Whether ``record`` measured the meta-test split (records written before the split was recorded
    say nothing and count as meta-test; ``"val"`` or any other split does not)."""
    return record["protocol"].get("split", "test") == "test"


def build_table(records: list[dict]) -> list[dict]:
    """One row per (method, protocol), sorted by protocol then method; only meta-test records
    (:func:`is_meta_test`) take part: a meta-validation number is never shown as a meta-test one. Rows of
    the augmentation sweep that down-weight (``weight`` != 1) or filter (``reject``) the generated examples
    are left out: an augmented row is plain augmentation. So are records of episodes built otherwise than the table's
    (``protocol["rotation"]``, ``benchmarks/episode_construction.py``).

    Row fields: ``method``, ``protocol``, ``accuracy``, ``ci95``, ``trainable_params``,
    ``train_seconds``, ``test_seconds_per_episode`` (``None`` when not recorded or
    recorded as 0), ``episodes``, ``profile``, ``published``, ``published_source``,
    ``source`` (the result file), ``index`` (the record's place in it), ``variant``, ``skipped`` (why a method could not run the protocol), ``recipe``
    (a paper's separate recipe that measured this cell, e.g. ``paper-5way``; ``None`` for the row's own checkpoint),
    ``published_other_model`` (``True`` when the paper made its figure with a separate model trained for this
    setting, e.g. a 20-way or a 5-shot model, and this cell's checkpoint was trained for another: the same test, so
    the figure stays beside it, but :func:`paper_gaps` does not grade it; :func:`published_by_other_model`),
    ``published_draw`` (the published figure's test characters, :data:`PUBLISHED_DRAW`: ``"lists"``, the Vinyals et
    al. lists this cell was measured on, or ``"random"``, the paper's own draw of 423; ``None`` without a figure).
    """
    best: dict[tuple[str, str], dict] = {}
    for rec in filter(is_meta_test, records):
        if rec.get("weight", 1) != 1 or rec.get("reject"):  # a down-weighted or filtered sweep row, not augmentation
            continue
        if rec["protocol"].get("rotation", "classes") != "classes":  # episodes built as another paper's code built
            continue  # them (benchmarks/episode_construction.py): not the table's protocol
        key = (method_label(rec), protocol_key(rec["protocol"]))
        if key not in best or _priority(rec) > _priority(best[key]):
            best[key] = rec
    rows = []
    for (method, protocol), rec in best.items():
        eval_s, episodes = _number(rec.get("eval_seconds")), _number(rec.get("episodes"))
        n_query = rec["protocol"].get("n_query")
        # a record that does not say its queries per class may not have had the paper's, where the figure needs them
        unknown = n_query is None and published_n_query(rec["method"], int(rec["protocol"]["n_shot"])) is not None
        pub, pub_source = (None, None) if unknown else published(rec["method"], protocol, n_query)
        base = rec["method"].split("+")[0]
        # the paper's figure comes from a model it trained for this very setting, and this cell's checkpoint was not
        other_model = pub is not None and published_by_other_model(base, rec.get("recipe") or rec.get("profile"),
                                                                   protocol)
        rows.append({
            "method": method, "protocol": protocol, "accuracy": _number(rec.get("accuracy")),
            "ci95": _number(rec.get("ci95")), "trainable_params": _number(rec.get("trainable_params")),
            "train_seconds": _number(rec.get("train_seconds")),
            "test_seconds_per_episode": eval_s / episodes if eval_s and episodes else None,
            "episodes": episodes, "n_query": rec["protocol"].get("n_query"), "profile": rec.get("profile"),
            "published": pub,
            "published_source": pub_source, "source": rec["_file"], "index": rec["_index"], "variant": rec.get("variant"),
            "skipped": rec.get("skipped"), "recipe": rec.get("recipe"), "published_other_model": other_model,
            "published_draw": PUBLISHED_DRAW.get(rec["method"]) if pub is not None else None,
        })
    order = {p: i for i, p in enumerate(PROTOCOLS + VINYALS)}
    return sorted(rows, key=lambda r: (order.get(r["protocol"], len(order)), r["protocol"], r["method"]))


def _fmt(value, spec: str) -> str:
    return MISSING if value is None else format(value, spec)


def _pub(value: float) -> str:
    """A published figure as printed in its paper: 96.0, 98.8, 97.68."""
    text = f"{value:.2f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def _accuracy(row: dict) -> str:
    """A table cell's ``ours ± CI``; ``skipped`` when the method could not run the protocol, else "—"."""
    return ("skipped" if row.get("skipped") else MISSING) if row["accuracy"] is None else \
        f"{row['accuracy']:.1f} ± {_fmt(row['ci95'], '.1f')}"


def _params(value) -> str:
    return MISSING if value is None else f"{int(value):,}"


def _profile(name: str | None) -> str:
    """The profile column: its name, ``(q)`` marking the quick profile."""
    return f"{name} (q)" if name == "quick" else name or MISSING


# what a mark after a published figure means (both tables)
MARKS = {"‡": "the paper's figure comes from a model it trained for this setting (its ways or its shots), and this "
              "row's checkpoint was trained for another (the same test, so the figure stays beside it, ungraded)",
         "§": "the paper's code drew its own 423 test characters at random from all 50 alphabets (the Vinyals et al. "
              "lists' sizes, other characters), and its episodes hold distinct characters (rotated per class in "
              "MAML's code, per episode in the Relation Network's, upright in Reptile's) where ours draw "
              "(character, rotation) classes; see fslcourse.report.PUBLISHED_DRAW"}
MARKDOWN_LEGEND = ("± is the 95% CI over the test episodes; test: episodes × queries per class; (q): the quick "
                   "profile; " + "; ".join(f"{mark}: {meaning}" for mark, meaning in MARKS.items()))


def _marks(row: dict) -> str:
    """A published figure's marks: ``‡`` (another model's figure, for a measured cell) and ``§`` (other test
    characters), each after a space; "" for neither."""
    other = " ‡" if row.get("published_other_model") and row["accuracy"] is not None else ""
    return other + (" §" if row.get("published_draw") == "random" else "")


def format_markdown(rows: list[dict]) -> str:
    """The table as GitHub markdown, with its legend below; missing fields show as "—", quick-profile rows are
    marked (q), a published figure of another model ‡ (:data:`MARKDOWN_LEGEND`)."""
    head = ("| method | protocol | accuracy (%) | test | published (%) | trainable params | train time (s) "
            "| test s/episode | profile | source |")
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        test = f"{r['episodes']:.0f} × {r['n_query']}" if r.get("episodes") and r.get("n_query") else MISSING
        pub = MISSING if r["published"] is None else f"{_pub(r['published'])} ({r['published_source']}){_marks(r)}"
        lines.append(f"| {r['method']} | {r['protocol']} | {_accuracy(r)} | {test} | {pub} | "
                     f"{_params(r['trainable_params'])} | {_fmt(r['train_seconds'], '.0f')} | "
                     f"{_fmt(r['test_seconds_per_episode'], '.3f')} | {_profile(r.get('recipe') or r['profile'])} | "
                     f"{r['source']} |")
    return "\n".join(lines) + "\n\n" + MARKDOWN_LEGEND + "\n"


def format_pivot(rows: list[dict], protocols=PROTOCOLS) -> str:
    """One line per method, one column per protocol: ``ours ± CI (published)``, then parameters and costs; a
    published figure carries the long table's marks ‡ and § (:data:`MARKDOWN_LEGEND`), explained under the table.

    The cost columns come from the method's own checkpoint, in the first protocol it measured (train time is the
    same for every protocol; the test time per episode is that protocol's). ``(q)`` marks the quick profile. A cell
    measured with a paper's separate recipe (``paper-5way``, ``paper-20way``: the paper trains a model for that
    setting) is marked ``†``, and a line under the table names that checkpoint and its train time.
    """
    by_method: dict[str, dict[str, dict]] = {}
    for r in rows:
        by_method.setdefault(r["method"], {})[r["protocol"]] = r
    head = ["method", *protocols, "trainable params", "train time (s)", f"test s/episode ({protocols[0]})", "profile"]
    lines, notes = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)], []
    for method, cells in by_method.items():
        out = []
        for p in protocols:
            r = cells.get(p)
            if r is None:
                out.append(MISSING)
                continue
            out.append(_accuracy(r) + ("" if r["published"] is None else f" ({_pub(r['published'])}{_marks(r)})")
                       + (" †" if r.get("recipe") else ""))
            if r.get("recipe"):
                notes.append(f"† {method}, {p}: measured with its paper's separate model, recipe `{r['recipe']}` "
                             f"(train time {_fmt(r['train_seconds'], '.0f')} s)")
        own = [cells[p] for p in protocols if p in cells and not cells[p].get("recipe")]
        elsewhere = [c for c in cells.values() if not c.get("recipe")]  # its own model, measured on other protocols
        ref = (own or elsewhere or [cells.get(protocols[0]) or next(iter(cells.values()))])[0]
        test_cost = cells.get(protocols[0], {}).get("test_seconds_per_episode")
        out += [_params(ref["trainable_params"]), _fmt(ref["train_seconds"], ".0f"), _fmt(test_cost, ".3f"),
                _profile(ref["profile"])]
        lines.append(f"| {method} | " + " | ".join(out) + " |")
    shown = {m for r in rows if r["protocol"] in protocols and r["published"] is not None for m in _marks(r).split()}
    notes += [f"{mark} {meaning}" for mark, meaning in MARKS.items() if mark in shown]
    return "\n".join(lines + [part for note in notes for part in ("", note)]) + "\n"  # a paragraph per note


def stale_records(records: list[dict], checkpoints=None) -> list[str]:
    """``FILE[i] (NAME.pt)`` for each meta-test record that measured a checkpoint file since replaced in
    ``checkpoints`` (default: the package's): its sha256 is not the file's now (retrained, say), so its row
    shows the old model's figure until it is measured again."""
    return [f"{rec['_file']}[{rec['_index']}] ({name})" for rec, name in _stale(records, checkpoints)]


def _stale(records: list[dict], checkpoints=None) -> list[tuple[dict, str]]:
    """``(record, checkpoint file name)`` for each file behind a meta-test record that has changed since."""
    from .io import file_source
    from .pretrained import CHECKPOINT_DIR

    folder, now, out = Path(checkpoints or CHECKPOINT_DIR), {}, []

    def files(source):  # every checkpoint behind a record: an ensemble's members, an augmented row's generator
        own = [f for m in source.get("members") or [] for f in files(m or {})] or \
            ([source] if source.get("file") and source.get("sha256") else [])
        return own + files(source["generator"]) if isinstance(source.get("generator"), dict) else own

    for rec in filter(is_meta_test, records):
        for src in files(rec.get("checkpoint") or {}):
            path = folder / src["file"]
            if path.is_file() and now.setdefault(path, file_source(path)["sha256"]) != src["sha256"]:
                out.append((rec, src["file"]))
    return out


def report(directory=None, fmt: str = "markdown", out=None) -> str:
    """Load the records, build the table and render it as ``"markdown"`` or ``"json"``; write ``out`` atomically."""
    if fmt not in ("markdown", "json"):
        raise ValueError(f"format={fmt!r} is not known; use 'markdown' or 'json'")
    if out is not None:
        from .io import check_writable

        check_writable(out, "the report file")  # before reading anything
    skipped: list[str] = []
    records = load_records(directory, skipped)
    if skipped and len(skipped) == len(list(results_dir(directory).glob("*.json"))):
        # every file was another kind of result: an empty table, exit 0, looked like a report
        raise ValueError(f"results directory {results_dir(directory)} holds no result records (not record files: "
                         f"{', '.join(skipped)}); pass the folder that holds them, e.g. results/")
    if not records:  # every record file is empty: an empty table, exit 0, looked like a report of nothing wrong
        raise ValueError(f"results directory {results_dir(directory)} holds no records (its result files' 'records' "
                         "lists are empty); run the notebooks or benchmarks/course_benchmark.py to fill them")
    rows = build_table(records)
    if fmt == "markdown":
        text = format_markdown(rows)
        if skipped:
            text += f"\nNot record files (left out): {', '.join(skipped)}\n"
        not_test = [f"{r['_file']}[{r['_index']}] ({r['protocol'].get('split')})" for r in records
                    if not is_meta_test(r)]
        if not_test:
            text += f"\nNot meta-test records (left out): {', '.join(not_test)}\n"
        stale = stale_records(records)
        if stale:
            text += (f"\nMeasured a checkpoint that has changed since (its row shows the old model; measure it "
                     f"again): {', '.join(stale)}\n")
    else:  # each row says which checkpoints behind it have changed since it was measured ([] when none)
        changed: dict[tuple[str, int], list[str]] = {}
        for rec, name in _stale(records):
            changed.setdefault((rec["_file"], rec["_index"]), []).append(name)
        rows = [{**r, "stale": changed.get((r["source"], r["index"]), [])} for r in rows]
        text = json.dumps(rows, indent=1, ensure_ascii=False) + "\n"
    if out is not None:
        from .io import _atomic

        _atomic(out, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return text


# ---------------------------------------------------------------------------------------------
# Claims from the literature, each checked against the records (data-driven: add a row to CLAIMS).

@dataclass(frozen=True)
class Claim:
    """A claim, where it comes from, the result files it needs and how to check it.

    ``check(records_by_file) -> (what we measured, held)`` with ``held`` True, False, None (unclear) or
    :data:`NOT_MEASURED` (the files exist but lack the records the claim needs).
    """

    text: str
    source: str
    files: tuple[str, ...]
    check: Callable[[dict], tuple[str, bool | None | str]]


def _find(records, method, protocol, **fields):
    for rec in records:
        if rec.get("accuracy") is not None and rec["method"] == method and \
                protocol_key(rec["protocol"]) == protocol and all(rec.get(k) == v for k, v in fields.items()):
            return rec
    return None


def paired(a: dict, b: dict) -> tuple[float, float] | None:
    """``a - b`` in points with its paired 95% half-width, when both records measured the same episodes
    (same protocol, episode seed and count, per-episode accuracies recorded, and the same ``episodes_sha256``
    where both have one); else ``None``."""
    keys = ("n_way", "n_shot", "n_query", "within_alphabet", "split", "split_protocol", "episode_seed")
    if any(a["protocol"].get(k) != b["protocol"].get(k) for k in keys):
        return None
    from .evaluate import same_episodes

    if not same_episodes(a.get("episodes_sha256"), b.get("episodes_sha256")):
        return None  # e.g. upright characters against rotated ones: the protocol is the same, the episodes are not
    return paired_episodes(a.get("episode_accuracies"), b.get("episode_accuracies"))


def paired_episodes(acc_a: list[float] | None, acc_b: list[float] | None) -> tuple[float, float] | None:
    """``(mean, 95% half-width)`` of the per-episode differences ``acc_a − acc_b`` (two lists over the same
    episodes, in the same order); ``None`` when either is missing, their lengths differ or there is one episode."""
    from .evaluate import mean_ci95

    if not acc_a or not acc_b or len(acc_a) != len(acc_b) or len(acc_a) < 2:
        return None
    return mean_ci95([x - y for x, y in zip(acc_a, acc_b)])


def verdict(diff: float, ci: float, margin: float = 0.0) -> bool | None:
    """The rule every claim uses: ``True`` when the interval ``diff ± ci`` lies above ``margin``, ``False`` when
    it lies below, ``None`` ("unclear") when it contains the margin (an interval touching it contains it)."""
    return True if diff - ci > margin else (False if diff + ci < margin else None)


def budget(record: dict) -> tuple[int | None, int | None]:
    """``(training steps, backbone width)`` of the checkpoint a record measured (``None`` where unrecorded)."""
    source = record.get("checkpoint") or {}
    config = record.get("config") or {}
    width = source.get("width", (config.get("backbone_kwargs") or {}).get("hidden", config.get("hidden")))
    return source.get("steps"), width


def _budget_text(name: str, record: dict) -> str:
    steps, width = budget(record)
    return f"{name} {'?' if steps is None else f'{steps:,}'} steps × {'?' if width is None else width} filters"


PROTOCOL_NAMES = {"5w1s": "5-way 1-shot", "20w1s-alphabet": "within-alphabet 20-way 1-shot"}
NOT_MEASURED = "not measured yet"  # a claim check's verdict when the records it needs are missing: not "unclear"


def _compare(by_file, a_name: str, b_name: str, margin: float, label: str, protocol: str = "5w1s"):
    """Decide "a - b > margin" by the paired 95% interval on the benchmark's episodes of ``protocol``, only
    at a matched budget (same training steps and backbone width); unclear when the interval contains
    the margin or the budgets differ."""
    recs, name = by_file[BENCHMARK_FILE], PROTOCOL_NAMES.get(protocol, protocol)
    a, b = _find(recs, a_name, protocol), _find(recs, b_name, protocol)
    if a is None or b is None:
        return f"the benchmark has no {name} {a_name} and {b_name} records", NOT_MEASURED
    return _decide(a, b, a_name, b_name, margin, label, name)


def _decide(a: dict, b: dict, a_name: str, b_name: str, margin: float, label: str, name: str):
    """``(text, held)``: "a - b > margin" by the paired 95% interval, only at a matched budget."""
    d = paired(a, b)
    if d is None:
        return f"{a_name} and {b_name} were not measured on the same recorded episodes", None
    diff, ci = d
    text = (f"{name}, same {a['episodes']} episodes: {a_name} {a['accuracy']:.1f}%, {b_name} {b['accuracy']:.1f}%, "
            f"paired {label} {diff:+.1f} ± {ci:.1f} points")
    if budget(a) != budget(b) or None in budget(a):
        return text + f"; budgets differ ({_budget_text(a_name, a)}; {_budget_text(b_name, b)}), so no verdict", None
    held = verdict(diff, ci, margin)
    return text + f" at a matched budget ({_budget_text('both', a)})", held


def _difference(a_name: str, b_name: str, margin: float, label: str):
    """The claim check "``a_name`` − ``b_name`` > ``margin``" on the benchmark's 5-way 1-shot episodes (:func:`_compare`)."""
    return lambda by_file: _compare(by_file, a_name, b_name, margin, label)


def _learning_curves(by_file) -> dict:
    """``{method: [(tasks, accuracy), ...]}`` from a result file's ``learning_curve`` section, if any."""
    for recs in by_file.values():
        data = json.loads(Path(recs[0]["_path"]).read_text())
        curves = data.get("learning_curve", {}).get("curves") if isinstance(data.get("learning_curve"), dict) else None
        if curves:
            return {m: [(p["tasks"], p["accuracy"]) for p in c.get("points", []) if "note" not in p]
                    for m, c in curves.items()}
    return {}


def _mtl_fewer_tasks(by_file):
    recs = [r for f in ("06_mtl", "06_mtl_ablation") for r in by_file.get(f, [])]
    mtl = [r for r in recs if r["method"].startswith("mtl") and "tasks_seen" in r]
    maml = [r for r in recs if r["method"] == "maml" and "tasks_seen" in r]
    curves = _learning_curves({f: by_file[f] for f in ("06_mtl", "06_mtl_ablation") if f in by_file})
    if (not mtl or not maml) and "mtl" in curves and "maml" in curves:
        first = next(((t, a) for t, a in curves["mtl"] if t > 0), None)
        if first is None:
            return "the MTL learning curve has no point after meta-training started", None
        start = {m: next((a for t, a in curves[m] if t == 0), None) for m in ("mtl", "maml")}
        reached = [t for t, a in curves["maml"] if a >= first[1]]
        if not reached:
            best = max(curves["maml"], key=lambda p: p[1])
            text = (f"MTL: {first[1]:.1f}% after {first[0]} tasks; MAML never reached it on its curve "
                    f"(best {best[1]:.1f}% after {best[0]} tasks)")
        else:
            text = (f"MTL: {first[1]:.1f}% after {first[0]} tasks; MAML needed {reached[0]} tasks to reach it "
                    f"({reached[0] / first[0]:.0f}x more)")
        if start["mtl"] is not None and start["maml"] is not None and start["mtl"] > start["maml"] + 10:
            # a head start bought by phase-1 pre-training, which counting meta-training tasks leaves out
            return (text + f"; but MTL starts at {start['mtl']:.1f}% after 0 tasks (MAML {start['maml']:.1f}%): "
                    "its phase-1 pre-training is not counted, so the budgets are not matched and there is no verdict"), None
        # points of a curve carry no per-episode accuracies: no paired interval, so no verdict either way
        return text + "; the curves' points have no paired intervals, so there is no verdict", None
    if not mtl or not maml:
        return "the records do not say how many meta-training tasks MTL and MAML saw ('tasks_seen')", NOT_MEASURED
    a, b = max(mtl, key=lambda r: r["accuracy"]), max(maml, key=lambda r: r["accuracy"])
    # the best of each is a selection, and fewer tasks at a lower accuracy is no matched budget: no verdict
    return (f"MTL {a['accuracy']:.1f}% after {a['tasks_seen']} tasks vs MAML {b['accuracy']:.1f}% "
            f"after {b['tasks_seen']} tasks; not a paired comparison at a matched budget, so no verdict"), None


def _augmentation_helps(files):
    """Plain augmentation: generated support examples with the real ones' weight (no down-weighting, no
    rejection), the best 5-way 1-shot paired gain over every generator and number of samples tried.

    Picking the best of n settings on the same test episodes favours luck, so the verdict uses the
    Bonferroni-corrected interval (each interval at level 1 - 0.05 / n: jointly 95% for all n settings)."""
    def check(by_file):
        recs = [r for f in files for r in by_file.get(f, []) if r.get("paired_difference") is not None
                and r.get("paired_ci95") is not None  # a difference without its interval decides nothing
                and protocol_key(r["protocol"]) == "5w1s" and r.get("weight", 1) == 1 and not r.get("reject")]
        if not recs:
            return "no paired 5-way 1-shot augmentation records", NOT_MEASURED
        best = max(recs, key=lambda r: r["paired_difference"])
        widen = NormalDist().inv_cdf(1 - 0.025 / len(recs)) / NormalDist().inv_cdf(0.975)
        diff, ci = best["paired_difference"], best["paired_ci95"] * widen
        held = True if verdict(diff, ci) else (  # "no" only if no setting's corrected interval reaches 0
            False if all(verdict(r["paired_difference"], r["paired_ci95"] * widen) is False for r in recs) else None)
        return (f"best 5-way 1-shot gain: {diff:+.1f} ± {best['paired_ci95']:.1f} points "
                f"({method_label(best)}, paired, the best of {len(recs)} settings tried; ± {ci:.1f} once "
                f"corrected for picking the best of {len(recs)})"), held
    return check


def _beats(method: str, baseline: str, label: str):
    """``method`` against ``baseline`` trained on the same recipe (same episodes, steps and seed), decided on
    5-way 1-shot; the within-alphabet 20-way 1-shot comparison is reported beside it. One training run each:
    the interval covers the test episodes, not the training seed."""
    def check(by_file):
        text, held = _compare(by_file, method, baseline, 0.0, label)
        other, _ = _compare(by_file, method, baseline, 0.0, label, "20w1s-alphabet")
        return f"{text}; {other}", held
    return check


SYNTHESIS_FILE = "10_learning_to_generate"
# every result file of notebooks 07-09 with plain augmentation rows, the 600-episode re-measurement too: the best-of
# correction of the first augmentation claim counts every setting tried, on each file's own episodes
AUGMENTATION_FILES = ("07_vae_augmentation", "07_vae_augmentation_600", "07_augmentation_sweep", "08_gan_augmentation",
                      "09_diffusion_augmentation")


def _synthesis_helps(by_file):
    """ProtoNet meta-trained on five alphabets with recombined synthetic characters against the same recipe
    without them (records ``variant`` ``minimal-synthetic`` and ``minimal``), decided on 5-way 1-shot."""
    recs, out = by_file[SYNTHESIS_FILE], []
    for protocol in ("5w1s", "20w1s-alphabet"):
        a, b = (_find(recs, "protonet", protocol, variant=v) for v in ("minimal-synthetic", "minimal"))
        if a is None or b is None:
            return f"{SYNTHESIS_FILE} has no {protocol} records of both minimal recipes", NOT_MEASURED
        out.append(_decide(a, b, "with synthetic classes", "without", 0.0, "gain (with − without)",
                           PROTOCOL_NAMES.get(protocol, protocol)))
    return f"{out[0][0]}; {out[1][0]}", out[0][1]


def _within_alphabet_harder(by_file):
    recs = by_file[BENCHMARK_FILE]
    pairs = [(r, _find(recs, r["method"], "20w1s")) for r in recs
             if protocol_key(r["protocol"]) == "20w1s-alphabet" and r.get("accuracy") is not None]
    pairs = [(a, b) for a, b in pairs if b is not None]
    if not pairs:
        return "the benchmark has no method with both 20-way 1-shot protocols", NOT_MEASURED
    if any(r.get("ci95") is None for pair in pairs for r in pair):
        return "a 20-way 1-shot record has no interval, so the drops cannot be judged", None
    drops = [b["accuracy"] - a["accuracy"] for a, b in pairs]
    margins = [b["accuracy"] - a["accuracy"] - a["ci95"] - b["ci95"] for a, b in pairs]
    # the other way round: every method scores higher within an alphabet, beyond both intervals
    against = [a["accuracy"] - b["accuracy"] - a["ci95"] - b["ci95"] for a, b in pairs]
    held = True if min(margins) > 0 else (False if min(against) > 0 else None)
    return (f"20-way 1-shot within an alphabet is {min(drops):.1f} to {max(drops):.1f} points lower than "
            f"random 20-way ({len(pairs)} methods; different episodes, so unpaired: every drop exceeds "
            f"both intervals: {'yes' if min(margins) > 0 else 'no'})"), held


CLAIMS: tuple[Claim, ...] = (
    Claim("Fine-tuning a pre-trained backbone is simpler and often as good as meta-learning",
          "Chen et al. 2019, arXiv:1904.04232; Dhillon et al. 2020, arXiv:1909.02729",
          (BENCHMARK_FILE,), _difference("finetune", "protonet", -1.0,  # as good as ProtoNet: above -1 point
                                         "difference (fine-tuning − ProtoNet; 'as good' = above −1)")),
    Claim("First-order MAML is nearly as accurate as second-order MAML", "Finn et al. 2017, arXiv:1703.03400",
          (BENCHMARK_FILE,), _difference("fomaml", "maml", -2.0, "difference (first-order − MAML; 'nearly' = above −2)")),
    Claim("MTL (scale & shift + hard tasks) needs far fewer meta-training tasks than MAML",
          "Sun et al. 2019, arXiv:1812.02391", ("06_mtl", "06_mtl_ablation"), _mtl_fewer_tasks),
    Claim("Plain generative augmentation (generated support examples) helps 1-shot classification",
          "Antoniou et al. 2017, arXiv:1711.04340 (DAGAN)",
          AUGMENTATION_FILES, _augmentation_helps(AUGMENTATION_FILES)),
    Claim("A hallucinator trained jointly with the classifier, for the few-shot loss, helps 1-shot classification",
          "Wang et al. 2018, arXiv:1801.05401", (BENCHMARK_FILE,),
          _beats("hallucinating-protonet", "protonet", "gain (with − without the hallucinator)")),
    Claim("Predicting a class's classifier weights from its support set beats using its mean embedding as the weights",
          "Qiao et al. 2018, arXiv:1706.03466; Gidaris & Komodakis 2018, arXiv:1804.09458", (BENCHMARK_FILE,),
          _beats("parameter-prediction", "cosine-prototypes", "gain (with − without the predictor)")),
    Claim("A fake (N+1)-th class fed by a task-conditioned generator sharpens a few-shot classifier (MetaGAN)",
          "Zhang et al. 2018, NeurIPS (MetaGAN)", (BENCHMARK_FILE,),
          _beats("metagan", "protonet", "gain (with − without the fake class)")),
    Claim("When meta-training data are scarce (five alphabets), synthetic classes help",
          "Lake et al. 2015, Science 350(6266) (the minimal setting)", (SYNTHESIS_FILE,), _synthesis_helps),
    Claim("A learned relation module beats a fixed cosine metric (Relation Net > Matching Nets)",
          "Sung et al. 2018, arXiv:1711.06025", (BENCHMARK_FILE,),
          _difference("relation", "matching", 0.0, "difference (Relation − Matching)")),
    Claim("Within-alphabet 20-way 1-shot is harder than random 20-way 1-shot",
          "Lake et al. 2015, Science 350(6266)", (BENCHMARK_FILE,), _within_alphabet_harder),
)


VERDICT_WORDS = {True: "yes", False: "no", None: "unclear"}  # and NOT_MEASURED, when the records are missing


def check_claims(records: list[dict], claims=CLAIMS) -> list[dict]:
    """Each claim with ``measured`` (text) and ``held`` (``"yes"``, ``"no"``, ``"unclear"`` or ``"not measured yet"``).

    A claim is "not measured yet" when none of its result files exists, or they lack the records it needs
    (never "unclear", which says the records exist and their interval holds the margin); a claim over several
    files is checked on those that exist.
    """
    by_file: dict[str, list[dict]] = {}
    for rec in filter(is_meta_test, records):
        by_file.setdefault(rec["_file"], []).append(rec)
    out = []
    for claim in claims:
        if not any(f in by_file for f in claim.files):
            measured, held = f"not measured yet ({', '.join(f + '.json' for f in claim.files)} missing)", None
            word = "not measured yet"
        else:
            measured, held = claim.check(by_file)
            word = held if held == NOT_MEASURED else VERDICT_WORDS[held]
        out.append({"claim": claim.text, "source": claim.source, "measured": measured, "held": word})
    return out


def format_claims(rows: list[dict]) -> str:
    """The claims as a markdown table."""
    lines = ["| claim | source | what we measured | held? |", "|---|---|---|---|"]
    lines += [f"| {r['claim']} | {r['source']} | {r['measured']} | {r['held']} |" for r in rows]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Matched-budget learning curves on the papers' protocol (benchmarks/learning_curves.py).

CURVES = "learning_curves"  # results/learning_curves/METHOD.json
CURVE_METHODS = ("protonet", "matching", "relation", "finetune", "maml", "fomaml", "reptile", "mtl")  # one curve each


def load_curves(directory: str | Path | None = None) -> dict[str, dict]:
    """``{method: record}`` of the matched-budget learning curves (``benchmarks/learning_curves.py``).

    Args:
        directory: the folder of ``METHOD.json`` files (default: the committed ``results/learning_curves``).

    Raises:
        ValueError: the folder does not exist (the message names it and the command that fills it).
    """
    folder = Path(directory) if directory is not None else REPO_RESULTS / CURVES
    if not folder.is_dir():
        raise ValueError(f"{folder} does not exist; run benchmarks/learning_curves.py --method NAME to fill it")
    curves = {}
    for path in sorted(folder.glob("*.json")):
        if path.stem == "pilot":
            continue
        try:  # a broken file gave a raw JSONDecodeError, one without its budget a KeyError in curve_claims
            rec = json.loads(path.read_text())
            test = rec["test"]
            ok = _number(rec["budget_cpu_seconds"]) is not None and isinstance(test["protocol"], dict) and \
                isinstance(test["episode_accuracies"], list)
        except (ValueError, KeyError, TypeError) as err:
            ok, why = False, f"{type(err).__name__}: {err}"
        else:
            why = "budget_cpu_seconds, test.protocol or test.episode_accuracies of the wrong type"
        if not ok:
            raise ValueError(f"{path} is not a learning-curve record ({why}); run benchmarks/learning_curves.py "
                             f"--method {path.stem} --overwrite to measure it again")
        curves[path.stem] = rec
    return curves


def _names(side: str | tuple[str, str]) -> tuple[str, ...]:
    return (side,) if isinstance(side, str) else tuple(side)


def _side_episodes(curves: dict[str, dict], side: str | tuple[str, str]) -> list[float]:
    """A claim side's per-episode accuracies: one curve's, or ``x − y`` episode by episode for a pair ``(x, y)``."""
    eps = [curves[n]["test"]["episode_accuracies"] for n in _names(side)]
    return eps[0] if len(eps) == 1 else [x - y for x, y in zip(*eps)]


CURVE_EPISODES = ("split", "n_way", "n_shot", "n_query", "n_episodes", "seed", "checkpoint")  # what makes two tests pair


def curve_difference(curves: dict[str, dict], a, b) -> tuple[float, float] | None:
    """``(mean, paired 95% half-width)`` of ``a − b`` in points on the curves' shared meta-test episodes, each
    method at the end of its budget; ``None`` unless all were measured on the same episodes at the same budget.

    ``a`` and ``b`` name a curve, or a pair ``(x, y)`` that stands for ``x − y`` episode by episode (a gap
    between two methods, so a claim can compare two gaps)."""
    from .evaluate import same_episodes

    recs = [curves.get(n) for n in _names(a) + _names(b)]
    if any(r is None for r in recs) or len({r["budget_cpu_seconds"] for r in recs}) > 1 or \
            len({tuple(r["test"]["protocol"].get(k) for k in CURVE_EPISODES) for r in recs}) > 1 or \
            len({len(r["test"]["episode_accuracies"]) for r in recs}) > 1 or \
            not same_episodes(*(r["test"].get("episodes_sha256") for r in recs)):
        return None
    return paired_episodes(_side_episodes(curves, a), _side_episodes(curves, b))


# (claim, source, a, b, margin): "a − b > margin" at the matched CPU budget, decided by the paired interval
CURVE_CLAIMS = (
    ("Metric-based methods learn more per CPU-second than second-order MAML (ProtoNet > MAML at a matched budget)",
     "Snell et al. 2017, arXiv:1703.05175; Finn et al. 2017, arXiv:1703.03400", "protonet", "maml", 0.0),
    ("First-order MAML is nearly as accurate as second-order MAML (within 2 points)",
     "Finn et al. 2017, arXiv:1703.03400", "fomaml", "maml", -2.0),
    ("A learned relation module beats a fixed cosine metric (Relation Net > Matching Nets)",
     "Sung et al. 2018, arXiv:1711.06025", "relation", "matching", 0.0),
    ("Reptile is nearly as accurate as first-order MAML (within 2 points)",
     "Nichol et al. 2018, arXiv:1803.02999", "reptile", "fomaml", -2.0),
    ("Fine-tuning a pre-trained backbone is as good as meta-learning (within 1 point of ProtoNet)",
     "Chen et al. 2019, arXiv:1904.04232", "finetune", "protonet", -1.0),
    ("Meta-transfer beats spending the same CPU on pre-training alone (MTL > fine-tuning, pre-training counted)",
     "Sun et al. 2019, arXiv:1812.02391", "mtl", "finetune", 0.0),
    ("The zeroing trick helps MAML (a zero head beats a meta-learned one)",
     "Kao et al. 2022, arXiv:2106.15367", "maml-zero-head", "maml", 0.0),
    ("With a zero head, first-order MAML is still nearly as accurate as MAML (within 2 points)",
     "Finn et al. 2017, arXiv:1703.03400; Kao et al. 2022, arXiv:2106.15367", "fomaml-zero-head", "maml-zero-head",
     -2.0),
    ("More inner steps help MAML at the same CPU budget (5 inner steps of the paper's α = 0.4 beat 1)",
     "Finn et al. 2017, arXiv:1703.03400", "maml-5-steps", "maml", 0.0),
    ("A zero head widens first-order MAML's gap to MAML: its first inner step leaves the body unchanged, so "
     "first-order MAML loses the path through the support images ((MAML − FOMAML) with a zero head > without)",
     "notebook 05 (the zero head's first inner step)", ("maml-zero-head", "fomaml-zero-head"), ("maml", "fomaml"), 0.0),
)


def curve_claims(curves: dict[str, dict], claims=CURVE_CLAIMS) -> list[dict]:
    """Each claim of ``claims`` decided at the curves' matched CPU budget, in :func:`check_claims`'s row format.

    ``held`` is ``"yes"`` when the paired interval of ``a − b`` lies above the margin, ``"no"`` when it lies below,
    ``"unclear"`` when it contains the margin, and ``"not measured yet"`` when a curve is missing.
    """
    rows = []
    for text, source, a, b, margin in claims:
        d = curve_difference(curves, a, b)
        label = {side: side if isinstance(side, str) else f"({side[0]} − {side[1]})" for side in (a, b)}
        if d is None:
            rows.append({"claim": text, "source": source, "held": "not measured yet",
                         "measured": f"no {label[a]} and {label[b]} curves at the same budget on the same episodes"})
            continue
        diff, ci = d
        names = list(dict.fromkeys(_names(a) + _names(b)))
        proto, budget = curves[names[0]]["test"]["protocol"], curves[names[0]]["budget_cpu_seconds"]
        each = "; ".join(f"{n} {curves[n]['test']['accuracy']:.1f}% ({curve_steps(curves[n])}, "
                         f"{curves[n]['train_cpu_seconds']:.0f} s measured)" for n in names)
        measured = (f"{proto['n_way']}-way {proto['n_shot']}-shot, {proto['split']} split, same {proto['n_episodes']} "
                    f"episodes, each given the steps {budget:.0f} training CPU-s buy at its pilot's cost per step: "
                    f"{each}; paired difference "
                    f"{label[a]} − {label[b]} {diff:+.1f} ± {ci:.1f} points")
        rows.append({"claim": text, "source": source, "measured": measured, "held": VERDICT_WORDS[verdict(diff, ci, margin)]})
    return rows


def curve_steps(record: dict) -> str:
    """The training steps of a learning-curve record, MTL's phase 1 (its pre-training) counted: ``"235 pre-training +
    152 meta-transfer steps"`` where the record has a ``phase1``, else ``"1,069 steps"`` (no parentheses: callers
    put it in theirs)."""
    steps = f"{record['recipe']['steps']:,}"
    if record.get("phase1"):
        return f"{record['phase1']['steps']:,} pre-training + {steps} meta-transfer steps"
    return f"{steps} steps"


def curves_figure(curves: dict[str, dict], names=None, title: str | None = None):
    """Meta-validation accuracy against training CPU-seconds (log axis), one line per method (those of ``names``,
    default all), with the 95% interval on each run's last point (every point's bars hid each other) and, for a run
    with a pre-training phase (MTL), a dotted line where its meta-transfer starts."""
    import matplotlib.pyplot as plt

    from .widgets.plotting import METHOD_COLOURS, class_colour, log_axis, method_style

    fig, ax = plt.subplots(figsize=(10, 4.6))
    chosen = [(n, curves[n]) for n in (names if names is not None else curves) if n in curves]
    for i, (name, rec) in enumerate(chosen):
        c = rec["curve"]
        # a method's colour and marker in every notebook (the marker tells lines apart without colour vision)
        style = method_style(name) if name in METHOD_COLOURS else {"color": class_colour(i), "marker": "o"}
        colour = style["color"]
        ax.plot(c["train_cpu_seconds"], c["val_accuracy"], "-", ms=4, **style, label=f"{name} ({curve_steps(rec)})")
        ax.errorbar(c["train_cpu_seconds"][-1], c["val_accuracy"][-1], yerr=c["val_ci95"][-1], fmt=style["marker"],
                    ms=6, capsize=3, color=colour)
        if rec.get("phase1"):  # the curve holds both phases: mark the last check of the pre-training
            n1 = rec["phase1"]["steps"]
            ax.axvline(max((t for s, t in zip(c["step"], c["train_cpu_seconds"]) if s <= n1), default=0), ls=":",
                       lw=1.5, color=colour, label=f"{name}: pre-training ends, meta-transfer starts (step {n1:,})")
    budget = {rec["budget_cpu_seconds"] for _, rec in chosen}
    xs = [x for _, rec in chosen for x in rec["curve"]["train_cpu_seconds"]]
    log_axis(ax, [t for t in (10, 20, 30, 50, 100, 200, 300, 500, 1000, 2000, 5000, 10_000)
                  if xs and min(xs) <= t <= max(xs)])
    ax.set(xlabel="training CPU-seconds, one thread (log scale; validation left out)",
           ylabel="meta-validation accuracy (%)",
           title=(title or "5-way 1-shot, Vinyals split: what each method learns per CPU-second")
           + (f" (budget {budget.pop():.0f} s each; 95% CI at each run's end)" if len(budget) == 1 else ""))
    ax.title.set_fontsize(11)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=9)  # beside the axes: no curve hidden
    fig.tight_layout()
    return fig
