"""Tests for ``python -m fslcourse doctor`` (fslcourse/doctor.py)."""
from __future__ import annotations

import sys

import pytest
import torch

from fslcourse import doctor

NAMES = ["python", "torch", "torchvision", "learn2learn", "ipywidgets", "ipycanvas", "jupyterlab", "nbval",
         "device", "profile", "numerics", "omniglot", "cache"]


@pytest.fixture
def no_data(tmp_path, monkeypatch):
    """An empty FSLCOURSE_DATA and an empty home and cache: Omniglot cannot be found."""
    empty = tmp_path / "data"
    empty.mkdir()
    monkeypatch.setenv("FSLCOURSE_DATA", str(empty))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("FSLCOURSE_CACHE", raising=False)
    return empty


@pytest.fixture
def fake_data(no_data):
    """FSLCOURSE_DATA holding the two Omniglot folders, one character with two drawings in each."""
    from PIL import Image

    for part in ("images_background", "images_evaluation"):
        char = no_data / "omniglot" / part / "Alphabet" / "character01"
        char.mkdir(parents=True)
        for k in range(2):
            Image.new("1", (10, 10), 1).save(char / f"{k}.png")
    return no_data / "omniglot"


@pytest.fixture(autouse=True)
def cpu_quick(monkeypatch):
    monkeypatch.setenv("FSLCOURSE_DEVICE", "cpu")


def by_name(checks):
    return {check.name: check for check in checks}


def test_report_has_every_check_in_order(fake_data):
    checks = doctor.report()  # then one line per committed unfinished run
    assert [check.name for check in checks] == NAMES + ["unfinished"] * len(doctor.check_runs())
    for check in checks:
        assert check.status in {"ok", "FAIL", "warn"}
        assert check.ok == (check.fix == ""), check


def test_installed_pieces_are_ok_with_their_versions(fake_data):
    checks = by_name(doctor.report())
    for name in ("python", "torch", "torchvision", "learn2learn", "ipywidgets", "ipycanvas", "jupyterlab"):
        assert checks[name].status == "ok", checks[name]
    assert checks["torch"].detail == torch.__version__
    assert checks["python"].detail.startswith(".".join(map(str, sys.version_info[:3])))
    assert checks["device"].detail.startswith("cpu")
    assert checks["profile"].detail == "cpu: the notebooks' quick profile (their default) suits it"
    assert checks["omniglot"].detail == str(fake_data)


def test_main_exits_0_when_everything_essential_is_there(fake_data, capsys):
    assert doctor.main([]) == 0
    out = capsys.readouterr().out
    assert "Everything essential is here." in out
    assert str(fake_data) in out


def test_missing_omniglot_fails_with_the_fix(no_data, capsys):
    check = by_name(doctor.report())["omniglot"]
    assert (check.ok, check.status) == (False, "FAIL")
    assert "not found" in check.detail and str(no_data / "omniglot") in check.detail
    assert "FSLCOURSE_DATA" in check.fix and "python -m fslcourse download" in check.fix
    assert doctor.main([]) == 1
    out = capsys.readouterr().out
    assert "FAIL  omniglot" in out and "-> " + doctor.DATA_FIX in out and "Missing: omniglot." in out


def test_learn2learn_not_importable_points_to_make_setup(fake_data, monkeypatch):
    monkeypatch.setitem(sys.modules, "learn2learn", None)  # makes `import learn2learn` raise ImportError
    check = by_name(doctor.report())["learn2learn"]
    assert check.status == "FAIL" and "not importable" in check.detail
    assert "make setup" in check.fix and "builds learn2learn from source" in check.fix
    assert doctor.main([]) == 1


def test_missing_optional_package_only_warns(fake_data, monkeypatch):
    monkeypatch.setitem(sys.modules, "nbval", None)
    check = by_name(doctor.report())["nbval"]
    assert check.status == "warn" and check.fix
    assert doctor.main([]) == 0


