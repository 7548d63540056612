"""Atomic writes: the mode an ordinary open gives, errors that name the user's path, and early path checks."""
import json
import os
import stat

import pytest
import torch

from fslcourse.io import atomic_torch_save, atomic_write_json, check_writable, save_traceback


@pytest.fixture
def umask():
    """Set the process umask for one test, then restore it."""
    old = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(old)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_new_files_get_the_mode_the_umask_gives(tmp_path, umask, mask, mode):
    umask(mask)
    assert stat.S_IMODE(atomic_write_json({"a": 1}, tmp_path / "r.json").stat().st_mode) == mode
    assert stat.S_IMODE(atomic_torch_save({"w": torch.ones(2)}, tmp_path / "c.pt").stat().st_mode) == mode


def test_a_replaced_file_keeps_its_mode(tmp_path, umask):
    umask(0o022)
    path = tmp_path / "r.json"
    path.write_text("{}")
    path.chmod(0o640)
    atomic_write_json({"a": 2}, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640 and json.loads(path.read_text()) == {"a": 2}


def test_write_errors_name_the_path_not_a_temporary_file(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(NotADirectoryError, match=f"could not write {blocker / 'out.json'}: {blocker} is a file") as err:
        atomic_write_json({}, blocker / "out.json")
    assert ".tmp" not in str(err.value)
    with pytest.raises(IsADirectoryError, match=f"cannot write {tmp_path}: it is a folder"):
        atomic_write_json({}, tmp_path)

    def fails(tmp):
        raise PermissionError(13, "Permission denied", tmp)

    from fslcourse.io import _atomic
    with pytest.raises(PermissionError, match=r"could not write .*x\.json \(Permission denied\)") as err:
        _atomic(tmp_path / "x.json", fails)
    assert ".tmp" not in str(err.value) and not list(tmp_path.glob("x.json*"))


def test_check_writable_before_the_work(tmp_path):
    assert check_writable(tmp_path / "new" / "deeper" / "r.json") == tmp_path / "new" / "deeper" / "r.json"
    assert not (tmp_path / "new").exists(), "the check creates nothing"
    with pytest.raises(ValueError, match=f"--json {tmp_path} is a folder; give a file path"):
        check_writable(tmp_path, "--json")
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match=f"cannot be created: {tmp_path / 'f'} is a file, not a folder"):
        check_writable(tmp_path / "f" / "r.json")


def test_save_traceback_writes_the_whole_traceback(tmp_path, monkeypatch):
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    try:
        raise RuntimeError("boom")
    except RuntimeError as err:
        path = save_traceback(err)
    assert path.parent == tmp_path and "Traceback" in path.read_text() and "RuntimeError: boom" in path.read_text()


def test_a_folder_that_refuses_files_is_caught_even_when_permission_bits_say_yes():
    """As root every permission bit says yes; /proc still refuses a new file, after the work would have run."""
    import sys

    if not sys.platform.startswith("linux"):
        pytest.skip("/proc is Linux's")
    with pytest.raises(ValueError, match=r"/proc/x\.pt cannot be written: /proc refuses new files"):
        check_writable("/proc/x.pt", "the checkpoint")


def test_a_folder_or_a_pickled_object_is_a_clear_load_error(tmp_path):
    """A folder was a raw IsADirectoryError; torch's refusal of a pickled object was cut after a bold escape code,
    leaving the terminal bold."""
    import pickle

    from fslcourse.io import load_checkpoint

    with pytest.raises(ValueError, match="is a folder; give the checkpoint file inside it"):
        load_checkpoint(tmp_path)
    torch.save({"f": pickle.loads(pickle.dumps(os.path.join))}, tmp_path / "odd.pt")  # an object weights_only refuses
    with pytest.raises(ValueError, match="odd.pt is not a loadable checkpoint") as err:
        load_checkpoint(tmp_path / "odd.pt")
    assert "\x1b[" not in str(err.value)


def test_load_errors_say_what_is_wrong_and_never_advise_weights_only_false(tmp_path):
    import pickle

    from fslcourse.io import load_checkpoint
    from fslcourse.methods import ProtoNet
    from fslcourse.pretrained import load_method, save_method

    torch.save({"f": pickle.loads(pickle.dumps(os.path.join))}, tmp_path / "odd.pt")
    with pytest.raises(ValueError, match="holds objects other than tensors and plain data") as err:
        load_checkpoint(tmp_path / "odd.pt")
    assert "weights_only=False" not in str(err.value).replace(" ", "") and "weights_only` set to `False" not in str(err.value)
    good = tmp_path / "protonet-quick.pt"
    save_method(ProtoNet(backbone_kwargs={"hidden": 8}), good, seed=0, profile="quick", train_seconds=1.0)
    (tmp_path / "cut.pt").write_bytes(good.read_bytes()[:300])
    with pytest.raises(ValueError, match=r"cut\.pt is not a loadable checkpoint \(it is not a complete torch file"):
        load_checkpoint(tmp_path / "cut.pt")
    with pytest.raises(ValueError, match=r"holds protonet trained with recipe 'quick', not 'lake'; retrain it with "
                                         r"`python -m fslcourse train protonet --recipe lake --overwrite`"):
        load_method(good, expect="protonet", expect_recipe="lake")
    ckpt = torch.load(good, weights_only=True)
    torch.save({**ckpt, "config": {**ckpt["config"], "bogus": 1}}, tmp_path / "bogus.pt")
    with pytest.raises(ValueError, match=r"bogus\.pt: its config .* does not fit this version's protonet .*bogus"):
        load_method(tmp_path / "bogus.pt")
    torch.save({**ckpt, "config": {**ckpt["config"], "backbone_kwargs": {"hidden": 16}}}, tmp_path / "wide.pt")
    with pytest.raises(ValueError, match=r"the weights do not fit protonet.*: size mismatch for .*; retrain it"):
        load_method(tmp_path / "wide.pt")


@pytest.mark.parametrize("edit, message", [
    ({"config": [32]}, r"its field 'config' is list \[32\], not dict"),
    ({"steps": "100"}, r"its field 'steps' is str '100', not int"),
    ({"seed": True}, r"its field 'seed' is bool True, not int"),
    ({"recipe_name": 5}, r"its field 'recipe_name' is int 5, not str"),
    ({"cpu_seconds": "1h"}, r"its field 'cpu_seconds' is str '1h', not int or float"),
    ({"state_dict": [1]}, r"its field 'state_dict' is list \[1\], not dict"),
])
def test_a_field_edited_to_another_type_is_one_line_not_a_raw_error_or_a_silent_load(tmp_path, edit, message):
    """A config edited into a list raised a bare AttributeError; a weight list a bare TypeError; text for a recipe's
    name or a step count loaded and reached the reports."""
    from fslcourse.methods import ProtoNet
    from fslcourse.pretrained import load_method, save_method

    good = tmp_path / "protonet-quick.pt"
    save_method(ProtoNet(backbone_kwargs={"hidden": 8}), good, seed=0, profile="quick", train_seconds=1.0)
    ckpt = torch.load(good, weights_only=True)
    load_method(good)
    torch.save({**ckpt, **edit}, tmp_path / "edited.pt")
    with pytest.raises(ValueError, match=rf"edited\.pt: {message}; restore it .* or retrain it"):
        load_method(tmp_path / "edited.pt")
    name = next(iter(ckpt["state_dict"]))
    torch.save({**ckpt, "state_dict": {**ckpt["state_dict"], name: [0.0]}}, tmp_path / "weights.pt")
    with pytest.raises(ValueError, match=rf"its weight '{name}' is list, not a tensor"):
        load_method(tmp_path / "weights.pt")


def test_a_checkpoint_cut_anywhere_or_garbled_is_a_clear_load_error(tmp_path):
    """A file cut past its first 4 KB (an interrupted copy) raised torch's bare "OSError: [Errno 22] Invalid
    argument", naming neither the file nor the fix; a garbled name inside it a bare UnicodeDecodeError."""
    from fslcourse.io import load_checkpoint

    torch.save({"w": torch.zeros(4000)}, tmp_path / "whole.pt")
    data = (tmp_path / "whole.pt").read_bytes()
    for n in (5000, 9000, len(data) - 1):
        (tmp_path / "cut.pt").write_bytes(data[:n])
        with pytest.raises(ValueError, match=r"cut\.pt is not a loadable checkpoint \(it is not a complete torch file"):
            load_checkpoint(tmp_path / "cut.pt")
    at = data.rindex(b"whole/byteorder") + 7  # a member's name in the zip's central directory
    (tmp_path / "garbled.pt").write_bytes(data[:at] + b"\xff" + data[at + 1:])
    with pytest.raises(ValueError, match=r"garbled\.pt is not a loadable checkpoint"):
        load_checkpoint(tmp_path / "garbled.pt")


@pytest.mark.parametrize("part", ["data.pkl", "data/0"])
def test_a_flipped_bit_anywhere_is_a_clear_load_error_not_other_weights(tmp_path, part):
    """torch reads a zip's parts without their CRC-32: a bit flipped in a tensor loaded as other weights, one in
    the pickle as a garbled config key. The zip's checksums catch both."""
    import struct
    import zipfile

    from fslcourse.io import load_checkpoint

    torch.save({"config": {"backbone": "conv4"}, "w": torch.arange(4000.0)}, tmp_path / "whole.pt")
    assert load_checkpoint(tmp_path / "whole.pt")["w"].sum() == sum(range(4000))
    data = bytearray((tmp_path / "whole.pt").read_bytes())
    info = next(i for i in zipfile.ZipFile(tmp_path / "whole.pt").infolist() if i.filename.endswith("/" + part))
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26:info.header_offset + 30])
    data[info.header_offset + 30 + name_len + extra_len + 21] ^= 0x40  # one bit inside the part's stored bytes
    (tmp_path / "flipped.pt").write_bytes(bytes(data))
    with pytest.raises(ValueError, match=rf"flipped\.pt is not a loadable checkpoint \(its part {part} fails its "
                                         r"checksum.*restore it \(git checkout -- FILE\) or retrain it"):
        load_checkpoint(tmp_path / "flipped.pt")


