from datetime import timedelta

import pytest

from rheos.errors import ConfigError
from rheos.windowing import (
    SessionWindows,
    SlidingWindows,
    TumblingWindows,
    session,
    sliding,
    tumbling,
)


def test_tumbling_alignment_to_epoch() -> None:
    w = tumbling("10s")
    assert w == TumblingWindows(10_000, 0)
    assert w.windows_of(0) == ((0, 10_000),)
    assert w.windows_of(9_999) == ((0, 10_000),)
    assert w.windows_of(10_000) == ((10_000, 20_000),)
    assert w.windows_of(-1) == ((-10_000, 0),)


def test_tumbling_with_offset() -> None:
    w = tumbling("1h", offset="15m")
    assert w.windows_of(15 * 60_000) == ((900_000, 4_500_000),)
    assert w.windows_of(15 * 60_000 - 1) == ((-2_700_000, 900_000),)
    # an offset of a whole size or more wraps around
    assert tumbling(1000, offset=2500).offset_ms == 500


def test_sliding_windows_of() -> None:
    w = sliding("10s", "5s")
    assert w == SlidingWindows(10_000, 5_000)
    assert w.windows_of(12_000) == ((5_000, 15_000), (10_000, 20_000))
    assert w.windows_of(10_000) == ((5_000, 15_000), (10_000, 20_000))
    assert w.windows_of(9_999) == ((0, 10_000), (5_000, 15_000))


def test_sliding_size_not_a_multiple_of_every() -> None:
    w = sliding(10, 4)
    # starts are multiples of 4; windows [s, s+10) containing 9: s in {0, 4, 8}
    assert w.windows_of(9) == ((0, 10), (4, 14), (8, 18))
    # containing 10: s in {4, 8} (0 + 10 is excluded)
    assert w.windows_of(10) == ((4, 14), (8, 18))


def test_sliding_every_equal_to_size_is_tumbling() -> None:
    assert sliding(100, 100).windows_of(250) == tumbling(100).windows_of(250)


def test_session_spec() -> None:
    w = session(timedelta(seconds=30))
    assert w == SessionWindows(30_000)
    assert w.windows_of(5) == ((5, 30_005),)


def test_reprs_are_readable() -> None:
    assert repr(tumbling("1m")) == "tumbling('1m')"
    assert repr(tumbling("1m", offset="10s")) == "tumbling('1m', offset='10s')"
    assert repr(sliding("1m", "10s")) == "sliding('1m', '10s')"
    assert repr(session("5m")) == "session(gap='5m')"


@pytest.mark.parametrize(
    "make",
    [
        lambda: tumbling(0),
        lambda: tumbling("abc"),
        lambda: sliding(10, 0),
        lambda: sliding(10, 20),
        lambda: session(0),
        lambda: session(-5),
    ],
)
def test_bad_specs(make: object) -> None:
    with pytest.raises(ConfigError):
        make()  # type: ignore[operator]


def test_specs_are_immutable() -> None:
    w = tumbling(10)
    with pytest.raises(AttributeError):
        w.size_ms = 5  # type: ignore[misc]