def test_numerics_are_named_and_a_bad_value_fails_with_the_fix(fake_data, monkeypatch):
    monkeypatch.delenv("FSLCOURSE_NUMERICS", raising=False)
    assert by_name(doctor.report())["numerics"].detail.startswith("native (default")
    monkeypatch.setenv("FSLCOURSE_NUMERICS", "portable")
    assert by_name(doctor.report())["numerics"].detail.startswith("portable (FSLCOURSE_NUMERICS)")
    monkeypatch.setenv("FSLCOURSE_NUMERICS", "exact")
    check = by_name(doctor.report())["numerics"]
    assert check.status == "FAIL" and "'exact' is not known" in check.detail and "native, portable" in check.fix


def test_the_profile_check_reads_no_variable_nothing_else_reads(fake_data, monkeypatch):
    """It checked FSLCOURSE_PROFILE, which no notebook or command reads: 'full' there was reported as in use while
    setup() ran quick, and an unknown value failed the doctor."""
    monkeypatch.setenv("FSLCOURSE_PROFILE", "fastest")
    check = by_name(doctor.report())["profile"]
    assert check.ok and "FSLCOURSE_PROFILE" not in check.detail and "quick profile" in check.detail
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a GPU machine with FSLCOURSE_DEVICE=cpu (make test)
    assert by_name(doctor.report())["profile"].detail.startswith("cpu: the notebooks' quick profile")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_requested_without_gpu_fails_with_the_fix(fake_data, monkeypatch):
    monkeypatch.setenv("FSLCOURSE_DEVICE", "cuda")
    check = by_name(doctor.report())["device"]
    assert check.status == "FAIL" and "FSLCOURSE_DEVICE" in check.fix


def test_format_report_lists_fixes_under_failures():
    checks = [doctor.Check("torch", True, "2.14.1"), doctor.Check("omniglot", False, "not found", "do X")]
    text = doctor.format_report(checks)
    assert text.splitlines() == [
        "fslcourse doctor",
        "  ok    torch     2.14.1",
        "  FAIL  omniglot  not found",
        "                  -> do X",
        "Missing: omniglot. Fix the lines marked FAIL, then run this again.",
    ]


@pytest.mark.parametrize("value", ["banana", "", "cuda:x"])
def test_a_bad_device_variable_fails_with_the_right_fix(fake_data, monkeypatch, value):
    monkeypatch.setenv("FSLCOURSE_DEVICE", value)
    check = by_name(doctor.report())["device"]
    assert check.status == "FAIL" and f"FSLCOURSE_DEVICE={value!r}" in check.detail
    assert check.fix == doctor.DEVICE_FIX and "make setup" not in check.fix
    assert "cpu, cuda, cuda:N, mps, auto" in check.fix


def test_empty_image_folders_are_not_all_ok(no_data, capsys):
    for part in ("images_background", "images_evaluation"):
        (no_data / "omniglot" / part).mkdir(parents=True)
    check = by_name(doctor.report())["omniglot"]
    assert check.status == "FAIL" and "images_background holds no drawings" in check.detail
    assert "python -m fslcourse download" in check.fix
    assert doctor.main([]) == 1
    assert "Everything essential is here" not in capsys.readouterr().out


def test_a_character_with_a_missing_drawing_fails(fake_data):
    next((fake_data / "images_evaluation" / "Alphabet" / "character01").glob("*.png")).unlink()
    (fake_data / "images_evaluation" / "Alphabet" / "character02").mkdir()
    for k in range(2):
        (fake_data / "images_evaluation" / "Alphabet" / "character02" / f"{k}.png").write_bytes(
            (fake_data / "images_background" / "Alphabet" / "character01" / "0.png").read_bytes())
    check = by_name(doctor.report())["omniglot"]
    assert check.status == "FAIL" and "character01 has 1 drawings but the others have 2" in check.detail


def test_the_fix_for_a_missing_drawing_is_one_that_download_carries_out(fake_data):
    """The fix said "re-download Omniglot with `python -m fslcourse download`", which skips a folder holding any PNG
    (it said "Omniglot is ready" and changed nothing): the folder must be deleted first."""
    from fslcourse.data.download import download_omniglot

    next((fake_data / "images_evaluation" / "Alphabet" / "character01").glob("*.png")).unlink()
    check = by_name(doctor.report())["omniglot"]
    assert check.status == "FAIL" and "has 1 drawings but the others have 2" in check.detail
    # nothing is fetched (the address does not exist): the damaged folder is kept as it is
    assert download_omniglot(fake_data.parent, url_template="file:///nonexistent/{name}.zip", progress=False) == fake_data
    assert "delete the images_background or images_evaluation folder that holds them" in check.fix


