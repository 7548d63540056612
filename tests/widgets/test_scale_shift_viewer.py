"""The scale-and-shift viewer shows each layer's Φ and switches the episode's embedding between SS on and off."""
import torch

from fslcourse.methods.mtl import MTL
from fslcourse.models.scale_shift import scale_shift_layers
from fslcourse.widgets.scale_shift_viewer import ALL, ScaleShiftViewer, ss_off


def _model():
    torch.manual_seed(0)
    model = MTL(widths=(4, 6, 8))
    with torch.no_grad():
        for i, layer in enumerate(scale_shift_layers(model.backbone).values()):
            layer.scale.add_(0.1 * (i + 1) * torch.randn(layer.scale.shape))
            layer.shift.add_(0.5 * torch.randn(layer.shift.shape))
    return model.eval()


def test_layer_control_changes_what_is_shown(glyphs):
    _, _, test = glyphs
    model = _model()
    viewer = ScaleShiftViewer(test, model, n_way=5, n_shot=1)
    assert viewer.shown["layer"] == ALL
    n_filters = sum(m.conv.out_channels for m in scale_shift_layers(model.backbone).values())
    assert viewer.shown["scale"].shape == (n_filters,)
    name, layer = list(scale_shift_layers(model.backbone).items())[-1]
    viewer.layer.value = name
    assert torch.equal(viewer.shown["scale"], layer.scale.detach()) and torch.equal(viewer.shown["shift"],
                                                                                   layer.shift.detach())
    assert len(viewer.out.outputs) == 1


def test_ss_toggle_switches_between_the_learned_and_the_initial_phi(glyphs):
    _, _, test = glyphs
    model = _model()
    off = ss_off(model)
    assert all(torch.equal(m.scale, torch.ones_like(m.scale)) and not m.shift.any()
               for m in scale_shift_layers(off.backbone).values())
    viewer = ScaleShiftViewer(test, model, n_way=5, n_shot=1)
    on_xy = viewer.explorer.shown["support_xy"].clone()
    viewer.explorer.backbone.value = "SS off"
    assert viewer.explorer.shown["backbone"] == "SS off"
    assert not torch.allclose(viewer.explorer.shown["support_xy"], on_xy)
    # the SS-off embedding is the frozen backbone's with Φ at its initial values
    ep = viewer.explorer.episode()
    x = torch.cat([ep.support_x, ep.query_x])
    assert torch.equal(viewer.explorer.models["SS off"].embed(x), off.embed(x))
    assert not torch.allclose(viewer.explorer.models["SS on"].embed(x), off.embed(x))
