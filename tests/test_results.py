"""result_record: the record says the split it measured and, within an alphabet, the alphabets left out."""
import pytest

from fslcourse.evaluate import evaluate
from fslcourse.methods import PixelPrototype
from fslcourse.results import result_record, save_results


def record(res, **kw):
    return result_record("pixel", res, config={}, seed=0, device="cpu", profile="quick", **kw)


def test_the_record_says_which_split_it_measured(glyphs):
    val = evaluate(PixelPrototype(), glyphs[1], 5, 1, 2, 3, seed=0)
    test = evaluate(PixelPrototype(), glyphs[2], 5, 1, 2, 3, seed=0)
    assert record(val)["protocol"]["split"] == "val"
    assert record(test)["protocol"]["split"] == "test"
    assert record(test, split="test")["protocol"]["split"] == "test"  # an explicit split that agrees
    with pytest.raises(ValueError, match="split='val' but the result measured the 'test' split; leave split= out"):
        record(test, split="val")  # a test figure is never recorded as another split, nor the other way round
    assert "alphabets_left_out" not in record(test)


def test_a_result_that_does_not_say_its_split_is_refused(glyphs):
    res = evaluate(PixelPrototype(), glyphs[2], 5, 1, 2, 3, seed=0)
    res.split = None
    with pytest.raises(ValueError, match="a result record must say which split it measured; pass split="):
        record(res)


def test_within_alphabet_records_list_the_alphabets_left_out():
    from fslcourse.data import make_glyph_split

    split = make_glyph_split(10, 4, seed=2, n_alphabets=4, name="test")  # styles of 3, 3, 2 and 2 classes
    res = evaluate(PixelPrototype(), split, 3, 1, 1, 3, seed=0, within_alphabet=True)
    rec = record(res)
    assert rec["protocol"]["within_alphabet"] and rec["alphabets_left_out"] == ["style2", "style3"]


def test_records_name_the_checkpoint_file_and_its_hash(glyphs, tmp_path):
    """A model loaded from a file carries its name and sha256 into every result and record; a model
    that was not loaded from a file records ``None``; an augmented result names the generator's file too."""
    import hashlib

    import torch

    from fslcourse.generative.augment import AugmentedClassifier, ModelGenerator
    from fslcourse.methods import ProtoNet
    from fslcourse.pretrained import load_method, save_method

    torch.manual_seed(0)
    path = save_method(ProtoNet(backbone_kwargs={"hidden": 8}), tmp_path / "p.pt", seed=0, profile="quick",
                       train_seconds=0.0)  # steps and cpu_seconds not recorded: None in the source
    model, _ = load_method(path, "cpu", expect="protonet")
    source = {"file": "p.pt", "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "steps": None, "cpu_seconds": None,
              "train_episodes": None, "selection": None, "width": 8, "split": None}
    res = evaluate(model, glyphs[2], 5, 1, 2, 3, seed=0)
    assert res.checkpoint == source and record(res)["checkpoint"] == source
    assert record(res)["episode_accuracies"] == [round(a, 3) for a in res.episode_accuracies]
    assert record(res)["protocol"]["batch_norm"] == "running"
    assert record(evaluate(PixelPrototype(), glyphs[2], 5, 1, 2, 3, seed=0))["checkpoint"] is None

    class Copy(torch.nn.Module):  # "generates" copies of the support: enough to carry a source through
        def generate(self, x, y, m, generator=None):
            return x.repeat_interleave(m, 0), y.repeat_interleave(m, 0)

    gen_source = {"file": "g.pt", "sha256": "0" * 64}
    aug = AugmentedClassifier(model, ModelGenerator(Copy(), source=gen_source), 1)
    rec = record(evaluate(aug, glyphs[2], 5, 1, 2, 3, seed=0))
    assert rec["checkpoint"] == {**source, "generator": gen_source}
    path.write_bytes(path.read_bytes() + b"\0")  # another file: another hash
    assert load_method(path, "cpu")[0].checkpoint_source["sha256"] != source["sha256"]


