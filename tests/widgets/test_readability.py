"""Every widget's picture is readable on a projector: no text under MIN_TEXT_PX pixels tall at the picture's own size.

The picture is a PNG shown at its native size (``figsize × dpi`` pixels), so a font of ``s`` points is
``s × dpi / 72`` pixels tall. A lecture hall reads about 11 pixels and up on a 1280×800 projector. Each widget is
built as the notebooks build it (with small untrained models), rendered, and every visible text artist measured.
"""
import numpy as np
import pytest
import torch
from matplotlib.text import Text

from fslcourse.widgets.plotting import MIN_TEXT_PX, crowded_text, small_text

MAX_WIDTH_PX = 1000  # wider pictures are shrunk to JupyterLab's column, and their text with them


def _randomised(model, scale):
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn_like(p))
    return model.eval()


def episode_browser(glyphs):
    from fslcourse.widgets.episode_browser import EpisodeBrowser

    return EpisodeBrowser({"train": glyphs[0], "test": glyphs[2]}, n_way=5, n_shot=1, n_query=2, seed=0)


def latent_explorer(glyphs):
    from fslcourse.methods import ProtoNet
    from fslcourse.widgets.latent_explorer import LatentExplorer

    trained = _randomised(ProtoNet(backbone_kwargs={"hidden": 8}), 0.3)
    return LatentExplorer(glyphs[2], trained, ProtoNet(backbone_kwargs={"hidden": 8}).eval(), n_way=5, n_shot=1,
                          n_query=5, seed=0)


def prediction_viewer(glyphs):
    from fslcourse.methods.pixel import PixelPrototype
    from fslcourse.widgets.prediction_viewer import PredictionViewer

    return PredictionViewer({"pixel": PixelPrototype(), "pixel again": PixelPrototype()}, glyphs[2], n_way=5,
                            n_shot=1, n_query=2, seed=0)


def prediction_viewer_three_long_names(glyphs):
    from fslcourse.methods.pixel import PixelPrototype
    from fslcourse.widgets.prediction_viewer import PredictionViewer

    names = ("ProtoNet (quick)", "fine-tune (cosine head)", "fine-tune (+ query entropy)")
    return PredictionViewer(dict.fromkeys(names, PixelPrototype()), glyphs[2], n_way=5, n_shot=1, n_query=2, seed=0)


def adaptation_stepper(glyphs):
    from fslcourse.methods.maml_regression import SinusoidMLP
    from fslcourse.widgets.adaptation_stepper import AdaptationStepper

    torch.manual_seed(0)
    return AdaptationStepper({"MAML": SinusoidMLP(), "pre-trained": SinusoidMLP()}, n_shot=5, inner_lr=0.02,
                             max_steps=4)


def scale_shift_viewer(glyphs):
    from fslcourse.methods.mtl import MTL
    from fslcourse.widgets.scale_shift_viewer import ScaleShiftViewer

    return ScaleShiftViewer(glyphs[2], _randomised(MTL(widths=(4, 6, 8)), 0.1), n_way=5, n_shot=1)


def vae_explorer(glyphs):
    from fslcourse.generative.vae import ConditionalVAE
    from fslcourse.widgets.vae_explorer import VAEExplorer

    return VAEExplorer(_randomised(ConditionalVAE(hidden=8), 0.2), glyphs[2], n_classes=5, n_shot=2, n_generated=3,
                       n_steps=5)


def gan_explorer(glyphs):
    from fslcourse.generative.gan import DAGANGenerator
    from fslcourse.widgets.gan_explorer import GANExplorer

    return GANExplorer(_randomised(DAGANGenerator(hidden=4, code_dim=8), 0.3), glyphs[2], n_classes=4, n_steps=5,
                       seed=0)


def gan_explorer_grid(glyphs):
    explorer = gan_explorer(glyphs)
    explorer.view.value = "sample grid"
    return explorer


def diffusion_explorer(glyphs):
    from fslcourse.generative.diffusion import Schedule
    from fslcourse.methods.protonet import ProtoNet
    from fslcourse.models.unet import UNet
    from fslcourse.widgets.diffusion_explorer import DiffusionExplorer

    net = _randomised(UNet(channels=8, cond_dim=8), 0.1)
    backbone = ProtoNet(backbone_kwargs={"hidden": 8}).backbone.eval()
    return DiffusionExplorer(net, Schedule("cosine", 20), backbone, glyphs[2], n_classes=3, n_shot=2, n_samples=3)


