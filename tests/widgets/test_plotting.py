"""The class palette: neighbours tell apart, and no class looks like "right" or "wrong"."""
import colorsys
import itertools

import pytest
from matplotlib.colors import to_rgb

from fslcourse.widgets.plotting import CLASS_COLOURS, RIGHT, WRONG, class_colour


def _distance(a, b) -> float:
    """Euclidean distance in RGB (0..sqrt(3)); a crude but monotone stand-in for "looks different"."""
    return sum((x - y) ** 2 for x, y in zip(a, b)) ** 0.5


def neighbours_differ(a, b) -> bool:
    """Far apart in RGB, and of other hues unless one of them is a grey (tab20's neighbours share a hue)."""
    (ha, sa, _), (hb, sb, _) = colorsys.rgb_to_hsv(*a), colorsys.rgb_to_hsv(*b)
    turn = abs(ha - hb) * 360
    return _distance(a, b) > 0.25 and (min(turn, 360 - turn) > 20 or min(sa, sb) < 0.1)


def test_twenty_distinct_colours_and_neighbours_differ():
    assert len(CLASS_COLOURS) == 20 and len(set(CLASS_COLOURS)) == 20
    bad = [(i, a, b) for i, (a, b) in enumerate(itertools.pairwise(CLASS_COLOURS)) if not neighbours_differ(a, b)]
    assert not bad, bad
    assert class_colour(20) == class_colour(0)


def test_the_check_catches_tab20():
    import matplotlib.pyplot as plt

    tab20 = plt.get_cmap("tab20").colors
    assert sum(not neighbours_differ(a, b) for a, b in itertools.pairwise(tab20)) >= 8


def test_no_class_colour_is_mistaken_for_right_or_wrong():
    for c in CLASS_COLOURS:
        assert _distance(c, RIGHT) > 0.3 and _distance(c, WRONG) > 0.3, c


def test_each_generator_keeps_its_colour_and_none_is_right_or_wrong():
    from fslcourse.widgets.plotting import GENERATOR_COLOURS, generator_colour

    assert len(set(GENERATOR_COLOURS.values())) == len(GENERATOR_COLOURS)
    for c in GENERATOR_COLOURS.values():
        assert _distance(to_rgb(c), RIGHT) > 0.3 and _distance(to_rgb(c), WRONG) > 0.3, c
    assert generator_colour("diffusion DDIM 50, w=6 (chosen on validation)") == GENERATOR_COLOURS["diffusion"]
    assert generator_colour("copy + noise (untrained control)") == GENERATOR_COLOURS["copy-noise"]
    assert generator_colour("deformation (untrained control)") == GENERATOR_COLOURS["deformation"]
    assert generator_colour("deformation-vae") != generator_colour("deformation") != generator_colour("vae")
    with pytest.raises(ValueError, match="'vaeish' is not a generator"):
        generator_colour("vaeish")


def test_every_method_has_one_colour_none_right_or_wrong_and_the_curves_eight_far_apart():
    from fslcourse.methods import METHODS
    from fslcourse.report import CURVE_METHODS
    from fslcourse.widgets.plotting import METHOD_COLOURS, method_colour

    # a new method gets its colour where it is registered (other tests register throwaway "test-..." methods)
    assert set(METHOD_COLOURS) == {name for name in METHODS if not name.startswith("test-")}
    assert len(set(METHOD_COLOURS.values())) == len(METHOD_COLOURS)
    for c in METHOD_COLOURS.values():
        assert _distance(to_rgb(c), RIGHT) > 0.3 and _distance(to_rgb(c), WRONG) > 0.3, c
    close = [(a, b) for a, b in itertools.combinations(CURVE_METHODS, 2)
             if _distance(to_rgb(METHOD_COLOURS[a]), to_rgb(METHOD_COLOURS[b])) < 0.3]
    assert not close, close
    assert method_colour("maml") == METHOD_COLOURS["maml"]
    with pytest.raises(ValueError, match="'protonets' is not a method of METHOD_COLOURS"):
        method_colour("protonets")


def test_log_axis_labels_only_the_given_ticks_plainly():
    import matplotlib.pyplot as plt

    from fslcourse.widgets.plotting import log_axis

    fig, ax = plt.subplots()
    ax.plot([20, 400], [1, 2])
    log_axis(ax, [30, 100, 1000])
    fig.canvas.draw()
    assert ax.get_xscale() == "log"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["30", "100", "1,000"]
    assert all(t.get_text() == "" for t in ax.get_xticklabels(minor=True))
    log_axis(ax, [0.01, 0.1], axis="y")
    assert ax.get_yscale() == "log" and [t.get_text() for t in ax.get_yticklabels()] == ["0.01", "0.1"]
    plt.close(fig)