def test_an_empty_drawing_fails(fake_data):
    """A 0-byte PNG (an interrupted copy) passed: only the load, reading every drawing, found it."""
    (fake_data / "images_background" / "Alphabet" / "character01" / "1.png").write_bytes(b"")
    check = by_name(doctor.report())["omniglot"]
    assert check.status == "FAIL" and "1.png is empty (0 bytes" in check.detail


def test_the_image_cache_is_checked(fake_data, tmp_path, monkeypatch, capsys):
    from fslcourse.data import load_omniglot, omniglot

    monkeypatch.setenv("FSLCOURSE_CACHE", str(tmp_path / "cache"))
    check = by_name(doctor.report())["cache"]
    assert check.status == "ok" and "not built yet" in check.detail
    load_omniglot(download=False, progress=False)
    cache, problem = omniglot.cache_status(fake_data)
    assert problem is None and by_name(doctor.report())["cache"].detail == str(cache)
    cache.write_bytes(b"garbage")
    check = by_name(doctor.report())["cache"]
    assert check.status == "warn" and f"{cache} is corrupt" in check.detail and f"delete {cache}" in check.fix
    capsys.readouterr()
    assert doctor.main([]) == 0
    out = capsys.readouterr().out
    assert "warn  cache" in out and "Warnings: cache (see the lines marked warn)." in out
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    monkeypatch.setenv("FSLCOURSE_CACHE", str(blocker))
    check = by_name(doctor.report())["cache"]
    assert check.status == "warn" and "FSLCOURSE_CACHE" in check.fix