def drawing_board(glyphs):
    from fslcourse.methods.pixel import PixelPrototype
    from fslcourse.widgets.drawing import DrawingBoard

    board = DrawingBoard({"pixel": PixelPrototype()}, n_way=3)
    strokes = [[(20, 70), (120, 70)], [(70, 20), (70, 120)],
               [(70 + 40 * np.cos(a), 70 + 40 * np.sin(a)) for a in np.linspace(0, 2 * np.pi, 30)]]
    for k, stroke in enumerate(strokes):
        board.add_stroke((k, 0), stroke)
    board.add_stroke("query", strokes[0])
    return board


WIDGETS = [episode_browser, latent_explorer, prediction_viewer, prediction_viewer_three_long_names, adaptation_stepper, scale_shift_viewer,
           vae_explorer, gan_explorer, gan_explorer_grid, diffusion_explorer, drawing_board]


@pytest.mark.parametrize("make", WIDGETS, ids=lambda f: f.__name__)
def test_every_text_in_the_picture_is_readable_on_a_projector(make, glyphs):
    widget = make(glyphs)
    fig = widget.render()
    fig.canvas.draw()  # the picture as its PNG shows it: ticks are made when drawn
    width, _ = fig.get_size_inches() * fig.dpi
    assert width <= MAX_WIDTH_PX, f"{make.__name__}: {width:.0f} px wide, shrunk in JupyterLab; lower figsize or dpi"
    small = small_text(fig)
    assert not small, f"{make.__name__}: text under {MIN_TEXT_PX} px: " + "; ".join(
        f"{t!r} {px:.1f} px" for t, px in small[:8])
    crowded = crowded_text(fig)
    assert not crowded, f"{make.__name__}: " + "; ".join(crowded[:8])


def test_small_text_finds_a_small_label_and_ignores_hidden_and_empty_text():
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4, 3), dpi=72)
    ax = fig.add_subplot()
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title("big enough", fontsize=12)
    ax.text(0.5, 0.5, "tiny", fontsize=7)
    ax.text(0.5, 0.2, "hidden", fontsize=5).set_visible(False)
    ax.text(0.5, 0.1, "", fontsize=5)
    fig.canvas.draw() if fig.canvas else None
    assert [t for t, _ in small_text(fig)] == ["tiny"]
    assert all(isinstance(t, Text) for t in fig.findobj(Text))


def test_crowded_text_finds_overlaps_and_text_cut_off_by_the_edge():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4, 3), dpi=72)
    FigureCanvasAgg(fig)
    fig.text(0.1, 0.5, "left", fontsize=12)
    fig.text(0.5, 0.5, "apart", fontsize=12)
    assert crowded_text(fig) == []
    fig.text(0.12, 0.5, "on top", fontsize=12)
    fig.text(0.95, 0.1, "off the edge", fontsize=12)
    assert crowded_text(fig) == ["'off the edge' is cut off by the figure's edge", "'left' overlaps 'on top'"]


def test_widget_constructors_refuse_bad_arguments_in_one_line(glyphs):
    """A traitlets TraitError, a KeyError, a TypeError or a deferred status-line error before."""
    from fslcourse.methods import PixelPrototype, ProtoNet
    from fslcourse.widgets.drawing import DrawingBoard
    from fslcourse.widgets.episode_browser import EpisodeBrowser
    from fslcourse.widgets.latent_explorer import LatentExplorer
    from fslcourse.widgets.prediction_viewer import PredictionViewer

    cases = [(lambda: LatentExplorer(glyphs[2], trained=ProtoNet(), projection="umap"), "projection='umap' is not known"),
             (lambda: EpisodeBrowser(glyphs[2]), "give a dict of named splits"),
             (lambda: EpisodeBrowser({}), "splits is empty"),
             (lambda: DrawingBoard(["pixel"], n_way="3"), "n_way='3': give a whole number from 1 to"),
             (lambda: PredictionViewer(PixelPrototype, glyphs[2]), "is not a trained model"),
             (lambda: DrawingBoard(["nosuch"]), r"models \['nosuch'\] are not methods"),
             (lambda: PredictionViewer("protonet", glyphs[2]), "is not a trained model")]
    for make, says in cases:
        with pytest.raises(ValueError, match=says):
            make()
