"""Faults during `python -m fslcourse train`: Ctrl-C and a kill never touch the target file, and the run resumes
to exactly the weights of a run that was never interrupted."""
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

ARGS = ["train", "fomaml", "--recipe", "quick", "--steps", "48", "--state-every", "16"]


@pytest.fixture(scope="module")
def env(omniglot):
    """The environment of the subprocesses: this machine's data, one thread, the CPU."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "FSLCOURSE_DEVICE": "cpu"}


def _start(args, env) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "fslcourse", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for(path, proc, timeout=300.0):
    end = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, f"the run ended before writing {path.name}: {proc.communicate()}"
        assert time.monotonic() < end, f"no {path.name} after {timeout} s"
        time.sleep(0.2)


def _weights(path):
    return torch.load(path, weights_only=True)["state_dict"]


@pytest.fixture(scope="module")
def straight(env, tmp_path_factory):
    """The uninterrupted run's checkpoint."""
    out = tmp_path_factory.mktemp("straight") / "fomaml.pt"
    proc = _start([*ARGS, "--out", str(out)], env)
    assert proc.wait(600) == 0, proc.communicate()
    assert not out.with_name("fomaml.state.pt").exists()  # a finished run leaves no state behind
    return _weights(out)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_a_stopped_train_keeps_the_committed_file_and_resumes_bitwise(sig, env, straight, tmp_path):
    out, state = tmp_path / "fomaml.pt", tmp_path / "fomaml.state.pt"
    out.write_bytes(b"the committed checkpoint")  # what a careless --overwrite run must not destroy when stopped
    proc = _start([*ARGS, "--out", str(out), "--overwrite"], env)
    _wait_for(state, proc)
    proc.send_signal(sig)
    rc = proc.wait(300)
    err = proc.communicate()[1]
    if sig == signal.SIGINT:  # Ctrl-C: the step finishes, the state is written, the exit says so
        assert rc == 3 and "no checkpoint was written" in err and "--resume" in err, (rc, err)
    else:
        assert rc == -signal.SIGKILL
    assert out.read_bytes() == b"the committed checkpoint" and state.exists()
    saved_at = torch.load(state, weights_only=True)["step"]
    proc = _start([*ARGS, "--out", str(out), "--overwrite", "--resume"], env)
    assert proc.wait(600) == 0, proc.communicate()
    resumed = _weights(out)
    # a fresh start from the same seed would give the same weights too: the log proves the state was loaded
    sittings = torch.load(out, weights_only=True)["log"]["sittings"]
    assert saved_at > 0 and [s["from_step"] for s in sittings] == [0, saved_at], (saved_at, sittings)
    assert resumed.keys() == straight.keys() and all(torch.equal(resumed[k], straight[k]) for k in straight)
    assert not state.exists()


def test_resume_without_a_state_is_refused_before_any_work(env, tmp_path):
    proc = _start([*ARGS, "--out", str(tmp_path / "x.pt"), "--resume"], env)
    assert proc.wait(120) == 2
    assert "nothing to resume: no training state at" in proc.communicate()[1]


@pytest.mark.parametrize("what", ["the checkpoint itself", "a text file", "a finished checkpoint"])
def test_a_state_path_that_a_run_would_delete_is_refused_before_any_work(what, env, tmp_path):
    """A finished run deletes its state and --overwrite replaces it: --state must name a training state or a new
    file, never the checkpoint (it was deleted after 'saved its checkpoint') or a file that is something else."""
    out = tmp_path / "run.pt"
    state = {"the checkpoint itself": out, "a text file": tmp_path / "notes.txt",
             "a finished checkpoint": tmp_path / "other.pt"}[what]
    if what == "a text file":
        state.write_text("my notes")
    elif what == "a finished checkpoint":
        from fslcourse.pretrained import checkpoint_path
        state.write_bytes(checkpoint_path("fomaml").read_bytes())
    before = state.read_bytes() if state.exists() else None
    proc = _start([*ARGS, "--out", str(out), "--state", str(state), "--overwrite"], env)
    assert proc.wait(120) == 2
    err = proc.communicate()[1]
    expected = "is the checkpoint itself" if state == out else "is not a training state written by `train`"
    assert expected in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists() or state != out
    assert (state.read_bytes() if state.exists() else None) == before  # nothing deleted or changed