def test_an_unfinished_run_is_listed_with_the_command_that_continues_it(tmp_path, glyphs, ctrl_c_after_step):
    """A real interrupted run's state: its progress and its resume command; a state no recipe matches is a warning."""
    from types import SimpleNamespace

    from fslcourse.methods.protonet import ProtoNet
    from fslcourse.training import train

    data = SimpleNamespace(train=glyphs[0], val=glyphs[1], test=glyphs[2])
    with ctrl_c_after_step(ProtoNet, 3):
        _, result = train("protonet", "quick", data=data, out=tmp_path / "protonet-quick.pt", progress=False)
    assert result.stopped == "interrupted" and result.steps == 3
    (tmp_path / "protonet-quick.state.pt").rename(tmp_path / "protonet-lake.state.pt")  # another recipe's name
    (tmp_path / "protonet-quick.state.pt").write_bytes((tmp_path / "protonet-lake.state.pt").read_bytes())
    (tmp_path / "broken.state.pt").write_bytes(b"not a state")
    import torch  # a state without best_step: its KeyError emptied the whole doctor report
    torch.save({"step": 1, "recipe": {"steps": 2}, "cpu_seconds": 1.0}, tmp_path / "odd.state.pt")
    lines = {c.detail.split()[0].rstrip(":"): c for c in doctor.check_runs(tmp_path)}
    assert sorted(lines) == ["broken.state.pt", "odd", "protonet-lake", "protonet-quick"]
    assert lines["odd"].detail.startswith("odd: step 1 of 2 (50%), 0.0 CPU-hours so far, no meta-validation yet")
    quick = lines["protonet-quick"]
    assert quick.ok and quick.name == "unfinished" and not quick.essential
    assert quick.detail.startswith("protonet-quick: step 3 of 3,000 (0%), 0.0 CPU-hours so far, no meta-validation")
    assert quick.detail.endswith("; continue: python -m fslcourse train protonet --recipe quick --resume")
    assert not lines["protonet-lake"].ok and "no registered recipe matches it" in lines["protonet-lake"].detail
    assert not lines["broken.state.pt"].ok and lines["broken.state.pt"].fix.startswith("restore it (git checkout -- ")
    assert doctor.check_runs(tmp_path / "nothing-here") == []
    (tmp_path / "protonet-quick.pt").write_bytes(b"")  # a committed checkpoint beside a remake's state (step 3)
    remake = {c.detail.split()[0].rstrip(":"): c for c in doctor.check_runs(tmp_path)}["protonet-quick"]
    assert remake.ok and remake.detail.endswith("; continue the remake of protonet-quick.pt: python -m fslcourse "
                                                "train protonet --recipe quick --resume --overwrite")
    state = torch.load(tmp_path / "protonet-quick.state.pt", weights_only=True)
    torch.save({**state, "step": state["recipe"]["steps"]}, tmp_path / "protonet-quick.state.pt")  # every step done
    leftover = {c.detail.split()[0].rstrip(":"): c for c in doctor.check_runs(tmp_path)}["protonet-quick"]
    assert not leftover.ok and leftover.detail.endswith("; protonet-quick.pt is there: the run has finished")
    assert leftover.fix == f"remove the leftover state (git rm {tmp_path / 'protonet-quick.state.pt'}, or delete it)"
    # an earlier sitting's state beside the file that the same run, resumed from it, finished: a leftover too
    torch.save(state, tmp_path / "protonet-quick.state.pt")  # step 3 again
    log = {k: list(v) for k, v in state["log"].items() if isinstance(v, list)}
    finished = {"recipe": {**state["recipe"], "note": "a note edited since"}, "log": {
        **log, "step": log["step"] + [4, 5], "loss": log["loss"] + [0.5, 0.4], "stopped": "steps"}}
    torch.save(finished, tmp_path / "protonet-quick.pt")
    earlier = {c.detail.split()[0].rstrip(":"): c for c in doctor.check_runs(tmp_path)}["protonet-quick"]
    assert not earlier.ok and earlier.detail.endswith("; protonet-quick.pt is there: the run has finished")
    # not the file this run went on to write: its losses differ, it records another recipe (a remake after a
    # change that leaves the first losses alone), or it stopped early; the state is a remake's, as above
    for other in ({**finished, "log": {**finished["log"], "loss": [x + 1 for x in finished["log"]["loss"]]}},
                  {**finished, "recipe": {**finished["recipe"], "val_every": 2 * state["recipe"]["val_every"]}},
                  {**finished, "log": {**finished["log"], "stopped": "max_seconds"}}):
        torch.save(other, tmp_path / "protonet-quick.pt")
        line = {c.detail.split()[0].rstrip(":"): c for c in doctor.check_runs(tmp_path)}["protonet-quick"]
        assert line.ok and "continue the remake of protonet-quick.pt" in line.detail


def test_a_dagan_state_is_listed_with_the_gan_command_that_continues_it(tmp_path):
    """gan-RECIPE-LOSS.state.pt (one per DAGAN loss) was "no registered recipe matches it": gan is no method."""
    import torch

    from fslcourse.training.generators import dagan_recipe

    def state(stem, recipe, step):
        torch.save({"step": step, "recipe": recipe.as_dict(), "cpu_seconds": 36.0, "best_step": None},
                   tmp_path / f"{stem}.state.pt")

    state("gan-paper-wgan-gp", dagan_recipe("paper", "wgan-gp"), 2500)
    state("gan-lake-wgan-gp", dagan_recipe("paper", "wgan-gp"), 2500)  # no gan recipe 'lake'
    state("gan-full-standard", dagan_recipe("full", "standard").replace(steps=50), 10)  # another recipe's run
    lines = {c.detail.split()[0].rstrip(":"): c for c in doctor.check_runs(tmp_path)}
    assert lines["gan-paper-wgan-gp"].ok and lines["gan-paper-wgan-gp"].detail.endswith(
        "; continue: python -m fslcourse train gan --recipe paper --resume")
    for other in ("gan-lake-wgan-gp", "gan-full-standard"):
        assert not lines[other].ok and "no registered recipe matches it" in lines[other].detail
    # a remake of gan-quick.pt stopped in its second DAGAN: the first one's finished state is still needed
    quick = dagan_recipe("quick", "wgan-gp")
    state("gan-quick-wgan-gp", quick, quick.steps)
    (tmp_path / "gan-quick.pt").write_bytes(b"")
    line = {c.detail.split()[0].rstrip(":"): c for c in doctor.check_runs(tmp_path)}["gan-quick-wgan-gp"]
    assert line.ok and line.detail.endswith("; continue the remake of gan-quick.pt: python -m fslcourse train gan "
                                            "--recipe quick --resume --overwrite")


