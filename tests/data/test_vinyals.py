"""The papers' protocol: the Vinyals et al. split shipped with the package, checked against its
published counts and hashes and against the alphabet split's pixels."""
import hashlib

import pytest
import torch

from fslcourse.data.omniglot import VINYALS_DIR, load_omniglot, vinyals_characters

MD5 = {"train": "433d1fcc2b20dcee2983ceb524586f7f", "val": "78c535fa427b12b6596908376a0b3f34",
       "trainval": "888433268015439fd05fb6e9006ead50", "test": "43534e6d5f9e74acbb7de1b4874abad8"}


def test_the_shipped_lists_are_the_papers_unchanged():
    for name, md5 in MD5.items():
        assert hashlib.md5((VINYALS_DIR / f"{name}.txt").read_bytes()).hexdigest() == md5
    assert (VINYALS_DIR / "LICENSE-prototypical-networks.txt").read_text().startswith("MIT License")
    assert "Jake Snell" in (VINYALS_DIR / "README.md").read_text()


def test_list_counts_and_no_character_in_two_splits():
    chars = {n: vinyals_characters(n) for n in ("train", "val", "trainval", "test")}
    assert {n: len(c) for n, c in chars.items()} == {"train": 1028, "val": 172, "trainval": 1200, "test": 423}
    assert chars["trainval"] == chars["train"] + chars["val"]
    sets = [set(chars[n]) for n in ("train", "val", "test")]
    assert not sets[0] & sets[1] and not sets[0] & sets[2] and not sets[1] & sets[2]


def test_what_notebook_01_says_of_the_test_alphabets():
    """Notebook 01 said a Vinyals test character 'usually shares its alphabet with training characters'; the
    lists run alphabet by alphabet, so the test characters' 13 alphabets meet training in one (Gurmukhi)."""
    alphabets = {n: {c.split("/")[0] for c in vinyals_characters(n)} for n in ("train", "test")}
    assert len(alphabets["test"]) == 13 and alphabets["test"] & alphabets["train"] == {"Gurmukhi"}


@pytest.fixture(scope="module")
def vinyals(omniglot):
    return load_omniglot(progress=False, split="vinyals")


def test_vinyals_split_has_the_papers_class_counts(vinyals, omniglot):
    assert (vinyals.train.n_classes, vinyals.val.n_classes, vinyals.test.n_classes) == (4112, 688, 1692)
    assert vinyals.protocol == "vinyals" and {s.protocol for s in (vinyals.train, vinyals.val, vinyals.test)} == {"vinyals"}
    names = [set(s.base_names) for s in (vinyals.train, vinyals.val, vinyals.test)]
    assert not names[0] & names[1] and not names[0] & names[2] and not names[1] & names[2]
    assert vinyals.test.base_names == vinyals_characters("test")  # the list's order
    # both official sets are pooled: meta-train holds characters of evaluation alphabets too, and an
    # alphabet can give characters to both meta-train and meta-test
    assert set(vinyals.train.alphabet_names) & set(omniglot.test.alphabet_names)
    assert set(vinyals.train.alphabet_names) & set(vinyals.test.alphabet_names)


def test_rotations_are_classes_and_pixels_match_the_alphabet_split(vinyals, omniglot):
    test = vinyals.test
    ex = torch.arange(20)[None]  # (1, 20): every drawing
    for base in (0, 200, 422):
        up = test.get(torch.tensor([4 * base]), ex)[0]  # (20, 1, 28, 28), rot 0
        for turn in (1, 2, 3):
            assert torch.equal(test.get(torch.tensor([4 * base + turn]), ex)[0], torch.rot90(up, turn, dims=(-2, -1)))
        name = test.base_names[base]
        for split in (omniglot.train, omniglot.val, omniglot.test):  # the same drawing in the alphabet split
            if name in split.base_names:
                same = split.get(torch.tensor([4 * split.base_names.index(name)]), ex)[0]
                assert torch.equal(same, up)
                break
        else:
            pytest.fail(f"{name} is in no alphabet split")


