"""setup(): seed, device choice and profiles."""
import random

import pytest
import torch

from fslcourse.config import PROFILES, get_device, get_profile, setup


def test_setup_seeds_everything(capsys):
    import numpy as np

    course = setup(seed=3, profile="quick", device="cpu")
    a = (random.random(), torch.rand(1).item(), np.random.rand())
    setup(seed=3, profile="quick", device="cpu", quiet=True)
    assert (random.random(), torch.rand(1).item(), np.random.rand()) == a  # NumPy too
    setup(seed=np.int64(3), profile="quick", device="cpu", quiet=True)  # a NumPy integer is a seed
    assert (random.random(), torch.rand(1).item(), np.random.rand()) == a
    assert "seed=3, device=cpu, profile=quick" in capsys.readouterr().out
    assert course.profile is PROFILES["quick"]


def test_setup_chooses_the_numerics_and_says_so_only_when_portable(monkeypatch, capsys):
    from fslcourse.config import Course

    assert setup(seed=0, device="cpu").numerics == "native"
    assert "numerics" not in capsys.readouterr().out  # the notebooks' first output is unchanged
    portable = Course(seed=0, device=torch.device("cpu"), profile=PROFILES["quick"], numerics="portable")
    assert str(portable).endswith("profile=quick, numerics=portable")
    monkeypatch.setenv("FSLCOURSE_NUMERICS", "fast")
    with pytest.raises(ValueError, match="numerics='fast' is not known; use one of native, portable"):
        setup(seed=0)


def test_env_forces_device(monkeypatch):
    monkeypatch.setenv("FSLCOURSE_DEVICE", "cpu")
    assert get_device() == torch.device("cpu")
    monkeypatch.delenv("FSLCOURSE_DEVICE")
    assert get_device().type == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_gpu_is_a_clear_error():
    with pytest.raises(ValueError, match="CUDA is not available"):
        get_device("cuda")


def test_unknown_profile_and_bad_seed():
    with pytest.raises(ValueError, match="profile='fast' is not known; use one of quick, full"):
        get_profile("fast")
    with pytest.raises(ValueError, match=r"profile=a Profile is not known; use one of quick, full \(a name\)"):
        setup(profile=PROFILES["quick"])  # was TypeError: unhashable type
    with pytest.raises(ValueError, match="seed=-1"):
        setup(seed=-1)


@pytest.mark.parametrize("value, message", [
    ("banana", "FSLCOURSE_DEVICE='banana' is not a device; unset FSLCOURSE_DEVICE or set it to cpu"),
    ("", "FSLCOURSE_DEVICE='' is empty; unset FSLCOURSE_DEVICE or set it to cpu"),
    ("cpu:0", "FSLCOURSE_DEVICE='cpu:0' is not a device"),
    ("cuda:x", "FSLCOURSE_DEVICE='cuda:x' is not a device"),
    ("gpu", r"valid values: cpu, cuda, cuda:N, mps, auto"),
])
def test_bad_device_variable_is_a_one_line_error_naming_it(monkeypatch, value, message):
    monkeypatch.setenv("FSLCOURSE_DEVICE", value)
    with pytest.raises(ValueError, match=message) as err:
        get_device()
    assert "\n" not in str(err.value)


def test_device_values_that_work(monkeypatch):
    monkeypatch.setenv("FSLCOURSE_DEVICE", " CPU ")
    assert get_device() == torch.device("cpu")
    monkeypatch.setenv("FSLCOURSE_DEVICE", "auto")
    assert get_device().type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert get_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(ValueError, match="device='banana' is not a device; use 'cpu'"):
        get_device("banana")


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="needs a machine without MPS")
def test_mps_without_mps_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("FSLCOURSE_DEVICE", "mps")
    with pytest.raises(ValueError, match="FSLCOURSE_DEVICE='mps' was requested but MPS .* is not available"):
        get_device()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_variable_without_gpu_names_the_variable(monkeypatch):
    monkeypatch.setenv("FSLCOURSE_DEVICE", "cuda:1")
    with pytest.raises(ValueError, match="FSLCOURSE_DEVICE='cuda:1' was requested but CUDA is not available; "
                                         "unset FSLCOURSE_DEVICE or set it to cpu"):
        get_device()


def test_cuda_index_past_the_last_gpu(monkeypatch):
    """Runs without a GPU too: torch is told it has one CUDA device, so the index check itself is what is tested."""
    monkeypatch.delenv("FSLCOURSE_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match=r"^device='cuda:1' but this machine has 1 CUDA device\(s\) \(cuda:0 to "
                                         r"cuda:0\); use one of those or use 'cpu', or leave it unset for auto$"):
        get_device("cuda:1")
    assert get_device("cuda:0") == torch.device("cuda:0")  # in range: chosen, nothing touched on a GPU


def test_a_home_folder_in_the_environment_is_the_home_folder(monkeypatch, tmp_path):
    """FSLCOURSE_DATA expanded '~', FSLCOURSE_CACHE and FSLCOURSE_RESULTS did not: a folder named '~' appeared."""
    from fslcourse.data.omniglot import cache_dir
    from fslcourse.report import results_dir

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("FSLCOURSE_CACHE", "~/cache")
    monkeypatch.setenv("FSLCOURSE_RESULTS", "~/results")
    assert cache_dir() == tmp_path / "cache" and results_dir() == tmp_path / "results"
