"""Tests of the one percentile definition."""

from __future__ import annotations

import math

import pytest

from gateprobe.metrics import percentile, summarize


@pytest.mark.parametrize(("q", "expected"), [(0, 1), (25, 1.75), (50, 2.5), (90, 3.7),
                                             (100, 4)])
def test_linear_interpolation_between_ranks(q: float, expected: float) -> None:
    assert percentile([4, 1, 3, 2], q) == pytest.approx(expected)


def test_single_sample_and_empty() -> None:
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))


def test_out_of_range_percentile_is_an_error() -> None:
    with pytest.raises(ValueError, match="0..100"):
        percentile([1.0], 101)


def test_summarize() -> None:
    s = summarize(range(1, 101))
    assert s["count"] == 100 and s["mean"] == 50.5 and s["max"] == 100
    assert s["p50"] == pytest.approx(50.5) and s["p99"] == pytest.approx(99.01)
