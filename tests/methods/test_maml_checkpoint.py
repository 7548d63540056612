"""Floors on the committed MAML-family checkpoints' recorded accuracy.

That each checkpoint still reproduces its recorded accuracy is tested, for every
committed method, in ``tests/methods/test_pretrained_checkpoints.py``.
"""
import pytest

from fslcourse.pretrained import checkpoint_info, checkpoint_path

# What the committed checkpoints reach (5-way 1-shot, recorded protocol), not the targets:
# issue 4 asks for >= 97% from maml-quick.pt; the committed one (zero head, 20-way training, 8000
# meta-steps, 32 filters) records 95.9% +- 0.8%; fomaml-quick (2400 steps) 88.8% +- 1.3%, reptile-quick
# (3000 steps) 53.5% +- 1.7%. These floors catch a regression or a checkpoint swapped for a worse one.
FLOORS = {"maml": 95.0, "fomaml": 88.0, "reptile": 52.0}


@pytest.mark.parametrize("name", sorted(FLOORS))
def test_checkpoint_accuracy_floor(name):
    if not checkpoint_path(name).exists():
        pytest.fail(f"{checkpoint_path(name)} is missing")
    m = checkpoint_info(name)["metrics"]
    assert m["test_accuracy"] >= FLOORS[name], f"{name}-quick 5-way 1-shot is {m['test_accuracy']:.1f}%"
