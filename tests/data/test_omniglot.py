"""Omniglot splits on the real data: counts, disjointness, preprocessing, cache; on a tiny Omniglot-shaped
folder: the content-keyed cache, corrupt and unwritable caches, bad drawings, transparent PNGs."""
import re

import numpy as np
import pytest
import torch
from PIL import Image

from fslcourse.data import load_image, preprocess_image
from fslcourse.data.omniglot import VAL_ALPHABETS, cache_dir, data_roots, find_omniglot, load_omniglot


def test_split_sizes_follow_the_protocol(omniglot):
    # background: 30 alphabets / 964 characters; evaluation: 20 alphabets / 659 characters (MANIFEST.md)
    assert len(omniglot.train.alphabet_names) + len(omniglot.val.alphabet_names) == 30
    assert omniglot.train.images.shape[0] + omniglot.val.images.shape[0] == 964
    assert omniglot.test.images.shape[0] == 659 and len(omniglot.test.alphabet_names) == 20
    assert set(omniglot.val.alphabet_names) == set(VAL_ALPHABETS)
    for s in (omniglot.train, omniglot.val, omniglot.test):
        assert s.images.shape[1:] == (20, 28, 28) and s.images.dtype == torch.uint8
        assert s.n_classes == 4 * s.images.shape[0]


def test_no_class_or_alphabet_in_two_splits(omniglot):
    names = [set(s.base_names) for s in (omniglot.train, omniglot.val, omniglot.test)]
    alphas = [set(s.alphabet_names) for s in (omniglot.train, omniglot.val, omniglot.test)]
    for i in range(3):
        for j in range(i + 1, 3):
            assert not names[i] & names[j]
            assert not alphas[i] & alphas[j]


def test_load_image_convention(omniglot):
    png = next((omniglot.root / "images_evaluation").rglob("*.png"))
    x = load_image(png)
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert x.mean() < 0.5, "ink is 1 and paper is 0, so most pixels are near 0"
    # the bulk loader uses exactly the same preprocessing
    alpha, char = png.parent.parent.name, png.parent.name
    idx = omniglot.test.base_names.index(f"{alpha}/{char}")
    pos = sorted(png.parent.glob("*.png")).index(png)
    assert torch.equal((x[0] * 255).round().to(torch.uint8), omniglot.test.images[idx, pos])


def test_preprocess_image_is_load_image_on_the_pixels(omniglot):
    # the same drawing as a file, as a PIL image, as its uint8 pixels (grey, RGB, RGBA): the same input
    png = next((omniglot.root / "images_evaluation").rglob("*.png"))
    x = load_image(png)
    with Image.open(png) as im:
        assert torch.equal(preprocess_image(im), x)
        grey = np.asarray(im.convert("L"))
    assert torch.equal(preprocess_image(grey), x)
    assert torch.equal(preprocess_image(np.repeat(grey[..., None], 3, 2)), x)
    rgba = np.zeros((*grey.shape, 4), np.uint8)  # black ink on fully transparent paper, as a canvas gives it
    rgba[..., 3] = 255 - grey
    assert torch.equal(preprocess_image(rgba), x)
    assert preprocess_image(grey, image_size=14).shape == (1, 14, 14)


@pytest.mark.parametrize("bad, message", [
    (np.zeros((8, 8), np.float32), "dtype float32"),
    (np.zeros((8, 8, 2), np.uint8), r"shape \(8, 8, 2\)"),
    ("drawing.png", "is a str; give a PIL image"),
])
def test_preprocess_image_refuses_what_it_cannot_read(bad, message):
    with pytest.raises(ValueError, match=message):
        preprocess_image(bad)


def test_cache_roundtrip_gives_identical_tensors(omniglot, tmp_path, monkeypatch):
    cached = load_omniglot(progress=False)  # from the warm cache
    assert torch.equal(cached.test.images, omniglot.test.images)
    assert any(p.name.startswith("omniglot-28px-") for p in cache_dir().iterdir())


def test_missing_data_without_download_names_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("FSLCOURSE_DATA", str(tmp_path / "nothing"))
    monkeypatch.setenv("FSLCOURSE_CACHE", str(tmp_path / "cache"))
    assert find_omniglot() is None
    with pytest.raises(FileNotFoundError, match="set FSLCOURSE_DATA"):
        load_omniglot(download=False)
    assert data_roots()[0] == tmp_path / "nothing"


