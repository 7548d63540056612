"""setup(): seed, device choice and profiles."""
import random

import pytest
import torch

from fslcourse.config import PROFILES, get_device, get_profile, setup


def test_setup_seeds_everything(capsys):
    course = setup(seed=3, profile="quick", device="cpu")
    a = (random.random(), torch.rand(1).item())
    setup(seed=3, profile="quick", device="cpu", quiet=True)
    assert (random.random(), torch.rand(1).item()) == a
    assert "seed=3, device=cpu, profile=quick" in capsys.readouterr().out
    assert course.profile is PROFILES["quick"]


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
    with pytest.raises(ValueError, match="seed=-1"):
        setup(seed=-1)
