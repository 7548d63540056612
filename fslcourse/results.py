"""Result records: one stable JSON format for every number the course reports.

Notebooks and ``python -m fslcourse evaluate`` write these records; the
benchmark notebook reads them instead of recomputing.
"""
from __future__ import annotations

import json
import os
import platform
import re
from importlib import metadata
from pathlib import Path

import torch

PACKAGES = ("fslcourse", "torch", "torchvision", "learn2learn", "numpy", "pillow")  # pillow resizes every drawing


def cpu_name() -> str:
    """The CPU's model name and the vector instructions torch uses on it, e.g. ``"Intel(R) Xeon(R), AVX512"``.

    Recorded because CPU kernels round differently on different processors: the same recipe and seed give
    the same weights bit for bit on one machine, not on every machine (unless trained with portable numerics,
    :mod:`fslcourse.numerics`, when the capability reads ``DEFAULT``).
    """
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {torch.backends.cpu.get_cpu_capability()}"


def versions() -> dict:
    """Installed versions of the packages that shape the results (``None`` if absent), and the CPU."""
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    out["cpu"] = cpu_name()
    return out


def device_info(device) -> dict:
    """The device type and name: the GPU's on CUDA, else :func:`cpu_name`."""
    device = torch.device(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()  # cuda-ok: reads the device type, chooses nothing
    return {"type": device.type, "name": name}


SPLITS = ("train", "val", "test")


def result_record(method: str, result, *, config: dict, seed: int, device, profile: str,
                  train_seconds: float | None = None, extra: dict | None = None, split: str | None = None) -> dict:
    """One JSON-ready record for an :class:`~fslcourse.evaluate.EvalResult`.

    Fields: ``method``, ``protocol`` (n_way, n_shot, n_query, within_alphabet, split,
    split_protocol: ``"alphabet"`` or ``"vinyals"``, episode seed, batch_norm: the test-time BatchNorm
    statistics, ``"batch"`` meaning transductive), ``accuracy`` and ``ci95`` in percent, ``episodes``,
    ``train_seconds``, ``eval_seconds``, ``config``, ``seed``, ``profile``,
    ``versions``, ``device``, ``checkpoint`` (the result's ``{"file", "sha256", "steps", "cpu_seconds",
    "train_episodes", "selection", "width"}`` of the checkpoint it measured, with ``"generator"`` for augmented results; ``None`` for a model not
    loaded from a file) and ``episode_accuracies`` (percent, 3 decimals, in episode order: two records
    on the same episodes give a paired difference); with ``within_alphabet``, also ``alphabets_left_out``
    (the alphabets with fewer than ``n_way`` classes, which no episode could use). A result whose episodes were
    built otherwise than from the split's classes (``rotation``, :class:`~fslcourse.data.EpisodeSampler`) says how
    in ``protocol["rotation"]``; the default's records have no such key.

    ``split`` is the split the result measured: by default the result's own ``split``
    (``evaluate`` records it). The benchmark report only puts ``"test"`` records in its table.

    Raises:
        ValueError: the split is unknown: neither given nor recorded by the result.
    """
    if not isinstance(method, str) or not method:
        raise ValueError(f"method is a {type(method).__name__}; a record names its method, e.g. 'protonet' (the name "
                         "pretrained() takes)")
    measured = getattr(result, "split", None)
    if split is not None and measured is not None and split != measured:
        raise ValueError(f"split={split!r} but the result measured the {measured!r} split; leave split= out (the "
                         "result carries it) so that a validation figure never becomes a test row")
    split = split if split is not None else measured
    if not isinstance(split, str) or not split:
        raise ValueError(f"split={split!r}: a result record must say which split it measured; "
                         f"pass split= one of {', '.join(SPLITS)} (evaluate() results carry it)")
    record = {
        "format": 1,
        "method": method,
        "protocol": {"n_way": result.n_way, "n_shot": result.n_shot, "n_query": result.n_query,
                     "within_alphabet": result.within_alphabet, "split": split,
                     "split_protocol": getattr(result, "split_protocol", None), "episode_seed": result.seed,
                     "batch_norm": getattr(result, "batch_norm", None)},
        "accuracy": result.accuracy,
        "ci95": result.ci95,
        "episodes": result.n_episodes,
        "train_seconds": train_seconds,
        "eval_seconds": result.seconds,
        "config": config,
        "seed": seed,
        "profile": profile,
        "versions": versions(),
        "device": device_info(device),
        "checkpoint": getattr(result, "checkpoint", None),
        "episode_accuracies": [round(a, 3) for a in getattr(result, "episode_accuracies", None) or []],
        "episodes_sha256": getattr(result, "episodes_sha256", None),  # paired() needs the same episodes
    }
    if getattr(result, "rotation", "classes") != "classes":  # another test than the default's: the protocol says so
        record["protocol"]["rotation"] = result.rotation
    if result.within_alphabet:
        record["alphabets_left_out"] = list(getattr(result, "alphabets_left_out", None) or [])
    if extra:
        record.update(extra)
    return record


# Fields (dotted paths) that alone never rewrite a file: timings differ on every run, and another machine's
# name alone is not a new result.
VOLATILE = ("eval_seconds", "versions.cpu", "device.name")


def accuracy_record(method: str, result, ckpt: dict, device, extra: dict, config: dict | None = None) -> dict:
    """:func:`result_record` of a committed checkpoint's accuracy only: ``eval_seconds`` is ``None`` (the protocol
    benchmarks measure accuracies, not timings, and may run beside a training run).

    Args:
        method: the row's name; ``ckpt``: the checkpoint :func:`~fslcourse.pretrained.load_method` returned.
        extra: the record's own fields (``variant`` names its setting); ``config``: ``ckpt["config"]`` if ``None``.
    """
    rec = result_record(method, result, config=ckpt["config"] if config is None else config, seed=ckpt["seed"],
                        device=device, profile=ckpt.get("profile"), train_seconds=ckpt.get("train_seconds"),
                        extra=extra)
    rec["eval_seconds"] = None
    return rec


def _steady(records) -> list:
    """``records`` as JSON would store them, without the :data:`VOLATILE` fields."""
    out = json.loads(json.dumps(records))
    for record in out:
        for path in VOLATILE:
            *parents, key = path.split(".")
            node = record
            for p in parents:
                node = node.get(p) if isinstance(node, dict) else None
            if isinstance(node, dict):
                node.pop(key, None)
    return out


FLOAT_NOISE = 1e-6  # relative: another CPU's rounding moves float results in their last digits, not a new result


def _same(a, b) -> bool:
    """``a == b`` for JSON values, floats equal within a relative :data:`FLOAT_NOISE`."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        if isinstance(a, bool) or isinstance(b, bool) or not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
            return False
        return abs(a - b) <= FLOAT_NOISE * max(abs(a), abs(b), 1e-12)
    return a == b


def save_results(name: str, records: list[dict], directory=None):
    """Write a notebook's result records to ``results/<name>.json`` (atomic), for the benchmark report.

    ``$FSLCOURSE_RESULTS`` redirects the folder; ``make test`` points it at ``build/results`` so that
    running the notebooks under nbval never rewrites the committed records. A file whose records
    differ from ``records`` only in :data:`VOLATILE` fields (timings, the machine's name) or in float rounding
    (:data:`FLOAT_NOISE`, as between two CPU models) is left as it is, so re-running a notebook on the committed checkpoints leaves
    ``git status`` clean.
    """
    from .io import atomic_write_json

    if not isinstance(records, list):  # a lone record's keys, or a generator, would be written as the records
        raise ValueError(f"records is a {type(records).__name__}; pass a list of result_record(...) dicts, e.g. "
                         "[record]")
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise ValueError(f"records[{i}] is a {type(record).__name__}, not a record; make one with "
                             "result_record(method, result, ...) (fslcourse.results)")
    if not isinstance(name, str) or not re.fullmatch(r"[\w-]+", name):  # a folder or a suffix: another file
        raise ValueError(f"name={name!r} must be a file name without a folder or .json (letters, digits, _ and -), "
                         "e.g. '02_protonet': it is written as results/NAME.json")
    if directory is None:
        directory = os.environ.get("FSLCOURSE_RESULTS") or Path(__file__).resolve().parent.parent / "results"
    path = Path(directory).expanduser() / f"{name}.json"  # "~/results" as a shell would read it
    try:
        old = json.loads(path.read_text())
        if old.get("name") == name and _same(_steady(old.get("records")), _steady(records)):
            return path
    except (OSError, ValueError, AttributeError):  # missing or unreadable: write it
        pass
    return atomic_write_json({"name": name, "records": records}, path)


def check_same_episodes(path, episodes: int, seed: int, *, overwrite: bool = False, which=None) -> None:
    """Refuse, before any work, to write a run's records into a results file measured on other test episodes.

    A quick look (``--episodes 100``) merged into a committed 1000-episode file would replace some rows and
    leave the rest, so the table would compare rows on different episodes. ``which(record)`` picks the
    records this run would sit beside (default: all); skipped records (no episodes) never count.

    Raises:
        ValueError: naming the file, what it holds and the two ways out (``--results DIR``, ``--overwrite``).
    """
    path = Path(path)
    if overwrite or not path.exists():
        return
    try:
        records = json.loads(path.read_text())["records"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ValueError(f"{path} exists but is not a results file; move it away, or replace it with --overwrite") from None
    held = sorted({(r.get("episodes"), (r.get("protocol") or {}).get("episode_seed")) for r in records
                   if isinstance(r, dict) and r.get("episodes") and (which is None or which(r))}, key=str)
    if held and held != [(episodes, seed)]:
        kinds = ", ".join(f"{n} episodes (seed {s})" for n, s in held)
        raise ValueError(f"{path} holds records measured on {kinds}; this run measures {episodes} episodes "
                         f"(seed {seed}), and mixing them would compare rows on different episodes: write to "
                         "another folder with --results DIR, or replace the file's rows with --overwrite")


def _measurement(record: dict) -> tuple:
    """What makes two records the same measurement: the method and the checkpoint's recipe,
    the setting's name, the test (episodes, ways, shots, queries, seed, classes, how episodes were built) and, for an
    augmented record, the generator, its seed and the generated counts."""
    proto, augment = record.get("protocol") or {}, record.get("augment") or {}
    counts = tuple(r.get("n_generated") for r in record.get("by_n_generated") or []) or None
    return (record.get("method"), record.get("profile"), record.get("variant"), record.get("episodes"),
            *(proto.get(k) for k in ("n_way", "n_shot", "n_query", "episode_seed", "split")),
            bool(proto.get("within_alphabet")), augment.get("generator"), augment.get("generation_seed"), counts,
            proto.get("rotation", "classes"))


def _measurement_of(args, method: str) -> tuple:
    """:func:`_measurement` of the record ``evaluate`` will write for ``args``, known before the work."""
    augment = getattr(args, "augment", None)
    return (method, args.profile, getattr(args, "variant", None), args.episodes, args.n_way, args.n_shot,
            args.n_query, args.seed, args.split, bool(getattr(args, "within_alphabet", False)), augment,
            args.generation_seed if augment else None, tuple(args.n_generated or [5]) if augment else None,
            "classes")  # the command line builds its episodes the default way


def check_append(path) -> list[dict]:
    """The records of the results file ``path`` that ``--append`` adds to (``[]`` if it does not exist yet).

    Raises:
        ValueError: ``path`` holds something other than a results file (``{"name", "records": [...]}``).
    """
    path = Path(path)
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"--append: {path} is not a results file ({err}); give a new file, or one "
                         f"--append wrote") from None
    if not isinstance(data, dict) or not isinstance(data.get("records"), list):
        raise ValueError(f"--append: {path} holds no list of records (one record, written without --append?); "
                         "give a new file, or replace it with --overwrite and no --append")
    return data["records"]


def _held(records: list[dict], key: tuple, path, overwrite: bool = False) -> list[int]:
    """The indices of the records (of the results file ``path``) that are measurement ``key`` (:func:`_measurement`).

    Raises:
        ValueError: there is one and ``overwrite`` is false; the message names ``path`` and the record.
    """
    same = [i for i, r in enumerate(records) if isinstance(r, dict) and _measurement(r) == key]
    if same and not overwrite:
        raise ValueError(f"--append: {path} already holds this measurement (record {same[0] + 1}); pass --overwrite "
                         "to replace it")
    return same


def check_not_recorded(args, method: str) -> None:
    """Before the work: refuse an ``evaluate --json FILE --append`` whose measurement (:func:`_measurement`) FILE
    already holds, unless ``--overwrite``."""
    if getattr(args, "json", None) is None or not getattr(args, "append", False) or getattr(args, "overwrite", False):
        return
    _held(check_append(args.json), _measurement_of(args, method), args.json)


def append_record(record: dict, path, overwrite: bool = False):
    """Add ``record`` to the results file ``path`` (atomic; created as ``{"name": its stem, "records": [...]}``): the
    file of several measurements that one command writes one at a time. A record there of the same measurement
    (:func:`_measurement`) is replaced only with ``overwrite``."""
    from .io import atomic_write_json

    path = Path(path)
    records = check_append(path)
    same = _held(records, _measurement(record), path, overwrite)
    records = [r for i, r in enumerate(records) if i not in same] + [record]
    return atomic_write_json({"name": path.stem, "records": records}, path)


def write_record(record: dict, args) -> None:
    """``evaluate --json``: write ``record`` (with ``--variant``) to ``args.json``, or add it to that results file
    (``--append``), and say so."""
    from .io import atomic_write_json

    if getattr(args, "variant", None) is not None:
        record["variant"] = args.variant
    if getattr(args, "append", False):
        append_record(record, args.json, overwrite=getattr(args, "overwrite", False))
        print(f"added the record to {args.json}")
    else:
        atomic_write_json(record, args.json)
        print(f"wrote {args.json}")