def test_saving_the_same_records_again_leaves_the_file_untouched(glyphs, tmp_path):
    """Re-running a notebook rewrites its result file only when a result changed, not for a new timing."""
    import json

    from fslcourse.results import cpu_name, save_results

    res = evaluate(PixelPrototype(), glyphs[2], 5, 1, 2, 3, seed=0)
    path = save_results("x", [record(res)], tmp_path)
    before = path.read_bytes()
    again = record(res)
    again["eval_seconds"] += 1.0  # another run, another timing: the same measurement
    assert save_results("x", [again], tmp_path) == path and path.read_bytes() == before
    noisy = record(res)
    noisy["accuracy"] *= 1 + 1e-9  # another CPU's rounding in the last digits: the same measurement
    assert save_results("x", [noisy], tmp_path) == path and path.read_bytes() == before
    elsewhere = record(res)
    assert elsewhere["versions"]["cpu"]  # the record says which CPU measured it ...
    elsewhere["versions"]["cpu"] = "Another CPU, AVX2"  # ... and another machine alone is the same measurement
    assert save_results("x", [elsewhere], tmp_path) == path and path.read_bytes() == before
    assert elsewhere["device"]["name"] == cpu_name()  # the device names the CPU too ...
    elsewhere["device"]["name"] = "x86_64"  # ... as the records written before did not: the same measurement
    assert save_results("x", [elsewhere], tmp_path) == path and path.read_bytes() == before
    old_record = record(res)
    del old_record["versions"]["cpu"]  # a record written before the CPU was recorded
    assert save_results("x", [old_record], tmp_path) == path and path.read_bytes() == before
    moved = record(res)
    moved["accuracy"] += 0.02  # one query of 5000 answered differently: a new result, written
    save_results("x", [moved], tmp_path)
    assert json.loads(path.read_text())["records"][0]["accuracy"] == moved["accuracy"]
    changed = record(evaluate(PixelPrototype(), glyphs[2], 5, 1, 2, 3, seed=1))  # other episodes: a new result
    save_results("x", [changed], tmp_path)
    assert json.loads(path.read_text())["records"][0]["protocol"]["episode_seed"] == 1


def test_cpu_name_says_the_processor_and_the_vector_instructions():
    import torch

    from fslcourse.results import cpu_name, versions

    name = cpu_name()
    assert name.endswith(", " + torch.backends.cpu.get_cpu_capability()) and len(name) > len(", AVX2")
    assert versions()["cpu"] == name


def test_a_run_on_other_episodes_is_refused_before_it_mixes_into_a_results_file(tmp_path):
    import json

    from fslcourse.results import check_same_episodes

    path = tmp_path / "r.json"
    check_same_episodes(path, 100, 0)  # no file yet: nothing to mix with
    rec = lambda n, seed=0, split="alphabet": {"episodes": n, "protocol": {"episode_seed": seed, "split_protocol": split}}
    path.write_text(json.dumps({"name": "r", "records": [rec(1000), rec(0), rec(200, split="vinyals")]}))
    check_same_episodes(path, 1000, 0, which=lambda r: r["protocol"]["split_protocol"] == "alphabet")
    with pytest.raises(ValueError, match=r"r.json holds records measured on 1000 episodes \(seed 0\); this run "
                                         r"measures 100 episodes \(seed 0\).*--results DIR.*--overwrite$"):
        check_same_episodes(path, 100, 0, which=lambda r: r["protocol"]["split_protocol"] == "alphabet")
    with pytest.raises(ValueError, match="1000 episodes .seed 0., 200 episodes .seed 0.; this run measures 1000 "
                                         "episodes .seed 1."):
        check_same_episodes(path, 1000, 1)
    check_same_episodes(path, 100, 0, overwrite=True)
    path.write_text("not json")
    with pytest.raises(ValueError, match="exists but is not a results file"):
        check_same_episodes(path, 100, 0)


