"""A catalogue of bad inputs across the package: each must raise the documented error type with a one-line
message that names the value and the fix (never a raw traceback, never a silent wrong answer)."""
from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from fslcourse.config import get_device, get_profile, seed_everything
from fslcourse.data import EpisodeSampler, ImageSplit, SinusoidTasks, load_image, load_omniglot, make_glyph_split
from fslcourse.evaluate import evaluate, mean_ci95
from fslcourse.exercises import check
from fslcourse.generative.classical import Deformation
from fslcourse.io import atomic_write_json, check_target, check_writable, load_checkpoint
from fslcourse.methods import FewShotClassifier, PixelPrototype
from fslcourse.pretrained import checkpoint_info, load_method, pretrained
from fslcourse.report import load_records, protocol_key, report
from fslcourse.results import result_record
from fslcourse.training import load_or_train, recipe_for, train
from fslcourse.training.generators import get_generator

SPLIT = make_glyph_split(n_classes=10, n_examples=4, seed=2, n_alphabets=4, name="test")  # styles of 3,3,2,2
WORK = Path(tempfile.mkdtemp(prefix="fslcourse-bad-inputs-"))  # the bad files the catalogue reads
atexit.register(shutil.rmtree, WORK, True)


def _file(name: str, data: bytes) -> Path:
    path = WORK / name
    path.write_bytes(data)
    return path


def _gan_copy() -> Path:
    from fslcourse.pretrained import CHECKPOINT_DIR

    return Path(shutil.copy(CHECKPOINT_DIR / "gan-quick.pt", WORK / "gan.pt"))


def _truncated_checkpoint() -> Path:
    torch.save({"state_dict": {"w": torch.zeros(100)}}, WORK / "whole.pt")
    return _file("truncated.pt", (WORK / "whole.pt").read_bytes()[:200])


class _Payload:
    """Not a tensor: ``weights_only=True`` must refuse to rebuild it (a pickle could run code)."""


def _pickle_payload() -> Path:
    torch.save({"state_dict": _Payload()}, WORK / "payload.pt")
    return WORK / "payload.pt"


def _pixel_checkpoint() -> Path:
    from fslcourse.pretrained import save_method

    return save_method(PixelPrototype(), WORK / "pixel.pt", seed=0, profile="quick", train_seconds=0.0)


def _truncated_png() -> Path:
    from PIL import Image

    Image.new("L", (40, 40), 255).save(WORK / "whole.png")
    return _file("truncated.png", (WORK / "whole.png").read_bytes()[:50])


def _with_env(name: str, value: str, fn):
    def run():
        old = os.environ.get(name)
        os.environ[name] = value
        try:
            return fn()
        finally:
            if old is None:
                del os.environ[name]
            else:
                os.environ[name] = old
    return run


class _Model(FewShotClassifier):
    """PixelPrototype's logits passed through ``post``."""

    trainable = False

    def __init__(self, post):
        super().__init__()
        self.post, self.inner = post, PixelPrototype()

    def predict(self, support_x, support_y, query_x):
        return self.post(self.inner.predict(support_x, support_y, query_x))


class _Scaled(ImageSplit):
    def get(self, class_ids, example_ids):
        return super().get(class_ids, example_ids) * 3.0


def _bad_images_split():
    return _Scaled(SPLIT.name, SPLIT.images, SPLIT.base_names, SPLIT.alphabets, SPLIT.rotations)


def _result_without_split():
    res = evaluate(PixelPrototype(), SPLIT, 3, 1, 1, 2)
    res.split = None
    return result_record("pixel", res, config={}, seed=0, device="cpu", profile="quick")


def _good_prototypes(f, y, n):
    return torch.stack([f[y == k].mean(0) for k in range(n)])