def test_a_committed_state_is_restored_by_its_path_from_the_repository_root(tmp_path, monkeypatch):
    """The fix said `git checkout -- NAME.state.pt`, a path git does not know from the repository root."""
    folder = tmp_path / "fslcourse" / "checkpoints"  # a stand-in repository: the real folder is never touched
    folder.mkdir(parents=True)
    (folder / "broken.state.pt").write_bytes(b"not a state")
    monkeypatch.setattr(doctor, "__file__", str(tmp_path / "fslcourse" / "doctor.py"))
    (check,) = doctor.check_runs(folder)
    assert check.fix == "restore it (git checkout -- fslcourse/checkpoints/broken.state.pt) or delete it"


def test_a_wrong_fslcourse_data_fails_and_names_the_copy_in_the_cache(fake_data, monkeypatch, tmp_path):
    """FSLCOURSE_DATA=/typo with a copy in the cache: the loader reads FSLCOURSE_DATA only, so doctor fails and
    names both the setting and the copy it could use instead."""
    cache_copy = tmp_path / "cache" / "fslcourse" / "data"
    cache_copy.parent.mkdir(parents=True)
    fake_data.parent.rename(cache_copy)  # the drawings now live in the user cache only
    monkeypatch.setenv("FSLCOURSE_DATA", str(tmp_path / "typo"))
    check = by_name(doctor.report())["omniglot"]
    assert check.status == "FAIL" and "FSLCOURSE_DATA=" in check.detail and "holds no Omniglot" in check.detail
    assert str(cache_copy / "omniglot") in check.detail and "unset it" in check.fix
    assert doctor.main([]) != 0


def test_an_unfinished_runs_best_score_is_a_percentage_on_its_validation_ways():
    """doctor said 'best meta-validation 81.9 at step 1,000': no unit, and not the 20 ways it was measured on."""
    from fslcourse.io import load_checkpoint
    from fslcourse.pretrained import CHECKPOINT_DIR

    shown = 0
    for check in doctor.check_runs():
        stem = check.detail.split(":")[0]
        state = load_checkpoint(CHECKPOINT_DIR / f"{stem}.state.pt")
        if state.get("best_step") is not None and not stem.startswith("gan-"):
            assert (f"best meta-validation {state['best_score']:.1f}% at step {state['best_step']:,} "
                    f"({state['recipe']['val_n_way']}-way)") in check.detail, check.detail
            shown += 1
    assert shown == len(list(CHECKPOINT_DIR.glob("*.state.pt"))), "every committed state here is a method's run"


def test_drawings_opens_every_drawing_and_names_one_cut_short(fake_data, capsys):
    """The listing checks pass a drawing cut short (its size is not 0): only `--drawings`, which decodes every one,
    finds it before the first load does."""
    drawing = fake_data / "images_evaluation" / "Alphabet" / "character01" / "1.png"
    assert doctor.main(["--drawings"]) == 0
    assert "all 4 drawings open" in capsys.readouterr().out
    drawing.write_bytes(drawing.read_bytes()[:40])
    assert by_name(doctor.report())["omniglot"].ok and "drawings" not in by_name(doctor.report())
    checks = doctor.report(drawings=True)
    assert [c.name for c in checks][len(NAMES) - 2:len(NAMES) + 1] == ["omniglot", "drawings", "cache"]
    check = by_name(checks)["drawings"]
    assert check.status == "FAIL" and check.detail.startswith("1 of 4 drawings cannot be read; the first: ")
    assert f"{drawing} is not a readable image" in check.detail and "python -m fslcourse download" in check.fix
    from fslcourse.cli import main as cli_main
    assert cli_main(["doctor", "--drawings"]) == 1
    assert "Missing: drawings." in capsys.readouterr().out


def test_drawings_are_not_opened_when_omniglot_is_missing(no_data):
    assert "drawings" not in by_name(doctor.report(drawings=True))