def test_a_write_that_fails_midway_leaves_the_old_file_whole(tmp_path):
    """save_method's atomicity test failed before a byte was written, so writing the target in place passed it:
    here half a file is written, then the disk fills."""
    from fslcourse.io import _atomic

    path = tmp_path / "c.pt"
    atomic_torch_save({"w": torch.arange(3)}, path)
    before = path.read_bytes()

    def half_then_full(tmp):
        with open(tmp, "wb") as fh:
            fh.write(b"half a checkpoint")
        assert path.read_bytes() == before  # the target is untouched while the new file is written
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left on device"):
        _atomic(path, half_then_full)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_load_checkpoint_maps_the_tensors_where_it_is_asked(tmp_path):
    """map_location was dropped by a mutant: on a machine without the GPU a checkpoint was saved from, loading it
    would fail; here the tensors are mapped to the meta device, which torch.load alone would not do."""
    from fslcourse.io import load_checkpoint

    atomic_torch_save({"w": torch.ones(2)}, tmp_path / "c.pt")
    assert load_checkpoint(tmp_path / "c.pt")["w"].device.type == "cpu"
    assert load_checkpoint(tmp_path / "c.pt", map_location="meta")["w"].device.type == "meta"


def test_the_new_file_reaches_the_disk_before_the_rename(tmp_path, monkeypatch):
    """Atomic and durable: the temporary file is flushed (fsync) before it replaces the target, and the folder after,
    so a power cut during a long run's state write leaves the old state or the whole new one, never an empty file."""
    import fslcourse.io as io

    events, opened = [], {}
    real_open = os.open

    def track_open(p, *a, **k):
        fd = real_open(p, *a, **k)
        opened[fd] = os.path.basename(p)
        return fd

    monkeypatch.setattr(io.os, "open", track_open)
    monkeypatch.setattr(io.os, "fsync", lambda fd: events.append(("fsync", opened.get(fd))))
    real_replace = os.replace
    monkeypatch.setattr(io.os, "replace", lambda a, b: (events.append(("replace", os.path.basename(b))),
                                                         real_replace(a, b)))
    atomic_write_json({"a": 1}, tmp_path / "r.json")
    assert [e[0] for e in events] == ["fsync", "replace", "fsync"]
    assert events[0][1].startswith("r.json.") and events[1][1] == "r.json" and events[2][1] == tmp_path.name
    assert json.loads((tmp_path / "r.json").read_text()) == {"a": 1}