def _episode(**change):
    """A 3-way 1-shot glyph episode as float images, with ``change`` applied to its tensors."""
    ep = EpisodeSampler(SPLIT, 3, 1, 2, seed=0).sample()
    parts = {"support_x": ep.support_x, "support_y": ep.support_y, "query_x": ep.query_x, **change}
    return parts["support_x"], parts["support_y"], parts["query_x"]


def _tiny_protonet():
    from fslcourse.methods import ProtoNet
    return ProtoNet(backbone_kwargs={"hidden": 4}).eval()


def _from_file(model, split: str):
    """``model`` as if loaded from a checkpoint trained on ``split``."""
    model.checkpoint_source = {"file": f"x-{split}.pt", "sha256": "0", "split": split}
    return model


def _vinyals_val():
    val = make_glyph_split(n_classes=10, n_examples=4, seed=3, name="val")
    val.protocol = "vinyals"
    return val


def _paired_with_a_val_baseline():
    from fslcourse.generative.augment import evaluate_paired
    from fslcourse.generative.classical import CopyNoise
    val = make_glyph_split(n_classes=10, n_examples=4, seed=3, name="val")
    base = evaluate(_tiny_protonet(), val, 3, 1, 1, 2, seed=0)
    return evaluate_paired(_tiny_protonet(), CopyNoise(0.0), SPLIT, 3, 1, [1], 1, 2, seed=0, baseline=base)


def _record_of_val_as_test():
    val = make_glyph_split(n_classes=10, n_examples=4, seed=3, name="val")
    res = evaluate(_tiny_protonet(), val, 3, 1, 1, 2, seed=0)
    return result_record("protonet", res, config={}, seed=0, device="cpu", profile="quick", split="test")


def _paired_with_an_alphabet_baseline_on_vinyals():
    from fslcourse.generative.augment import evaluate_paired
    from fslcourse.generative.classical import CopyNoise
    alphabet = ImageSplit("test", SPLIT.images, SPLIT.base_names, SPLIT.alphabets, (0,), "alphabet")
    vinyals = ImageSplit("test", SPLIT.images, SPLIT.base_names, SPLIT.alphabets, (0,), "vinyals")
    base = evaluate(_tiny_protonet(), alphabet, 3, 1, 1, 2, seed=0)
    return evaluate_paired(_tiny_protonet(), CopyNoise(0.0), vinyals, 3, 1, [1], 1, 2, seed=0, baseline=base)


def _nested_ensemble_with_a_vinyals_member():
    from fslcourse.methods.ensemble import Ensemble
    inner = Ensemble([_from_file(_tiny_protonet(), "vinyals"), _from_file(_tiny_protonet(), "alphabet")])
    outer = Ensemble([inner, _from_file(_tiny_protonet(), "alphabet")])
    alphabet = ImageSplit("test", SPLIT.images, SPLIT.base_names, SPLIT.alphabets, (0,), "alphabet")
    return evaluate(outer, alphabet, 3, 1, 1, 2)


def _ensemble_with_wrapped_scores():
    from fslcourse.generative.augment import AugmentedClassifier
    from fslcourse.generative.classical import CopyNoise
    from fslcourse.methods import get_method
    from fslcourse.methods.ensemble import Ensemble
    return Ensemble([_tiny_protonet(), AugmentedClassifier(get_method("relation")(), CopyNoise(0.0), 2)])


