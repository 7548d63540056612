"""result_record: the record says the split it measured and, within an alphabet, the alphabets left out."""
import pytest

from fslcourse.evaluate import evaluate
from fslcourse.methods import PixelPrototype
from fslcourse.results import result_record


def record(res, **kw):
    return result_record("pixel", res, config={}, seed=0, device="cpu", profile="quick", **kw)


def test_the_record_says_which_split_it_measured(glyphs):
    val = evaluate(PixelPrototype(), glyphs[1], 5, 1, 2, 3, seed=0)
    test = evaluate(PixelPrototype(), glyphs[2], 5, 1, 2, 3, seed=0)
    assert record(val)["protocol"]["split"] == "val"
    assert record(test)["protocol"]["split"] == "test"
    assert record(test, split="val")["protocol"]["split"] == "val"  # an explicit split wins
    assert "alphabets_left_out" not in record(test)


def test_a_result_that_does_not_say_its_split_is_refused(glyphs):
    res = evaluate(PixelPrototype(), glyphs[2], 5, 1, 2, 3, seed=0)
    res.split = None
    with pytest.raises(ValueError, match="a result record must say which split it measured; pass split="):
        record(res)


def test_within_alphabet_records_list_the_alphabets_left_out():
    from fslcourse.data import make_glyph_split

    split = make_glyph_split(10, 4, seed=2, n_alphabets=4, name="test")  # styles of 3, 3, 2 and 2 classes
    res = evaluate(PixelPrototype(), split, 3, 1, 1, 3, seed=0, within_alphabet=True)
    rec = record(res)
    assert rec["protocol"]["within_alphabet"] and rec["alphabets_left_out"] == ["style2", "style3"]
