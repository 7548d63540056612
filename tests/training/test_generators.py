"""Generator checkpoints: a loader refuses a file of another family (or a method's) before reading or writing it."""
import shutil

import pytest

import fslcourse.training.generators as G
from fslcourse.io import load_checkpoint
from fslcourse.pretrained import CHECKPOINT_DIR

LOADERS = {
    "vae": lambda path: G.load_or_train_vaes(None, None, path=path, progress=False),
    "gan": lambda path: G.load_or_train_gans(None, None, path=path, progress=False),
    "deformation-vae": lambda path: G.load_or_train_deformation_vae(None, path=path, progress=False),
    "deformation-gan": lambda path: G.load_or_train_deformation_gan(None, path=path, progress=False),
}


@pytest.mark.parametrize("family", sorted(G.FAMILIES))
def test_the_committed_checkpoints_are_recognised(family):
    assert G.family_of(load_checkpoint(CHECKPOINT_DIR / f"{family}-quick.pt")) == family
    assert G.family_of(load_checkpoint(CHECKPOINT_DIR / "protonet-quick.pt")) == "method 'protonet'"


@pytest.mark.parametrize("family, other", [(f, o) for f in sorted(LOADERS)
                                           for o in ("vae", "gan", "deformation-gan", "diffusion", "protonet") if o != f])
def test_a_checkpoint_of_another_family_is_refused_and_left_alone(family, other, tmp_path):
    path = tmp_path / "foreign.pt"
    shutil.copy(CHECKPOINT_DIR / f"{other}-quick.pt", path)
    before = path.read_bytes()
    found = "method 'protonet'" if other == "protonet" else other
    with pytest.raises(ValueError, match=f"foreign.pt holds a {found} checkpoint, not a {family} one; pass a "
                                         f"{family} checkpoint"):
        LOADERS[family](path)
    assert path.read_bytes() == before  # never trained into, never rewritten


def test_a_file_of_no_known_layout_is_refused(tmp_path):
    import torch

    path = tmp_path / "odd.pt"
    torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(ValueError, match="odd.pt holds an unrecognised checkpoint, not a gan one"):
        LOADERS["gan"](path)
