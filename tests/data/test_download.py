"""Checked downloads and safe extraction, on the real official small zips in ../shared."""
import zipfile
from pathlib import Path

import pytest

from fslcourse.data.download import download_file, download_omniglot, md5sum, safe_extract_zip
from fslcourse.data.omniglot import find_omniglot

SMALL = {"images_background_small1": "e704a628b5459e08445c13499850abc4",
         "images_background_small2": "b75a71a51d3b13f821f212756fe481fd"}


@pytest.fixture(scope="module")
def official():
    root = find_omniglot()
    if root is None or not (root / "official").is_dir():
        pytest.skip("the official small zips are not available (set FSLCOURSE_DATA)")
    return root / "official"


def test_download_verifies_md5_and_is_atomic(official, tmp_path):
    url = (official / "images_background_small1.zip").as_uri()
    dest = download_file(url, tmp_path / "a.zip", SMALL["images_background_small1"], progress=False)
    assert md5sum(dest) == SMALL["images_background_small1"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zip"]


def test_wrong_md5_raises_and_leaves_nothing(official, tmp_path):
    url = (official / "images_background_small1.zip").as_uri()
    with pytest.raises(ValueError, match="md5 mismatch.*expected 0{32}, got e704a628"):
        download_file(url, tmp_path / "bad.zip", "0" * 32, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_download_omniglot_from_official_zips(official, tmp_path):
    out = download_omniglot(tmp_path, parts=tuple(SMALL), url_template=official.as_uri() + "/{name}.zip",
                            md5s=SMALL, progress=False)
    pngs = list((out / "images_background_small1").rglob("*.png"))
    assert len(pngs) == 2720  # MANIFEST.md: all 2,720 PNGs of small1
    assert len(list((out / "images_background_small2").rglob("*.png"))) == 3120
    assert not [p for p in out.iterdir() if p.name.startswith(".extract-")]


def test_missing_file_is_a_clear_connection_error(tmp_path):
    with pytest.raises(ConnectionError, match="could not download"):
        download_file((tmp_path / "nope.zip").as_uri(), tmp_path / "x.zip", "0" * 32, progress=False)


@pytest.mark.parametrize("error", [ConnectionResetError(104, "Connection reset by peer"), TimeoutError("timed out")])
def test_a_download_that_breaks_off_is_one_clear_line_and_leaves_nothing(tmp_path, monkeypatch, error):
    """A reset or a timeout after the first bytes escaped raw ('error: timed out': no URL, no fix)."""
    import io
    import urllib.request

    class Breaking(io.BytesIO):
        headers = {"Content-Length": "200000"}

        def read(self, n=-1):
            if self.tell() >= 65536:
                raise error
            return super().read(n)

    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: Breaking(b"x" * 200000))
    with pytest.raises(ConnectionError, match=r"^the download of https://example.org/a.zip broke off after 65,536 "
                                              r"bytes .*run the same command again"):
        download_file("https://example.org/a.zip", tmp_path / "a.zip", "0" * 32, progress=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("member", ["../evil.txt", "a/../../evil.txt", "/abs/evil.txt"])
def test_extract_rejects_escaping_members(tmp_path, member):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ok/fine.txt", "fine")
        zf.writestr(member, "evil")
    target = tmp_path / "target"
    with pytest.raises(ValueError, match="escapes the target directory"):
        safe_extract_zip(archive, target)
    assert not (tmp_path / "evil.txt").exists()
    assert not (target / "ok").exists(), "nothing may be extracted from a rejected archive"


def test_extract_places_members(tmp_path):
    archive = tmp_path / "good.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("top/a/b.txt", "b")
    assert safe_extract_zip(archive, tmp_path / "t") == ["top"]
    assert (tmp_path / "t" / "top" / "a" / "b.txt").read_text() == "b"
    assert [p.name for p in (tmp_path / "t").iterdir()] == ["top"]


def test_a_file_as_the_data_folder_and_empty_part_folders(tmp_path, monkeypatch):
    """--root naming a file is one line; an empty images_* folder (an interrupted extraction) is fetched again,
    a filled one is not."""
    import fslcourse.data.download as download

    (tmp_path / "afile").write_text("x")
    with pytest.raises(ValueError, match=r"the data folder .*afile is a file; give a folder"):
        download_omniglot(tmp_path / "afile")
    if Path("/proc").is_dir():  # a folder that refuses files: one line, before any download (was a raw [Errno 2])
        with pytest.raises(ValueError, match=r"the download /proc/x/omniglot/downloads/images_background\.zip cannot be"):
            download_omniglot("/proc/x")
    fetched = []
    monkeypatch.setattr(download, "download_file", lambda url, dest, md5, progress=True: fetched.append(dest.stem) or dest)
    monkeypatch.setattr(download, "safe_extract_zip", lambda archive, out: None)
    out = tmp_path / "data" / "omniglot"
    (out / "images_background").mkdir(parents=True)
    (out / "images_evaluation" / "Alphabet" / "character01").mkdir(parents=True)
    (out / "images_evaluation" / "Alphabet" / "character01" / "1.png").write_bytes(b"png")
    assert download_omniglot(tmp_path / "data", progress=False) == out and fetched == ["images_background"]