def test_fslcourse_data_is_looked_at_first(tmp_path, monkeypatch):
    for part in ("images_background", "images_evaluation"):
        (tmp_path / "omniglot" / part).mkdir(parents=True)
    monkeypatch.setenv("FSLCOURSE_DATA", str(tmp_path))
    assert find_omniglot() == tmp_path / "omniglot"


# --- a tiny Omniglot-shaped folder built in the test: cache keys, corrupt files, transparency -----------

def _drawing(path, seed: int, size: int = 20) -> None:
    """A black-ink-on-white PNG like Omniglot's (mode "1"), different for every seed."""
    from PIL import Image, ImageDraw

    im = Image.new("1", (size, size), 1)
    ImageDraw.Draw(im).rectangle([seed % 7, seed % 5, seed % 7 + 6, seed % 5 + 9], fill=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    """FSLCOURSE_DATA with 2 background and 1 evaluation alphabets, 2 characters each, 3 drawings per character."""
    root = tmp_path / "data" / "omniglot"
    seed = 0
    for part, alphabets in (("images_background", ("Latin", "Greek")), ("images_evaluation", ("Atlantean",))):
        for alpha in alphabets:
            for char in ("character01", "character02"):
                for k in range(3):
                    seed += 1
                    _drawing(root / part / alpha / char / f"{seed:04d}_{k + 1:02d}.png", seed)
    monkeypatch.setenv("FSLCOURSE_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("FSLCOURSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(omniglot_module, "_WARNED", set())
    return root


import fslcourse.data.omniglot as omniglot_module  # noqa: E402  (the module, for its cache helpers)


def _load():
    return load_omniglot(download=False, progress=False)


def _touch_later(path):
    import os
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))


def test_the_cache_is_keyed_by_content_an_edited_drawing_is_seen(tiny):
    first = _load()
    assert len(list((tiny.parent.parent / "cache").glob("omniglot-28px-*.pt"))) == 1
    png = tiny / "images_background" / "Latin" / "character01" / "0001_01.png"
    _drawing(png, seed=99, size=30)  # a new drawing, same name; the parent folders' times do not change
    _touch_later(png)
    second = _load()
    idx = second.train.base_names.index("Latin/character01")
    assert torch.equal(second.train.images[idx, 0], (load_image(png)[0] * 255).round().to(torch.uint8))
    assert not torch.equal(second.train.images[idx, 0], first.train.images[idx, 0])
    assert len(list((tiny.parent.parent / "cache").glob("omniglot-28px-*.pt"))) == 2


def test_a_new_character_in_an_existing_alphabet_is_seen(tiny):
    assert _load().test.images.shape[0] == 2
    for k in range(3):
        _drawing(tiny / "images_evaluation" / "Atlantean" / "character03" / f"09{k}_01.png", seed=50 + k)
    data = _load()
    assert data.test.images.shape[0] == 3 and "Atlantean/character03" in data.test.base_names


def test_a_corrupt_cache_is_rebuilt_with_one_warning(tiny, capsys):
    good = _load()
    cache = next((tiny.parent.parent / "cache").glob("omniglot-28px-*.pt"))
    cache.write_bytes(b"not a torch file")
    capsys.readouterr()
    again = _load()
    err = capsys.readouterr().err
    assert torch.equal(again.train.images, good.train.images)
    assert str(cache) in err and "rebuilding it" in err and len(err.strip().splitlines()) == 1
    assert omniglot_module.cache_status(tiny) == (cache, None)  # rewritten and readable again
    torch.save({"version": omniglot_module.CACHE_VERSION, "images": torch.zeros(1, 3, 28, 28, dtype=torch.uint8),
                "names": ["x"], "alphabets": ["x"], "background": [True]}, cache)
    path, problem = omniglot_module.cache_status(tiny)
    assert "same characters" in problem
    assert torch.equal(_load().train.images, good.train.images)


