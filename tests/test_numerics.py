"""fslcourse.numerics: portable numerics give the same weights bit for bit whatever code paths a CPU offers.

Another machine is simulated on this one: the environment caps the vector instructions oneDNN and MKL may use
(as an older CPU would) and asks for two threads. Each run trains with portable numerics, then, as a control,
runs a convolution the native way (oneDNN on, two threads): the control must differ between the two machines
(so the test could fail), the trained weights must not.
"""
import os
import subprocess
import sys

import pytest

from fslcourse.numerics import PORTABLE_ENV, use_numerics

TRAIN = """
import hashlib
from types import SimpleNamespace
import torch
import fslcourse
from fslcourse.data import glyph_splits
from fslcourse.training import train
course = fslcourse.setup(0, quiet=True)
train_set, val_set, test_set = glyph_splits(n_classes=(10, 5, 5), n_examples=10, seed=0)
model, result = train("protonet", "quick", data=SimpleNamespace(train=train_set, val=val_set, test=test_set),
                      save=False, progress=False, device="cpu", steps=4, val_every=4, val_episodes=2, eval_episodes=2,
                      n_way=5, n_query=2)
digest = hashlib.sha256()
for key, value in sorted(model.state_dict().items()):
    digest.update(value.detach().contiguous().numpy().tobytes())
torch.backends.mkldnn.enabled = True  # the control: a convolution's gradient as native numerics compute it
torch.set_num_threads(2)
g = torch.Generator().manual_seed(0)
x, w1, w2 = torch.randn(20, 1, 28, 28, generator=g), torch.randn(64, 1, 3, 3, generator=g), torch.randn(64, 64, 3, 3, generator=g)
w1.requires_grad_()
torch.nn.functional.conv2d(torch.relu(torch.nn.functional.conv2d(x, w1, padding=1)), w2, padding=1).square().mean().backward()
print(course.numerics, result.log.numerics, digest.hexdigest(), hashlib.sha256(w1.grad.numpy().tobytes()).hexdigest())
"""
# this machine, and another x86-64 machine: oneDNN's and MKL's instruction sets capped, two threads
MACHINES = [{}, {"ONEDNN_MAX_CPU_ISA": "SSE41", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "OMP_NUM_THREADS": "2"}]


def _run(script: str, numerics: str, **env) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items()
            if k not in {"FSLCOURSE_NUMERICS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", *PORTABLE_ENV}}
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**base, "FSLCOURSE_NUMERICS": numerics, "FSLCOURSE_DEVICE": "cpu",
                               "OMP_NUM_THREADS": "1", **env})


def test_portable_numerics_give_the_same_weights_on_another_simulated_machine():
    runs = []
    for machine in MACHINES:
        proc = _run(TRAIN, "portable", **machine)
        assert proc.returncode == 0, proc.stderr[-2000:]
        runs.append(proc.stdout.split()[-4:])
    assert all(mode == logged == "portable" for mode, logged, _, _ in runs)  # in force, and in the run's log
    (_, _, weights_a, control_a), (_, _, weights_b, control_b) = runs
    assert control_a != control_b, "the other machine did not change native numerics here: the test could not fail"
    assert weights_a == weights_b  # the same bits on both machines


def test_portable_numerics_chosen_after_torch_computed_say_how_to_fix():
    proc = _run("import torch\ntorch.ones(3).sum()\nimport fslcourse\nfslcourse.setup(0)", "portable")
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert "before torch computes anything" in last and "FSLCOURSE_NUMERICS=portable" in last


def test_an_unknown_numerics_name_is_one_line_naming_the_choices():
    with pytest.raises(ValueError, match="numerics='fast' is not known; use one of native, portable"):
        use_numerics("fast")


def test_portable_numerics_asked_too_late_leave_the_process_as_it_was(monkeypatch):
    import torch

    torch.ones(2).sum()  # this process computes with its native kernels
    if torch.backends.cpu.get_cpu_capability() == "DEFAULT":
        pytest.skip("this CPU's native kernels are the baseline ones: nothing is too late to pin")
    for key in PORTABLE_ENV:
        monkeypatch.delenv(key, raising=False)
    mkldnn, threads = torch.backends.mkldnn.enabled, torch.get_num_threads()
    with pytest.raises(ValueError, match="before torch computes anything"):
        use_numerics("portable")
    assert not any(key in os.environ for key in PORTABLE_ENV)
    assert (torch.backends.mkldnn.enabled, torch.get_num_threads()) == (mkldnn, threads)
