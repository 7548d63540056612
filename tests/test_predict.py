"""python -m fslcourse predict: your own images in, predictions out; bad folders and files get one clear line."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from fslcourse.data import load_image
from fslcourse.predict import classify, load_picture, predict_folders, read_query, read_support


def save(path, x, fmt=None):
    """Save a (1, 28, 28) ink image as a dark-on-light picture (the course's input convention, inverted)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((255 - x[0].numpy() * 255).astype(np.uint8)).resize((105, 105)).save(path, format=fmt)
    return path


@pytest.fixture
def folders(glyphs, tmp_path):
    test = glyphs[2]
    x = test.get(torch.arange(3), torch.arange(4)[None].expand(3, -1))  # (3 classes, 4 drawings, 1, 28, 28)
    for k, name in enumerate(("alpha", "beta", "gamma")):
        for i in range(2 if k else 1):  # uneven shots: 1, 2, 2
            save(tmp_path / "support" / name / f"{i}.png", x[k, i])
        save(tmp_path / "query" / f"q{k}.jpg" if k == 1 else tmp_path / "query" / f"q{k}.png", x[k, 3])
    return tmp_path


def test_reading_follows_the_course_preprocessing(folders):
    support_x, support_y, names, files = read_support(folders / "support")
    assert names == ["alpha", "beta", "gamma"] and support_y.tolist() == [0, 1, 1, 2, 2]
    assert torch.equal(support_x[0], load_image(folders / "support" / "alpha" / "0.png"))
    query_x, qfiles = read_query([folders / "query"])
    assert query_x.shape == (3, 1, 28, 28) and [f.split("/")[-1] for f in qfiles] == ["q0.png", "q1.jpg", "q2.png"]


class Echo(torch.nn.Module):
    """Nearest-mean in pixel space: a reference classifier whose logits we can compute by hand."""

    needs_grad_at_test = False

    def predict(self, support_x, support_y, query_x):
        means = torch.stack([support_x[support_y == k].mean(0) for k in range(int(support_y.max()) + 1)])
        return -torch.cdist(query_x.flatten(1), means.flatten(1))


def test_probabilities_are_the_softmax_of_the_logits(folders):
    support_x, support_y, names, _ = read_support(folders / "support")
    query_x, files = read_query(folders / "query")
    preds = classify(Echo(), support_x, support_y, query_x, names, files)
    probs = torch.softmax(Echo().predict(support_x, support_y, query_x).double(), 1)
    for p, row in zip(preds, probs):
        assert p.predicted == names[int(row.argmax())] and p.probability == pytest.approx(float(row.max()), abs=1e-4)
        assert [c for c, _ in p.top] == [names[int(i)] for i in row.argsort(descending=True)]
        assert sum(q for _, q in p.top) == pytest.approx(1.0, abs=1e-3)  # three classes: the top three are all


def test_predict_writes_csv_json_and_a_contact_sheet(folders, omniglot):
    """With the committed lake ProtoNet (the default), the drawings' own classes win, and the three files are written."""
    out = folders / "out"
    preds = predict_folders(folders / "support", [folders / "query"], out=out)
    assert [p.predicted for p in preds] == ["alpha", "beta", "gamma"]
    data = json.loads((out / "predictions.json").read_text())
    assert (data["method"], data["profile"]) == ("protonet", "lake")  # the best one-shot model by default
    assert data["classes"] == ["alpha", "beta", "gamma"] and [p["predicted"] for p in data["predictions"]] == \
        ["alpha", "beta", "gamma"]
    assert (out / "predictions.csv").read_text().splitlines()[0] == "file,predicted,probability,top3"
    with Image.open(out / "contact_sheet.png") as im:
        assert im.size[0] > 100


@pytest.mark.parametrize("make, message", [
    (lambda d: (d / "support" / "delta").mkdir(), "class folder .*delta has no images; add at least one"),
    (lambda d: (d / "support" / "beta" / "notes.txt").write_text("x"), "notes.txt is not an image"),
    (lambda d: (d / "support" / "beta" / "bad.png").write_bytes(b"not a png"), "bad.png is not a readable image"),
    (lambda d: save(d / "support" / "loose.png", torch.zeros(1, 28, 28)), "holds files outside class folders"),
    (lambda d: Image.new("L", (5000, 4000), 255).save(d / "support" / "beta" / "big.png"), "5000×4000 pixels"),
])
def test_bad_support_folders_are_one_clear_line(folders, make, message):
    make(folders)
    with pytest.raises(ValueError, match=message):
        read_support(folders / "support")


def test_one_class_missing_query_and_fixed_heads_are_refused(folders, tmp_path):
    import shutil

    for name in ("beta", "gamma"):
        shutil.rmtree(folders / "support" / name)
    with pytest.raises(ValueError, match="has 1 class folder.*at least two"):
        read_support(folders / "support")
    with pytest.raises(ValueError, match="does not exist"):
        read_query([tmp_path / "nope.png"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="names no image"):
        read_query(tmp_path / "empty")

    class FiveWay(Echo):
        n_way, zero_head = 5, False
    with pytest.raises(ValueError, match="fixed 5-way head but the support folder has 2 classes"):
        classify(FiveWay(), torch.zeros(2, 1, 28, 28), torch.tensor([0, 1]), torch.zeros(1, 1, 28, 28), ["a", "b"], ["q"])
    with pytest.raises(ValueError, match="is not an image"):
        load_picture(tmp_path / "x.gif")


def test_cli_predict_and_its_errors(folders, omniglot, capsys):
    from fslcourse.cli import main

    assert main(["predict", "--support", str(folders / "support"), "--query", str(folders / "query" / "q2.png")]) == 0
    out = capsys.readouterr().out
    assert "q2.png: gamma (" in out
    assert out.startswith("protonet (lake checkpoint), one query at a time:\n")  # which model answered
    assert main(["predict", "--support", str(folders / "support"), "--query", str(folders / "query" / "q2.png"),
                 "--method", "pixel"]) == 0
    assert capsys.readouterr().out.startswith("pixel (no weights), one query at a time:\n")
    (folders / "out.txt").write_text("")
    assert main(["predict", "--support", str(folders / "support"), "--query", str(folders / "query"),
                 "--out", str(folders / "out.txt")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a file; give a folder" in err


def test_transductive_predictions_match_soft_k_means_over_batch_statistics(folders, omniglot):
    """--transductive is SoftKMeans(BatchStatistics(lake)) on all the queries at once; records say so."""
    from fslcourse.methods.transductive import REFINE_STEPS, BatchStatistics, SoftKMeans
    from fslcourse.pretrained import pretrained

    out = folders / "out"
    preds = predict_folders(folders / "support", [folders / "query"], out=out, transductive=True)
    assert [p.predicted for p in preds] == ["alpha", "beta", "gamma"]
    assert json.loads((out / "predictions.json").read_text())["transductive"] is True
    support_x, support_y, names, _ = read_support(folders / "support")
    query_x, files = read_query(folders / "query")
    model = SoftKMeans(BatchStatistics(pretrained("protonet", profile="lake", device="cpu")), steps=REFINE_STEPS)
    want = classify(model, support_x, support_y, query_x, names, files)
    assert [p.probability for p in preds] == [p.probability for p in want]
    inductive = predict_folders(folders / "support", [folders / "query"])
    assert [p.probability for p in preds] != [p.probability for p in inductive]


def test_transductive_needs_a_euclidean_prototype_method(folders, omniglot, capsys):
    from fslcourse.cli import main

    assert main(["predict", "--support", str(folders / "support"), "--query", str(folders / "query"),
                 "--method", "matching", "--transductive"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--transductive refines Euclidean prototypes" in err


def test_an_earlier_runs_files_are_replaced_only_with_overwrite(folders, omniglot):
    out = folders / "out"
    predict_folders(folders / "support", [folders / "query"], out=out)
    before = (out / "predictions.json").read_bytes()
    with pytest.raises(ValueError, match=r"already holds predictions\.csv, predictions\.json, contact_sheet\.png; "
                                         "pass --overwrite"):
        predict_folders(folders / "support", [folders / "query"], out=out, transductive=True)
    assert (out / "predictions.json").read_bytes() == before
    predict_folders(folders / "support", [folders / "query"], out=out, transductive=True, overwrite=True)
    assert json.loads((out / "predictions.json").read_text())["transductive"] is True


def test_a_blank_or_inverted_picture_is_refused_not_classified(glyphs, tmp_path):
    """A blank page got 'b (68.0%)' and white strokes on black 'b (99.5%)': confident answers about nothing."""
    x = glyphs[2].get(torch.tensor([0]), torch.tensor([[0]]))[0, 0]  # (1, 28, 28) ink = 1
    assert torch.equal(load_picture(save(tmp_path / "ok.png", x)), load_image(tmp_path / "ok.png"))
    with pytest.raises(ValueError, match=r"blank\.png holds no ink at 28×28 pixels \(a blank image, or strokes too thin"):
        load_picture(save(tmp_path / "blank.png", torch.zeros_like(x)))
    with pytest.raises(ValueError, match=r"inverted\.png is mostly ink \(\d+% of its pixels\).*invert the image"):
        load_picture(save(tmp_path / "inverted.png", 1 - x))


def test_a_query_folder_with_sub_folders_is_refused_not_half_read(folders):
    """Images in a sub-folder of --query were skipped without a word."""
    stroke = torch.zeros(1, 28, 28)
    stroke[0, 6:22, 12:15] = 1  # a vertical bar: ink on a light background
    save(folders / "query" / "more" / "q9.png", stroke)
    with pytest.raises(ValueError, match=r"holds sub-folders \(more\) whose images would be skipped"):
        read_query(folders / "query")
    assert len(read_query([folders / "query" / "q0.png", folders / "query" / "more"])[1]) == 2


def test_a_truncated_picture_of_yours_is_not_sent_to_re_download_omniglot(folders):
    whole = (folders / "query" / "q0.png").read_bytes()
    broken = folders / "broken.png"
    broken.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ValueError, match=r"broken\.png is not a readable image .*replace or remove it") as err:
        load_picture(broken)
    assert "Omniglot" not in str(err.value)


def test_a_support_class_with_sub_folders_is_refused_not_half_read(folders):
    """Images in a sub-folder of a support class were skipped without a word (--query refused the same layout)."""
    stroke = torch.zeros(1, 28, 28)
    stroke[0, 6:22, 12:15] = 1
    save(folders / "support" / "beta" / "more" / "b9.png", stroke)
    with pytest.raises(ValueError, match=r"class folder .*beta holds sub-folders \(more\) whose images would be"):
        read_support(folders / "support")


def test_a_photo_is_read_the_way_it_is_shown(folders):
    """A JPEG whose EXIF says 'rotate 90°' (a phone photo) was read on its side: a rotation is another class."""
    stroke = torch.zeros(1, 28, 28)
    stroke[0, 4:24, 12:15] = 1  # a vertical bar, as the viewer shows it
    upright = save(folders / "upright.png", stroke)
    with Image.open(upright) as im:
        exif = Image.Exif()
        exif[0x0112] = 6  # Orientation: the stored pixels are to be turned 90° clockwise to be shown
        im.transpose(Image.Transpose.ROTATE_90).save(folders / "photo.jpg", exif=exif.tobytes(), quality=100)
    assert (load_picture(folders / "photo.jpg") - load_picture(upright)).abs().mean() < 0.02


def test_a_checkpoint_of_another_recipe_is_refused(tmp_path, monkeypatch):
    """A copy of protonet-quick.pt named protonet-lake.pt loaded as the lake model, and predict recorded 'lake'."""
    import importlib
    import shutil

    store = importlib.import_module("fslcourse.pretrained")  # the module: fslcourse.pretrained is also a function
    shutil.copy(store.CHECKPOINT_DIR / "protonet-quick.pt", tmp_path / "protonet-lake.pt")
    monkeypatch.setattr(store, "CHECKPOINT_DIR", tmp_path)
    with pytest.raises(ValueError, match=r"protonet-lake\.pt holds protonet trained with recipe 'quick', not 'lake'"):
        store.pretrained("protonet", profile="lake")


def test_class_names_are_text_on_the_contact_sheet(folders, omniglot):
    """A class folder named '$^$' made matplotlib's formula parser fail after two of the three files were written."""
    (folders / "support" / "beta").rename(folders / "support" / "$^$")
    out = folders / "out"
    preds = predict_folders(folders / "support", [folders / "query"], "pixel", out=out)
    assert len(preds) == 3 and sorted(p.name for p in out.iterdir()) == ["contact_sheet.png", "predictions.csv",
                                                                         "predictions.json"]


def test_a_16_bit_drawing_keeps_its_grey_ink(folders):
    """Pillow's convert('L') clips 16-bit values: dark-grey ink (8000 of 65535) became white, and the drawing
    was refused as blank."""
    stroke = torch.zeros(1, 28, 28)
    stroke[0, 4:24, 11:17] = 1
    eight = save(folders / "eight.png", stroke)
    with Image.open(eight) as im:
        grey = np.asarray(im.convert("L"), dtype=np.float64)
    sixteen = (grey / 255 * 65535).astype(np.uint16)  # the same picture, 16 bits deep
    sixteen[sixteen < 30000] = 8000  # its ink dark grey, not black
    Image.fromarray(sixteen).save(folders / "sixteen.png")
    got = load_picture(folders / "sixteen.png")
    assert (got > 0.5).float().mean() > 0.1 and (got - load_picture(eight)).abs().mean() < 0.05


def test_grey_paper_is_refused_with_the_right_advice(folders):
    """Paper at grey 150 was read as 41% ink on every pixel and classified without a word."""
    stroke = torch.zeros(1, 28, 28)
    stroke[0, 4:24, 12:16] = 1
    grey = (150 - stroke[0].numpy() * 150).astype(np.uint8)  # ink black, paper grey 150
    Image.fromarray(grey).resize((105, 105)).save(folders / "grey.png")
    with pytest.raises(ValueError, match=r"grey\.png has grey paper .*raise the contrast or crop"):
        load_picture(folders / "grey.png")
    load_picture(save(folders / "white.png", stroke))  # the same drawing on white paper is read


def test_light_grey_paper_is_made_white_and_white_paper_is_untouched(folders):
    """Paper at grey 215 (a photo, a scan) passed the grey-paper check and reached the model as a 16% ink wash over
    every pixel, which no training drawing has. Its median level is now paper: 0; full ink stays 1."""
    stroke = torch.zeros(1, 28, 28)
    stroke[0, 4:24, 12:16] = 1
    grey = (215 - stroke[0].numpy() * 215).astype(np.uint8)  # ink black, paper grey 215
    Image.fromarray(grey).resize((105, 105)).save(folders / "light.png")
    x = load_picture(folders / "light.png")
    assert float(x.median()) == 0.0 and float(x.max()) == 1.0
    white = save(folders / "white.png", stroke)
    assert (x - load_picture(white)).abs().max() < 0.05  # what the model sees: the drawing on white paper
    assert torch.equal(load_picture(white), load_image(white))  # white paper: the loader's input, exactly


def test_a_huge_picture_is_one_line_about_its_size(folders, recwarn):
    """A 10000x10000 header printed Pillow's two-line warning first; past Pillow's own limit the refusal said
    'not a readable image'."""
    from fslcourse.predict import MAX_PIXELS

    Image.new("L", (10000, 10000), 255).save(folders / "huge.png")
    with pytest.raises(ValueError, match=rf"huge\.png is 10000×10000 pixels, more than {MAX_PIXELS:,}"):
        load_picture(folders / "huge.png")
    assert not [w for w in recwarn if "DecompressionBomb" in type(w.message).__name__]


def test_relation_scores_are_printed_as_scores(folders, omniglot, capsys):
    """The CLI printed 'gamma (98.4%)' for a relation score, a number that is no probability."""
    from fslcourse.cli import main

    assert main(["predict", "--support", str(folders / "support"), "--query", str(folders / "query" / "q2.png"),
                 "--method", "relation"]) == 0
    out = capsys.readouterr().out
    assert "(relation score 0." in out and "%" not in out
    assert main(["predict", "--support", str(folders / "support"), "--query", str(folders / "query" / "q2.png"),
                 "--method", "pixel"]) == 0
    assert "%)" in capsys.readouterr().out


def test_the_method_and_its_checkpoint_are_checked_before_the_images(folders, monkeypatch):
    """An unknown --method, a missing checkpoint or a bad --device was reported only after every image was read."""
    import fslcourse.predict as predict

    def no_reading(*args, **kw):
        raise AssertionError("images were read before the method was checked")

    monkeypatch.setattr(predict, "read_support", no_reading)
    with pytest.raises(ValueError, match="method 'nosuch' is not registered"):
        predict_folders(folders / "support", [folders / "query"], "nosuch")
    with pytest.raises(FileNotFoundError, match="'gnn' has no 'lake' recipe|no 'lake' checkpoint"):
        predict_folders(folders / "support", [folders / "query"], "gnn", profile="lake")
    with pytest.raises(ValueError, match="nosuchdevice"):
        predict_folders(folders / "support", [folders / "query"], "pixel", device="nosuchdevice")


def test_out_inside_an_input_folder_is_refused(folders):
    """--out set to the query folder was accepted; the next run failed on 'predictions.csv is not an image'."""
    for out in (folders / "query", folders / "support" / "alpha" / "out"):
        with pytest.raises(ValueError, match="is inside the input folder .*choose a folder outside it"):
            predict_folders(folders / "support", [folders / "query"], "pixel", out=out)


def test_the_contact_sheet_shows_scores_as_scores_and_at_most_sheet_queries():
    """It titled a relation score 0.97 as '97%', and drew every query: a thousand made an unreadable picture."""
    from fslcourse.predict import SHEET_QUERIES, Prediction, sheet_figure

    support_x, support_y = torch.rand(2, 1, 28, 28), torch.tensor([0, 1])
    n = SHEET_QUERIES + 5
    preds = [Prediction(f"q{i}.png", "a", 0.97, [["a", 0.97], ["b", 0.4]], "relation score") for i in range(n)]
    fig = sheet_figure(preds, torch.rand(n, 1, 28, 28), support_x, support_y, ["a", "b"])
    titles = [ax.get_title() for ax in fig.axes]
    assert len(titles) == 2 + SHEET_QUERIES and titles[2] == "a\nrelation score 0.97"
    assert not any("%" in t for t in titles)
    assert fig._suptitle.get_text() == f"the first {SHEET_QUERIES} of {n} queries; predictions.csv has them all"
    few = sheet_figure(preds[:3], torch.rand(3, 1, 28, 28), support_x, support_y, ["a", "b"])
    assert few._suptitle is None and [ax.get_title() for ax in few.axes][2] == "a\nrelation score 0.97"


def test_a_query_named_twice_is_classified_once(folders):
    """A folder and one of its files both given: that file had two rows in predictions.csv."""
    query_x, files = read_query([folders / "query" / "q2.png", folders / "query", "./" / folders / "query" / "q0.png"])
    assert [f.split("/")[-1] for f in files] == ["q2.png", "q0.png", "q1.jpg"] and query_x.shape == (3, 1, 28, 28)


def test_the_contact_sheets_class_names_are_wrapped_to_their_column():
    """Omniglot's folder names (Angelic_character03) ran into their neighbours' titles on the sheet."""
    from fslcourse.predict import _wrapped

    assert _wrapped("Angelic_character03") == "Angelic_\ncharacter03"  # broken after the underscore
    assert _wrapped("Japanese_(hiragana)_character12") == "Japanese_\n(hiragana)_\ncharacter12"
    assert all(len(line) <= 15 for line in _wrapped("averyveryverylongnamewithoutanybreak").splitlines())
    assert _wrapped("cat") == "cat"


def test_cli_predict_names_a_transductive_run_and_the_profile(folders, omniglot, capsys):
    from fslcourse.cli import main

    args = ["predict", "--support", str(folders / "support"), "--query", str(folders / "query")]
    assert main(args + ["--transductive"]) == 0
    assert capsys.readouterr().out.startswith("protonet (lake checkpoint), the queries classified together "
                                              "(--transductive):\n")
    assert main(args + ["--profile", "quick"]) == 0
    assert capsys.readouterr().out.startswith("protonet (quick checkpoint), one query at a time:\n")


def test_a_photo_of_paper_on_a_dark_table_is_refused_not_read_as_a_framed_drawing(folders):
    """A page filling 80% of a photo on a dark table passed the ink and paper checks: the model read a thick ink frame
    around the drawing, and the prediction was printed as if all were fine (Omniglot's outer ring is at most ~15% ink)."""
    stroke = torch.zeros(1, 28, 28)
    stroke[0, 4:24, 12:16] = 1
    page = Image.fromarray((255 - stroke[0].numpy() * 255).astype(np.uint8)).resize((180, 180))
    photo = Image.new("L", (200, 200), 40)  # the table, dark grey
    photo.paste(page, (10, 10))
    photo.save(folders / "table.jpg")
    with pytest.raises(ValueError, match=r"table\.jpg has a dark edge \(\d+% of its outermost pixels read as ink\): "
                                         r"crop to the paper"):
        load_picture(folders / "table.jpg")
    load_picture(save(folders / "page.png", stroke))  # the page alone is read