def test_an_unwritable_cache_folder_warns_once_and_loads(tiny, tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("FSLCOURSE_CACHE", str(blocker / "cache"))
    data = _load()
    data2 = _load()
    assert data.train.images.shape[0] == 4 and torch.equal(data.train.images, data2.train.images)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "could not write the image cache" in err[0] and "FSLCOURSE_CACHE" in err[0]


def test_wrong_number_of_drawings_names_the_folder(tiny):
    folder = tiny / "images_background" / "Greek" / "character02"
    next(folder.glob("*.png")).unlink()
    with pytest.raises(ValueError, match=re.escape(f"character folder {folder} has 2 drawings but the others have 3")):
        _load()


def test_an_empty_character_folder_names_the_folder(tiny):
    folder = tiny / "images_evaluation" / "Atlantean" / "character09"
    folder.mkdir()
    with pytest.raises(ValueError, match=re.escape(f"character folder {folder} has no PNG drawings")):
        _load()


def test_a_truncated_png_names_the_file(tiny, tmp_path):
    png = tiny / "images_evaluation" / "Atlantean" / "character01" / "0013_01.png"
    png.write_bytes(png.read_bytes()[:60])
    with pytest.raises(ValueError, match=re.escape(f"{png} is not a readable image")):
        load_image(png)
    with pytest.raises(ValueError, match=re.escape(f"{png} is not a readable image")) as err:
        _load()
    # `download` skips a folder that holds any PNG: "re-download Omniglot" alone fixed nothing ("Omniglot is ready")
    assert f"delete {tiny / 'images_evaluation'} and run `python -m fslcourse download`" in str(err.value)
    text = tmp_path / "text.png"
    text.write_text("hello")
    with pytest.raises(ValueError, match="text.png is not a readable image") as err:
        load_image(text)
    assert "download" not in str(err.value)  # a picture of the user's own: nothing to download


def test_an_empty_drawing_is_named_before_any_drawing_is_read(tiny):
    """A 0-byte PNG (an interrupted copy) was found only by reading it, in the middle of the preprocessing."""
    png = tiny / "images_evaluation" / "Atlantean" / "character02" / "0016_01.png"
    png.write_bytes(b"")
    with pytest.raises(ValueError, match=re.escape(f"{png} is empty (0 bytes; 1 such drawing(s)); replace it, or "
                                                   f"delete {tiny / 'images_evaluation'} and run")):
        _load()


def test_transparent_paper_is_paper_not_ink(tmp_path):
    from PIL import Image, ImageDraw

    # RGBA: a black stroke on fully transparent (black, alpha 0) paper
    rgba = Image.new("RGBA", (28, 28), (0, 0, 0, 0))
    ImageDraw.Draw(rgba).rectangle([10, 2, 13, 25], fill=(0, 0, 0, 255))
    rgba.save(tmp_path / "rgba.png")
    x = load_image(tmp_path / "rgba.png")[0]
    assert x[0, 0] == 0.0 and x[14, 5] == 0.0, "transparent paper must load as paper (0.0), not ink"
    assert x[14, 11] > 0.9 and x[14, 12] > 0.9, "the opaque black stroke is ink"
    # the same drawing saved opaque (black on white) loads to the same pixels
    opaque = Image.new("L", (28, 28), 255)
    ImageDraw.Draw(opaque).rectangle([10, 2, 13, 25], fill=0)
    opaque.save(tmp_path / "opaque.png")
    assert torch.equal(x, load_image(tmp_path / "opaque.png")[0])
    # palette image whose background colour (index 0, black) is marked transparent, ink is index 1 (black too)
    pal = Image.new("P", (28, 28), 0)
    pal.putpalette([0, 0, 0, 0, 0, 0] + [255, 255, 255] * 254)
    ImageDraw.Draw(pal).rectangle([10, 2, 13, 25], fill=1)
    pal.save(tmp_path / "pal.png", transparency=0)
    assert "transparency" in Image.open(tmp_path / "pal.png").info
    assert torch.equal(load_image(tmp_path / "pal.png")[0], x)
    # LA with half-transparent ink: half as dark on white paper
    la = Image.new("LA", (28, 28), (0, 0))
    ImageDraw.Draw(la).rectangle([10, 2, 13, 25], fill=(0, 128))
    la.save(tmp_path / "la.png")
    y = load_image(tmp_path / "la.png")[0]
    assert y[0, 0] == 0.0 and 0.3 < y[14, 11] < 0.7


def test_a_wrong_fslcourse_data_is_named_instead_of_downloading_elsewhere(tmp_path, monkeypatch):
    """The user said where the data is: a download into the cache (with a 'check the internet' error offline)
    would answer another question; the message names the variable and the fixes."""
    import fslcourse.data.omniglot as omniglot

    monkeypatch.setenv("FSLCOURSE_DATA", str(tmp_path / "typo"))
    monkeypatch.setenv("FSLCOURSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(omniglot, "download_omniglot", lambda *a, **k: pytest.fail("downloaded"))
    with pytest.raises(FileNotFoundError, match=r"FSLCOURSE_DATA=.*typo holds no omniglot/images_background.*unset"):
        load_omniglot()
    assert not (tmp_path / "cache").exists()


def test_the_first_load_works_where_os_has_no_sched_getaffinity(tiny, monkeypatch):
    """macOS and Windows have no os.sched_getaffinity: the first load (the cache build) failed there."""
    import os

    monkeypatch.delattr(os, "sched_getaffinity")
    assert _load().test.images.shape[0] == 2


def test_fslcourse_data_is_the_only_place_looked_when_set(tmp_path, monkeypatch):
    # a mistyped FSLCOURSE_DATA fell through to a copy in the cache, without a word
    for part in ("images_background", "images_evaluation"):
        (tmp_path / "cache" / "data" / "omniglot" / part).mkdir(parents=True)
    monkeypatch.setenv("FSLCOURSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("FSLCOURSE_DATA", raising=False)
    assert find_omniglot() == tmp_path / "cache" / "data" / "omniglot"
    monkeypatch.setenv("FSLCOURSE_DATA", str(tmp_path / "typo"))
    assert find_omniglot() is None and data_roots() == [tmp_path / "typo"]
    with pytest.raises(FileNotFoundError, match="FSLCOURSE_DATA=.*typo holds no omniglot"):
        load_omniglot()


def test_a_bad_device_or_split_name_is_refused_in_one_line():
    with pytest.raises(ValueError, match="device='gpu' is not a device"):
        load_omniglot(device="gpu")
    with pytest.raises(ValueError, match=r"split='test' is not a known protocol.*take \.test of the result"):
        load_omniglot(split="test")


def test_rotations_false_gives_one_class_per_character(tiny):
    """``load_omniglot(rotations=False)`` was ignored by a mutant that always made four classes per character."""
    plain = load_omniglot(download=False, progress=False, rotations=False)
    turned = _load()
    for a, b in ((plain.train, turned.train), (plain.test, turned.test)):
        assert a.rotations == (0,) and a.n_classes == a.images.shape[0] == b.images.shape[0]
        assert b.rotations == (0, 1, 2, 3) and b.n_classes == 4 * b.images.shape[0]
        assert torch.equal(a.images, b.images)


def test_a_vinyals_character_missing_from_the_folders_is_named(tiny):
    """Without the check, a copy of Omniglot without the papers' characters stopped on a bare KeyError (the tiny copy
    holds 6 of the train list's 1028)."""
    from fslcourse.data.omniglot import vinyals_characters

    first = vinyals_characters("train")[0]
    with pytest.raises(ValueError, match=rf"^the Vinyals train list names {re.escape(first)}, which is not under "
                                         rf"{re.escape(str(tiny))} \(1022 missing character\(s\)\)"):
        load_omniglot(download=False, progress=False, split="vinyals")


@pytest.mark.parametrize("size", [(120, 60), (60, 120), (400, 300)])
def test_an_image_that_is_not_square_keeps_its_shape(size):
    """A phone photo (4:3) was squashed into 28×28: a square stroke came out a third narrower. Now it is centred
    on its own paper: a square stays square, and the result is the padded image's, exactly."""
    grey = np.full(size[::-1], 230, np.uint8)  # light grey paper, (H, W)
    h, w = grey.shape
    side = min(h, w) // 2
    grey[(h - side) // 2:(h + side) // 2, (w - side) // 2:(w + side) // 2] = 0  # a black square in the middle
    x = preprocess_image(grey)[0]
    rows, cols = np.nonzero(x.numpy() > 0.5)
    assert abs((rows.max() - rows.min()) - (cols.max() - cols.min())) <= 1  # as tall as wide, not 2:1
    padded = np.full((max(h, w),) * 2, 230, np.uint8)  # the same drawing on square paper of the same grey
    padded[(max(h, w) - h) // 2:(max(h, w) - h) // 2 + h, (max(h, w) - w) // 2:(max(h, w) - w) // 2 + w] = grey
    assert torch.equal(preprocess_image(padded), preprocess_image(grey))
    assert x[0].max() < 0.15 and x[:, 0].max() < 0.15  # the margin added is paper, not a frame of ink
