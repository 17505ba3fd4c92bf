"""PSI and its reading."""

import math

import pytest

from measures.psi import psi, psi_reading


def test_psi_by_hand():
    expected = [50, 50]
    actual = [25, 75]
    by_hand = (0.25 - 0.5) * math.log(0.25 / 0.5) + (0.75 - 0.5) * math.log(0.75 / 0.5)
    assert psi(expected, actual) == pytest.approx(by_hand, abs=1e-12)
    assert psi(expected, expected) == 0.0


def test_psi_empty_bins_and_empty_sides():
    # A bin one side never filled is floored at 1e-4, not a division by zero.
    value = psi([10, 0], [5, 5])
    floor = 1e-4
    by_hand = (floor - 1.0) * math.log(floor / 1.0) * 0 + (
        (0.5 - 1.0) * math.log(0.5 / 1.0) + (0.5 - floor) * math.log(0.5 / floor)
    )
    assert value == pytest.approx(by_hand, abs=1e-12)
    assert psi([0, 0], [1, 2]) is None
    assert psi([1, 2], [0, 0]) is None
    with pytest.raises(ValueError):
        psi([1], [1, 2])


def test_psi_reading():
    assert psi_reading(None) == "no data"
    assert psi_reading(0.05) == "stable"
    assert psi_reading(0.1) == "moderate shift"
    assert psi_reading(0.25) == "moderate shift"
    assert psi_reading(0.26) == "major shift"
