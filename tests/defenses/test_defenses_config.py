"""Typed defense configs and the RSW/SWMR window grid: hand-worked values, no model trained."""

import dataclasses

import pytest

from wemem.defenses.config import BASE, DefenseConfig, Window, headline_window, window_grid
from wemem.errors import ParamsError


def test_explicit_widths_and_steps_widest_first_small_step_first():
    # n_c = 200: fractions 150/200, 100/200, 50/200; steps sorted, the smallest is "small".
    grid = window_grid(200.0, widths=[100, 150, 50], steps=[10, 5])
    assert [(w.width, w.step, w.step_size) for w in grid] == [
        (150, 5, "small"),
        (150, 10, "large"),
        (100, 5, "small"),
        (100, 10, "large"),
        (50, 5, "small"),
        (50, 10, "large"),
    ]
    assert [w.width_fraction for w in grid[::2]] == [0.75, 0.5, 0.25]


def test_rule_grid_for_cifar10_class_size():
    # n_c = 2250: w = 2/3, 4/9, 2/9 of it = 1500, 1000, 500; w_min = 500,
    # s_large = (2250 − 500)/20 = 87.5 -> 88, s_small = 43.75 -> 44 (rounded half up).
    grid = window_grid(2250.0)
    assert [(w.width, w.step, w.step_size) for w in grid] == [
        (1500, 44, "small"),
        (1500, 88, "large"),
        (1000, 44, "small"),
        (1000, 88, "large"),
        (500, 44, "small"),
        (500, 88, "large"),
    ]
    assert [w.width_fraction for w in grid[::2]] == [2 / 3, 4 / 9, 2 / 9]


def test_rule_grid_rounds_the_class_size_first():
    # n_c = 89.6 -> 90: widths 60, 40, 20; s_large = (90 − 20)/20 = 3.5 -> 4, s_small = 1.75 -> 2.
    grid = window_grid(89.6)
    assert [(w.width, w.step) for w in grid] == [
        (60, 2),
        (60, 4),
        (40, 2),
        (40, 4),
        (20, 2),
        (20, 4),
    ]


def test_headline_window_is_the_smallest_width_with_the_small_step():
    rule = window_grid(2250.0)
    assert headline_window(rule) == Window(500, 44, 2 / 9, "small")
    assert headline_window(rule) == rule[-2]  # where the grid's order puts it
    explicit = window_grid(200.0, widths=[150, 100, 50], steps=[5, 10])
    assert (headline_window(explicit).width, headline_window(explicit).step) == (50, 5)
    # ties in width (a rounded rule on a small class): the last one, the smallest fraction
    tied = [Window(2, 1, 0.5, "small"), Window(2, 1, 0.4, "small"), Window(2, 2, 0.4, "large")]
    assert headline_window(tied).width_fraction == 0.4


def test_headline_window_absent_raises_a_clear_error():
    with pytest.raises(ParamsError, match="smallest width with the small step"):
        headline_window([Window(50, 10, 0.25, "large"), Window(100, 5, 0.5, "small")])
    with pytest.raises(ParamsError, match="windows: none"):
        headline_window([])


def test_defense_config_accessors_and_relabel():
    c = DefenseConfig("rsw_l2h", {"width": 50, "step": 5}, {"setting": "RSW", "method": "RSW"})
    assert (c.setting, c.method, c.one_shot) == ("RSW", "RSW", False)
    one = c.relabel(setting="RSW (one-shot)", pruning="one-shot")
    assert one.one_shot and one.setting == "RSW (one-shot)"
    assert list(one.labels) == ["setting", "method", "pruning"]  # column order kept
    assert c.setting == "RSW" and one.settings == c.settings  # the original is unchanged
    assert DefenseConfig("dp").method == "" and DefenseConfig("dp").settings == {}
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.name = "rmr"


def test_defense_config_copies_its_mappings():
    settings = {"tau": 0.5}
    c = DefenseConfig("rmr", settings, {"setting": "RMR"})
    settings["tau"] = 0.9
    assert c.settings == {"tau": 0.5}


def test_base_config():
    assert BASE.name == "base" and BASE.settings == {}
    assert BASE.setting == "Base" and BASE.method == "Base" and not BASE.one_shot
    assert list(BASE.labels) == ["setting", "method", "order", "width", "step"]
