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

    assert set(METHOD_COLOURS) == set(METHODS)  # a new method gets its colour where it is registered
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
                                        "diffusion DDIM 10, w=2 (default)": "o",
                                        "diffusion DDIM 50, w=6 (chosen on validation)": "D", "gan": "o"}