def test_the_protocol_reaches_evaluate_and_the_record(vinyals):
    from fslcourse.evaluate import evaluate
    from fslcourse.methods import PixelPrototype
    from fslcourse.results import result_record

    res = evaluate(PixelPrototype(), vinyals.test, 5, 1, 2, 3, seed=0)
    rec = result_record("pixel", res, config={}, seed=0, device="cpu", profile="quick")
    assert rec["protocol"]["split_protocol"] == "vinyals" and rec["protocol"]["split"] == "test"


def test_bad_protocols_and_lists_are_clear_errors(tmp_path, monkeypatch):
    import fslcourse.data.omniglot as om

    with pytest.raises(ValueError, match="split='papers' is not a known protocol; use 'alphabet'"):
        load_omniglot(split="papers")
    with pytest.raises(ValueError, match="Vinyals split 'dev' is not known"):
        vinyals_characters("dev")
    (tmp_path / "test.txt").write_text("Latin/character01/rot000\nLatin/character01/rot090\n")
    monkeypatch.setattr(om, "VINYALS_DIR", tmp_path)
    with pytest.raises(ValueError, match="character Latin/character01 does not list each of rot000"):
        vinyals_characters("test")
    (tmp_path / "test.txt").write_text("Latin-character01\n")
    with pytest.raises(ValueError, match=r"test.txt:1: 'Latin-character01' is not 'Alphabet/characterNN/rotDDD'"):
        vinyals_characters("test")


def test_an_edited_list_is_refused_not_used(tmp_path, monkeypatch):
    """A list with a character dropped, one moved from train to test (a leak) or its lines reordered loaded without a
    word (other splits, other episodes than the papers'); a missing one was a bare FileNotFoundError. Windows line
    endings are the same list."""
    import fslcourse.data.omniglot as om

    lines = {n: (VINYALS_DIR / f"{n}.txt").read_text().splitlines() for n in ("train", "test")}
    monkeypatch.setattr(om, "VINYALS_DIR", tmp_path)
    for name, edited in (("train", lines["train"][4:]), ("test", lines["test"] + lines["train"][:4]),
                         ("test", lines["test"][4:] + lines["test"][:4])):
        (tmp_path / f"{name}.txt").write_text("\n".join(edited) + "\n")
        with pytest.raises(ValueError, match=rf"{name}\.txt is not the papers' {name} list: its .* characters are "
                                             rf"not the ones shipped.*git checkout -- fslcourse/data/vinyals/{name}\.txt"):
            vinyals_characters(name)
    (tmp_path / "test.txt").write_bytes(("\r\n".join(lines["test"]) + "\r\n").encode())
    assert len(vinyals_characters("test")) == 423
    (tmp_path / "test.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"the Vinyals list .*test\.txt is missing; restore the file"):
        vinyals_characters("test")
    # said before Omniglot is looked for and read (a first load preprocesses for minutes)
    for name in ("train", "val"):
        (tmp_path / f"{name}.txt").write_bytes((VINYALS_DIR / f"{name}.txt").read_bytes())
    monkeypatch.setattr(om, "find_omniglot", lambda: pytest.fail("the images were looked for before the lists"))
    with pytest.raises(FileNotFoundError, match=r"test\.txt is missing"):
        load_omniglot(split="vinyals", progress=False)


def test_every_character_keeps_its_own_alphabet(vinyals, omniglot):
    """The alphabets are given per character: out of step with the names (e.g. sorted apart from them), episodes
    drawn within one alphabet would mix alphabets; the Vinyals lists do not run in alphabetical order."""
    for data in (vinyals, omniglot):
        for split in (data.train, data.val, data.test):
            assert split.alphabets == [name.split("/")[0] for name in split.base_names], split.name
            base_alphabet = [split.alphabet_names[int(a)] for a in split.class_alphabet[::len(split.rotations)]]
            assert base_alphabet == split.alphabets, split.name


def test_a_list_must_name_each_rotation_once(tmp_path, monkeypatch):
    """Four lines per character were not enough: a repeated rot000 in place of rot270 passed."""
    import fslcourse.data.omniglot as om

    lines = [f"Latin/character01/rot{r}" for r in ("000", "090", "180", "000")]
    (tmp_path / "test.txt").write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(om, "VINYALS_DIR", tmp_path)
    with pytest.raises(ValueError, match="character Latin/character01 does not list each of rot000, rot090, rot180 "
                                         "and rot270 once"):
        vinyals_characters("test")