def test_the_record_carries_the_results_numbers_field_by_field(glyphs):
    """Accuracy, interval, episodes and protocol as the result has them (1 shot, 3 queries: a swap shows), and the
    per-episode accuracies to 3 decimals (15 queries: thirds of a point, which 1 decimal would round)."""
    res = evaluate(PixelPrototype(), glyphs[2], 5, 1, 3, 10, seed=0)
    assert any(a != round(a, 1) for a in res.episode_accuracies)  # else the rounding check below checks nothing
    rec = record(res)
    assert (rec["accuracy"], rec["ci95"], rec["episodes"]) == (res.accuracy, res.ci95, 10) and res.ci95 > 0
    assert {k: rec["protocol"][k] for k in ("n_way", "n_shot", "n_query", "episode_seed")} == \
        {"n_way": 5, "n_shot": 1, "n_query": 3, "episode_seed": 0}
    assert rec["episode_accuracies"] == [round(a, 3) for a in res.episode_accuracies]
    assert rec["episodes_sha256"] == res.episodes_sha256


def test_saving_other_records_rewrites_the_file(glyphs, tmp_path):
    """A new record, a new field or other episodes (another digest, the same numbers) is a new file; another CPU's
    rounding (relative 1e-7, above 1e-6 in absolute terms at ~50%) is not."""
    import json

    from fslcourse.results import save_results

    first = record(evaluate(PixelPrototype(), glyphs[2], 5, 1, 2, 3, seed=0))
    second = record(evaluate(PixelPrototype(), glyphs[2], 5, 1, 2, 3, seed=1))
    path = save_results("x", [first], tmp_path)
    before = path.read_bytes()
    rounded = {**first, "accuracy": first["accuracy"] * (1 + 1e-7)}
    assert abs(rounded["accuracy"] - first["accuracy"]) > 1e-6
    save_results("x", [rounded], tmp_path)
    assert path.read_bytes() == before
    for records in ([first, second], [{**first, "variant": "b"}], [{**first, "episodes_sha256": "0" * 64}]):
        save_results("x", [first], tmp_path)  # each change against the one-record file
        save_results("x", records, tmp_path)
        assert json.loads(path.read_text())["records"] == records


def test_records_that_are_not_a_list_of_records_are_refused(glyphs, tmp_path):
    """save_results(name, record) wrote the record's fields as the file's records without a word, a list of
    EvalResults raised json's 'not JSON serializable', and a model as the method name did the same at saving."""
    from fslcourse.results import save_results

    res = evaluate(PixelPrototype(), glyphs[2], 5, 1, 2, 3, seed=0)
    with pytest.raises(ValueError, match=r"^records is a dict; pass a list of result_record\(\.\.\.\) dicts, e.g\. "
                                         r"\[record\]$"):
        save_results("x", record(res), tmp_path)
    with pytest.raises(ValueError, match=r"^records\[0\] is a EvalResult, not a record; make one with result_record"):
        save_results("x", [res], tmp_path)
    with pytest.raises(ValueError, match=r"^method is a PixelPrototype; a record names its method, e.g. 'protonet'"):
        result_record(PixelPrototype(), res, config={}, seed=0, device="cpu", profile="quick")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("name", ["x.json", "../x", "sub/x", "", ".", 7])
def test_save_results_refuses_a_name_that_is_not_a_plain_file_name(tmp_path, name):
    """'x.json' was written as x.json.json, '../x' outside the results folder."""
    with pytest.raises(ValueError, match="must be a file name without a folder or .json"):
        save_results(name, [], tmp_path / "results")
    assert not any(tmp_path.rglob("*.json"))


def test_records_of_other_episode_constructions_are_other_measurements(glyphs, tmp_path):
    """``append_record``: a record whose episodes were built another way (``protocol["rotation"]``) is added beside
    the default's, never taken for it and refused or replaced."""
    import json

    from fslcourse.data import ImageSplit
    from fslcourse.results import append_record

    s = glyphs[2]
    turned = ImageSplit(s.name, s.images, s.base_names, s.alphabets, (0, 1, 2, 3), s.protocol)
    path = tmp_path / "rows.json"
    for rotation in ("classes", "per-class", "upright"):
        res = evaluate(PixelPrototype(), turned, 3, 1, 1, 2, seed=0, rotation=rotation)
        append_record(record(res), path)
    records = json.loads(path.read_text())["records"]
    assert [r["protocol"].get("rotation") for r in records] == [None, "per-class", "upright"]
    with pytest.raises(ValueError, match="already holds this measurement"):  # the same construction again
        append_record(records[1], path)