CATALOGUE = [
    # episodes (fslcourse/data/episodes.py)
    ("n_way of 0", lambda: EpisodeSampler(SPLIT, 0, 1, 1), ValueError, r"n_way=0 must be a positive integer"),
    ("fractional n_shot", lambda: EpisodeSampler(SPLIT, 3, 1.5, 1), ValueError, r"n_shot=1.5 must be a positive"),
    ("numpy float n_way", lambda: EpisodeSampler(SPLIT, np.float64(3), 1, 1), ValueError,
     r"n_way=.*3\.0.* must be a positive integer"),
    ("boolean n_query", lambda: EpisodeSampler(SPLIT, 3, 1, True), ValueError, r"n_query=True must be a positive"),
    ("more ways than classes", lambda: EpisodeSampler(SPLIT, 11, 1, 1), ValueError,
     r"n_way=11 but the 'test' split has 10 classes; lower n_way"),
    ("more shots and queries than examples", lambda: EpisodeSampler(SPLIT, 3, 3, 2), ValueError,
     r"n_shot \+ n_query = 3 \+ 2 = 5 but each class of the 'test' split has 4 examples"),
    ("within an alphabet, no alphabet large enough", lambda: EpisodeSampler(SPLIT, 4, 1, 1, within_alphabet=True),
     ValueError, r"n_way=4 but no alphabet of the 'test' split has that many classes \(the largest has 3\)"),
    ("a fractional episode seed", lambda: EpisodeSampler(SPLIT, 3, 1, 1, seed=1.5), ValueError,
     r"seed=1.5 must be a whole number from 0 to 2\*\*64 - 1"),
    ("a batch of 0 episodes", lambda: EpisodeSampler(SPLIT, 3, 1, 1).sample_batch(0), ValueError,
     r"n_episodes=0 must be a positive integer"),
    # splits and data (fslcourse/data)
    ("float images in a split", lambda: ImageSplit("x", torch.zeros(2, 3, 5, 5), ["a", "b"], ["a", "a"]),
     ValueError, r"images must be a uint8 tensor"),
    ("a bad rotation", lambda: ImageSplit("x", SPLIT.images, SPLIT.base_names, SPLIT.alphabets, (0, 5)),
     ValueError, r"rotations=\(0, 5\): use quarter turns"),
    ("glyph split of 0 classes", lambda: make_glyph_split(0), ValueError, r"n_classes=0 must be a positive integer"),
    ("sinusoid with 0 shots", lambda: SinusoidTasks().sample(2, 0, 1), ValueError, r"n_shot=0 must be a positive"),
    ("sinusoid amplitude range backwards", lambda: SinusoidTasks(amplitude=(5.0, 1.0)), ValueError,
     r"amplitude=\(5.0, 1.0\) must have low <= high"),
    ("a truncated PNG", lambda: load_image(_truncated_png()), ValueError,
     r"truncated\.png is not a readable image .*replace the file"),
    ("a text file named .png", lambda: load_image(_file("text.png", b"hello")), ValueError,
     r"text\.png is not a readable image"),
    ("a PNG that does not exist", lambda: load_image(WORK / "missing.png"), FileNotFoundError, r"missing\.png"),
    ("an image size of 0", lambda: load_image(_truncated_png(), image_size=0), ValueError,
     r"image_size=0 must be a positive integer"),
    ("no Omniglot and no download", _with_env("FSLCOURSE_DATA", str(WORK / "nothing"), _with_env(
        "FSLCOURSE_CACHE", str(WORK / "cache"), lambda: load_omniglot(download=False))), FileNotFoundError,
     r"Omniglot was not found .*set FSLCOURSE_DATA"),
    # configuration (fslcourse/config.py)
    ("device banana", lambda: get_device("banana"), ValueError, r"device='banana' is not a device"),
    ("FSLCOURSE_DEVICE=banana", _with_env("FSLCOURSE_DEVICE", "banana", get_device), ValueError,
     r"FSLCOURSE_DEVICE='banana' is not a device; unset FSLCOURSE_DEVICE or set it to cpu"),
    ("empty FSLCOURSE_DEVICE", _with_env("FSLCOURSE_DEVICE", "", get_device), ValueError,
     r"FSLCOURSE_DEVICE='' is empty"),
    ("cuda with a non-number index", lambda: get_device("cuda:first"), ValueError, r"'cuda:first' is not a device"),
    ("an unknown profile", lambda: get_profile("fast"), ValueError, r"profile='fast' is not known; use one of quick"),
    ("a negative seed", lambda: seed_everything(-1), ValueError, r"seed=-1 must be a whole number from 0 to 2\*\*64 - 1"),
    ("a seed torch cannot hold", lambda: seed_everything(2**64), ValueError, r"seed=18446744073709551616 must be a whole"),
    ("a tensor of seeds", lambda: seed_everything(torch.arange(3)), ValueError, r"seed=tensor\(\[0, 1, 2\]\) must be a whole"),
    ("True as a seed", lambda: seed_everything(True), ValueError, r"seed=True must be a whole number"),
    # evaluation (fslcourse/evaluate.py) and records (fslcourse/results.py)
    ("one episode", lambda: evaluate(PixelPrototype(), SPLIT, 3, 1, 1, 1), ValueError,
     r"n_episodes=1 but a confidence interval needs at least 2"),
    ("a model with NaN weights", lambda: evaluate(_Model(lambda z: z * float("nan")), SPLIT, 3, 1, 1, 2), ValueError,
     r"the model's logits are not finite \(NaN/inf\) on episode 0; its weights may be corrupt: retrain or reload"),
    ("a model with infinite logits", lambda: evaluate(_Model(lambda z: z / 0.0), SPLIT, 3, 1, 1, 2), ValueError,
     r"logits are not finite"),
    ("logits with too few columns", lambda: evaluate(_Model(lambda z: z[:, :2]), SPLIT, 3, 1, 1, 2), ValueError,
     r"logits of shape \(3, 2\), expected \(n_way \* n_query, n_way\) = \(3, 3\)"),
    ("episode images outside [0, 1]", lambda: evaluate(PixelPrototype(), _bad_images_split(), 3, 1, 1, 2), ValueError,
     r"episode 0: support_x has values in \[0, 3\], not \[0, 1\]"),
    ("a CI of one value", lambda: mean_ci95([1.0]), ValueError, r"at least 2 values, got 1"),
    ("a record that does not say its split", _result_without_split, ValueError,
     r"a result record must say which split it measured"),
    # reports, files and exercises
    ("a protocol without n_way", lambda: protocol_key({"n_shot": 1}), ValueError, r"needs integer n_way and n_shot"),
    ("an unknown report format", lambda: report(WORK, "html"), ValueError, r"format='html' is not known"),
    ("a results folder that does not exist", lambda: load_records(WORK / "no-results"), ValueError,
     r"results directory .*no-results does not exist"),
    ("--json pointing at a folder", lambda: check_writable(WORK, "--json"), ValueError,
     r"--json .* is a folder; give a file path"),
    ("a JSON file under a file", lambda: atomic_write_json({}, _file("plain", b"x") / "r.json"), OSError,
     r"could not write .*plain/r\.json: .*plain is a file, not a folder"),
    ("a checkpoint that does not exist", lambda: load_checkpoint(WORK / "none.pt"), FileNotFoundError,
     r"no checkpoint at .*none\.pt; train one with `python -m fslcourse train NAME --recipe RECIPE`"),
    ("a mistyped recipe for a method without weights", lambda: pretrained("pixel", profile="papr"), ValueError,
     r"^recipe 'papr' is not known; use one of quick, "),
    ("the record of a checkpoint not trained", lambda: checkpoint_info("protonet", "full"), FileNotFoundError,
     r"no 'full' checkpoint for 'protonet' at .*protonet-full\.pt; create it with `python -m fslcourse train "
     r"protonet --recipe full`"),
    ("the record of a mistyped name", lambda: checkpoint_info("protonett"), ValueError,
     r"^'protonett' names no checkpoint in the package \(no protonett-\*\.pt in .*\); give a registered method"),
    ("the record of a method without weights", lambda: checkpoint_info("pixel"), ValueError,
     r"^method 'pixel' has no weights, so it has no checkpoint; pretrained\('pixel'\) builds it$"),
    ("a truncated checkpoint", lambda: load_checkpoint(_truncated_checkpoint()), ValueError,
     r"truncated\.pt is not a loadable checkpoint .*restore it .* or retrain it"),
    ("a checkpoint with a pickled object", lambda: load_checkpoint(_pickle_payload()), ValueError,
     r"payload\.pt is not a loadable checkpoint .*more than tensors and plain data"),
    ("a checkpoint of another method", lambda: load_method(_pixel_checkpoint(), expect="protonet"), ValueError,
     r"pixel\.pt holds method 'pixel', not 'protonet'; retrain it"),
    ("a recipe that does not exist", lambda: recipe_for("protonet", "huge"), ValueError,
     r"method 'protonet' has no recipe 'huge'; use one of quick, full, paper"),
    ("a recipe field that does not exist", lambda: recipe_for("protonet", "quick", stepz=3), ValueError,
     r"stepz is not a recipe field"),
    ("a recipe with 0 steps", lambda: recipe_for("protonet", "quick", steps=0), ValueError,
     r"recipe steps=0 must be a positive integer"),
    ("an unknown schedule", lambda: recipe_for("protonet", "quick", schedule="exponential"), ValueError,
     r"recipe schedule='exponential' is not known; use one of constant, cosine, cosine-closed, linear"),
    ("training a method without weights", lambda: recipe_for("pixel"), ValueError,
     r"method 'pixel' has no trainable parameters"),
    ("a train --out that exists", lambda: check_target(_file("kept.pt", b"x"), overwrite=False), ValueError,
     r"kept\.pt exists; pass overwrite=True \(--overwrite\)"),
    ("resuming with no training state", lambda: train("protonet", out=WORK / "fresh.pt", resume=True), ValueError,
     r"nothing to resume: no training state at .*fresh\.state\.pt"),
    ("an unknown generator", lambda: get_generator("gann"), ValueError,
     r"generator 'gann' is not registered; known generators: deformation-gan, deformation-vae, diffusion, gan, "
     r"hallucinator, vae"),
    ("zero generated drawings per class", lambda: Deformation().generate(torch.zeros(2, 1, 28, 28), torch.arange(2), 0, 0),
     ValueError, r"n_per_class=0: ask for at least one generated example per class \(a positive integer\)"),
    ("a support set of the wrong shape", lambda: Deformation().generate(torch.zeros(2, 784), torch.arange(2), 1, 0),
     ValueError, r"support has shape \(2, 784\) for 2 labels; a pixel generator takes drawings"),
    ("a gan checkpoint given to the vae loader",
     lambda: load_or_train("vae", data=object(), path=_gan_copy(), progress=False), ValueError,
     r"gan\.pt holds a gan checkpoint, not a vae one; pass a vae checkpoint"),
    ("an unknown exercise", lambda: check("nope", _good_prototypes), ValueError, r"exercise 'nope' is not known"),
    ("a time limit of -1 s", lambda: check("prototypes", _good_prototypes, time_limit=-1), ValueError,
     r"time_limit=-1 must be a positive number of seconds"),
    ("an exercise checked on its result, not the function", lambda: check("prototypes", torch.zeros(2, 3)), ValueError,
     r"^check\('prototypes', fn\) needs your function itself, not a Tensor \(the result of calling it\?\): "
     r"check\('prototypes', my_function\)$"),
    ("an exercise's name and function swapped", lambda: check(_good_prototypes, "prototypes"), ValueError,
     r"^check\(\) takes the exercise's name first, then your function: check\('prototypes', _good_prototypes\)$"),
    # an episode's images (methods/base.py: check_support), and models that would answer wrongly
    ("uint8 query images", lambda: _tiny_protonet().predict(*_episode(query_x=(_episode()[2] * 255).to(torch.uint8))),
     ValueError, r"^query_x is torch.uint8, not float images in \[0, 1\] \(ink = 1\); e.g. x.float\(\) / 255"),
    ("0-255 float images", lambda: _tiny_protonet().predict(*_episode(support_x=_episode()[0] * 255)), ValueError,
     r"^support_x's pixels lie in \[0, 255\], not \[0, 1\]; .* divide by 255"),
    ("a NaN pixel in the query", lambda: _tiny_protonet().predict(*_episode(query_x=_episode()[2].index_fill(
        0, torch.tensor([1]), float("nan")))), ValueError, r"^query_x holds NaN pixels; rebuild the images"),
    ("query images of another size", lambda: _tiny_protonet().predict(*_episode(query_x=torch.zeros(6, 1, 27, 27))),
     ValueError, r"^support_x images are \(1, 28, 28\) but query_x images are \(1, 27, 27\)"),
    ("prototype init beside a cosine head", lambda: __import__("fslcourse.methods", fromlist=["FineTune"]).FineTune(
        init="prototype", cosine=True), ValueError, r"init='prototype' .* needs cosine=False; with cosine=True use"),
    ("a learn2learn task of other sizes", lambda: __import__("fslcourse.data.l2l_bridge", fromlist=["x"])
     .task_to_episode(torch.zeros(30, 1, 4, 4), torch.arange(5).repeat_interleave(6), 6, 1, 4), ValueError,
     r"the task's labels hold counts \[6, 6, 6, 6, 6\], not 6 classes of n_shot \+ n_query = 5"),
    ("a repeated rotation", lambda: ImageSplit("x", SPLIT.images, SPLIT.base_names, SPLIT.alphabets, (0, 0)),
     ValueError, r"rotations=\(0, 0\): use distinct quarter turns"),
    ("an ensemble with relation scores", lambda: __import__("fslcourse.methods.ensemble", fromlist=["x"]).Ensemble(
        [_tiny_protonet(), __import__("fslcourse.methods", fromlist=["x"]).get_method("relation")()]), ValueError,
     r"RelationNet returns scores, not logits"),
    ("soft k-means on a learned head", lambda: __import__("fslcourse.methods.transductive", fromlist=["x"]).SoftKMeans(
        __import__("fslcourse.methods", fromlist=["FineTune"]).FineTune()), ValueError,
     r"FineTune classifies with a learned head, not prototypes"),
    ("an ensemble with a Vinyals member on the alphabet split", lambda: evaluate(
        __import__("fslcourse.methods.ensemble", fromlist=["x"]).Ensemble(
            [_from_file(_tiny_protonet(), "vinyals"), _from_file(_tiny_protonet(), "alphabet")]),
        ImageSplit("test", SPLIT.images, SPLIT.base_names, SPLIT.alphabets, (0,), "alphabet"), 3, 1, 1, 2),
     ValueError, r"trained on the Vinyals split, whose meta-train classes include characters of"),
    ("an alphabet checkpoint on Vinyals validation", lambda: evaluate(_from_file(_tiny_protonet(), "alphabet"),
                                                                      _vinyals_val(), 3, 1, 1, 2), ValueError,
     r"trained on the alphabet split, whose meta-train alphabets hold most of the Vinyals 'val' characters"),
    ("a paired baseline from another split", _paired_with_a_val_baseline, ValueError,
     r"baseline was measured on the 'val' split \(custom protocol\), but these episodes come from 'test' \(custom"),
    ("a validation result recorded as test", _record_of_val_as_test, ValueError,
     r"split='test' but the result measured the 'val' split"),
    ("an infinite weight of generated examples", lambda: __import__(
        "fslcourse.generative.weighted_prototypes", fromlist=["x"]).weighted_prototypes(
        torch.zeros(2, 3), torch.tensor([0, 1]), torch.zeros(2, 3), torch.tensor([0, 1]), 2, float("inf")), ValueError,
     r"weight=inf: the weight of generated examples must be a finite number >= 0"),
    ("a GAN recipe with a schedule its trainer ignores", lambda: __import__(
        "fslcourse.training.generators", fromlist=["x"]).train_gan(None, SPLIT, __import__(
        "fslcourse.generative.gan", fromlist=["x"]).RECIPES["quick"].replace(schedule="cosine", meta_batch=4)),
     ValueError, r"the DAGAN's trainer draws one batch a step from any alphabet, at a constant learning rate, so "
                 r"meta_batch=4, schedule='cosine' would describe another run"),
    ("a misspelt schedule setting", lambda: __import__("fslcourse.recipe", fromlist=["Recipe"]).Recipe(
        steps=10, lr=1e-3, schedule="cosine", schedule_kwargs={"flor": 0.5}), ValueError,
     r"recipe schedule_kwargs 'flor' mean nothing to schedule='cosine'; it reads 'floor'"),
    ("a step schedule without its interval", lambda: __import__("fslcourse.recipe", fromlist=["Recipe"]).Recipe(
        steps=10, lr=1e-3, schedule="step"), ValueError, r"schedule='step' needs schedule_kwargs every= a whole number of steps >= 1"),
    ("a warm-up of 0 steps", lambda: __import__("fslcourse.recipe", fromlist=["Recipe"]).Recipe(
        steps=10, lr=1e-3, schedule="warmup-cosine", schedule_kwargs={"warmup": 0}), ValueError, r"warmup=0 is out of range"),
    ("within_alphabet as a string", lambda: __import__("fslcourse.recipe", fromlist=["Recipe"]).Recipe(
        steps=10, lr=1e-3, within_alphabet="False"), ValueError, r"recipe within_alphabet='False' must be True or False"),
    ("an infinite learning rate", lambda: __import__("fslcourse.recipe", fromlist=["Recipe"]).Recipe(
        steps=10, lr=float("inf")), ValueError, r"recipe lr=inf must be a finite non-negative number"),
    ("max_seconds as text", lambda: __import__("fslcourse.recipe", fromlist=["Recipe"]).Recipe(steps=10, lr=1e-3,
                                                                                               max_seconds="5"),
     ValueError, r"recipe max_seconds='5' must be a positive number of seconds or None"),
    ("an alphabet-split baseline for Vinyals episodes", _paired_with_an_alphabet_baseline_on_vinyals, ValueError,
     r"baseline was measured on the 'test' split \(alphabet protocol\), but these episodes come from 'test' "
     r"\(vinyals protocol\)"),
    ("a Vinyals member inside a nested ensemble", _nested_ensemble_with_a_vinyals_member, ValueError,
     r"trained on the Vinyals split, whose meta-train classes include characters of"),
    ("an ensemble with wrapped relation scores", _ensemble_with_wrapped_scores, ValueError,
     r"AugmentedClassifier returns scores, not logits"),
]
if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
    CATALOGUE.append(("mps on a machine without it", lambda: get_device("mps"), ValueError,
                      r"device='mps' was requested but MPS .* is not available"))
if not torch.cuda.is_available():
    CATALOGUE.append(("cuda without CUDA", _with_env("FSLCOURSE_DEVICE", "cuda", get_device), ValueError,
                      r"FSLCOURSE_DEVICE='cuda' was requested but CUDA is not available; unset FSLCOURSE_DEVICE"))


def test_the_catalogue_is_large():
    assert len(CATALOGUE) >= 25 and len({d for d, *_ in CATALOGUE}) == len(CATALOGUE)


@pytest.mark.parametrize("description, call, error, message", CATALOGUE, ids=[d for d, *_ in CATALOGUE])
def test_bad_input_gets_a_one_line_error(description, call, error, message):
    with pytest.raises(error, match=message) as info:
        call()
    text = str(info.value)
    assert text.strip() and "\n" not in text, f"{description}: the message must be one line: {text!r}"
    assert not re.search(r"Traceback|File \"|line \d+, in ", text), f"{description}: a raw traceback: {text!r}"