def test_generator_markers_square_the_controls_and_tell_rows_of_one_colour_apart():
    """Notebooks 07 and 10 wrote this rule out twice; one function now gives both figures the same markers."""
    from fslcourse.widgets.plotting import generator_markers

    names = ["deformation (untrained control)", "vae", "diffusion DDIM 10, w=2 (default)",
             "diffusion DDIM 50, w=6 (chosen on validation)", "gan"]
    assert generator_markers(names) == {"deformation (untrained control)": "s", "vae": "o",
                                        "diffusion DDIM 10, w=2 (default)": "D",
                                        "diffusion DDIM 50, w=6 (chosen on validation)": "^", "gan": "o"}
    # diffusion's purple and the VAE's blue look alike without red-green vision: their first rows differ in shape


def _luminance(rgb) -> float:
    """Relative luminance (WCAG) of an sRGB colour in [0, 1]."""
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def test_right_and_wrong_differ_in_lightness_not_only_in_hue():
    """Without red-green vision the old #1a9641 / #d7191c were one brown (luminances 0.22 and 0.15): the pair must
    also differ by lightness (WCAG contrast ratio at least 3, as for graphics)."""
    light, dark = sorted((_luminance(RIGHT), _luminance(WRONG)), reverse=True)
    assert (light + 0.05) / (dark + 0.05) >= 3.0
    assert (_luminance(to_rgb("#1a9641")) + 0.05) / (_luminance(to_rgb("#d7191c")) + 0.05) < 3.0  # the check bites


def test_a_wrong_querys_frame_is_dashed_a_right_ones_solid():
    import numpy as np

    from fslcourse.widgets.plotting import tile

    images = np.zeros((2, 8, 8))
    frames = np.array([RIGHT, WRONG])
    canvas = tile(images, frames, None, 1, 2, dashed=np.array([False, True]))
    right, wrong = canvas[1:13, 1:13], canvas[1:13, 15:27]  # each cell's frame band and image (pad 3)
    ring = np.ones((12, 12), bool)
    ring[2:10, 2:10] = False  # the frame: the 2 pixels round the image
    assert np.allclose(right[ring], RIGHT)
    coloured = np.isclose(wrong[ring], WRONG).all(1)
    assert 0.3 < coloured.mean() < 0.7 and np.allclose(wrong[ring][~coloured], 1.0)  # dashes and white gaps
    assert np.allclose(tile(images, frames, None, 1, 2), tile(images, frames, None, 1, 2, dashed=None))


def test_each_method_has_a_marker_and_the_curves_eight_differ():
    from fslcourse.report import CURVE_METHODS
    from fslcourse.widgets.plotting import METHOD_COLOURS, METHOD_MARKERS, method_style

    assert set(METHOD_MARKERS) == set(METHOD_COLOURS)
    assert len({METHOD_MARKERS[m] for m in CURVE_METHODS}) == len(CURVE_METHODS)
    assert method_style("relation") == {"color": METHOD_COLOURS["relation"], "marker": "^"}
    with pytest.raises(ValueError, match="'relations' is not a method"):
        method_style("relations")


# Machado, Oliveira & Fernandes (2009), "A physiologically-based model for simulation of color vision deficiency",
# severity 1.0, applied to linear RGB
CVD = {"deuteranopia": ((0.367322, 0.860646, -0.227968), (0.280085, 0.672501, 0.047413), (-0.011820, 0.042940, 0.968881)),
       "protanopia": ((0.152286, 1.052583, -0.204868), (0.114503, 0.786281, 0.099216), (-0.003882, -0.048116, 1.051998))}


def _lab_as_seen(rgb, deficiency: str):
    """CIELAB (D65) of sRGB ``rgb`` as a reader with ``deficiency`` sees it."""
    import numpy as np

    lin = np.array([c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb])
    lin = np.clip(np.array(CVD[deficiency]) @ lin, 0, 1)
    xyz = np.array([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750],
                    [0.0193339, 0.1191920, 0.9503041]]) @ lin / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def _seen_difference(a, b, deficiency: str) -> float:
    """CIE76 colour difference between two sRGB colours as a reader with ``deficiency`` sees them."""
    import numpy as np

    return float(np.linalg.norm(_lab_as_seen(a, deficiency) - _lab_as_seen(b, deficiency)))


@pytest.mark.parametrize("deficiency", list(CVD))
def test_without_red_green_vision_right_wrong_and_a_5_way_episodes_classes_stay_apart(deficiency):
    """tab10's first five (blue, orange, purple, olive, pink) came to 7.2 (deuteranopia) and 5.7 (protanopia): blue
    and purple, orange and olive looked alike; the old green and red to 23."""
    assert _seen_difference(RIGHT, WRONG, deficiency) >= 30
    assert _seen_difference(to_rgb("#1a9641"), to_rgb("#d7191c"), deficiency) < 30  # the check bites
    pairs = itertools.combinations(CLASS_COLOURS[:5], 2)
    assert min(_seen_difference(a, b, deficiency) for a, b in pairs) >= 10
    old = [to_rgb(c) for c in ("#1f77b4", "#ff7f0e", "#9467bd", "#bcbd22", "#e377c2")]
    assert min(_seen_difference(a, b, deficiency) for a, b in itertools.combinations(old, 2)) < 10
