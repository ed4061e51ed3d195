import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rheos.errors import CheckpointError, ConfigError, FlowDefinitionError
from rheos.windowing import (
    MAX_WATERMARK,
    MIN_WATERMARK,
    Clock,
    ManualClock,
    SystemClock,
    WatermarkTracker,
    combine_watermarks,
)


def test_manual_clock() -> None:
    clock = ManualClock(100)
    assert isinstance(clock, Clock)
    clock.advance(50)
    assert clock.now_ms() == 150
    clock.set(1_000)
    assert clock.now_ms() == 1_000
    with pytest.raises(ConfigError):
        clock.advance(-1)
    with pytest.raises(ConfigError):
        clock.set(999)


def test_system_clock_is_epoch_ms() -> None:
    assert SystemClock().now_ms() > 1_600_000_000_000


def test_bounded_out_of_orderness() -> None:
    t = WatermarkTracker(5)
    assert t.current() == MIN_WATERMARK
    assert t.observe(0, 100) is False
    assert t.current() == 95
    assert t.observe(0, 97) is True  # out of order, within the bound
    assert t.observe(0, 90) is True  # out of order, beyond it (late for the consumer)
    assert t.current() == 95
    assert t.observe(0, 100) is False  # equal to the max is in order
    assert t.observe(0, 110) is False
    assert t.current() == 105
    assert (t.events, t.out_of_order_count, t.max_delay_ms) == (5, 2, 10)


def test_out_of_order_is_per_source_not_per_partition() -> None:
    t = WatermarkTracker(0)
    t.observe("p0", 100)
    assert t.observe("p1", 50) is True
    assert t.max_delay_ms == 50


def test_min_over_partitions_and_declared_partitions_hold_it_back() -> None:
    t = WatermarkTracker(10)
    t.declare_partitions([0, 1, 2])
    t.observe(0, 100)
    t.observe(1, 50)
    assert t.current() == MIN_WATERMARK  # partition 2 has produced nothing
    t.observe(2, 70)
    assert t.current() == 40
    t.observe(1, 200)
    assert t.current() == 60
    assert t.partitions == {0: "active", 1: "active", 2: "active"}


def test_ended_partitions_stop_counting_and_all_ended_is_max() -> None:
    t = WatermarkTracker(0)
    t.declare_partitions([0, 1])
    t.observe(0, 10)
    t.end_partition(1)
    assert t.current() == 10
    t.end_partition(0)
    assert t.current() == MAX_WATERMARK
    with pytest.raises(FlowDefinitionError, match="ended"):
        t.observe(0, 11)


def test_watermark_never_goes_backwards() -> None:
    t = WatermarkTracker(0)
    t.observe(0, 100)
    assert t.current() == 100
    t.observe(1, 10)  # a new partition far behind
    assert t.current() == 100


def test_idle_partition_is_excluded_after_the_timeout() -> None:
    clock = ManualClock(0)
    t = WatermarkTracker(10, idle_timeout_ms=1_000, clock=clock)
    t.declare_partitions(["a", "b"])
    clock.advance(500)
    t.observe("a", 5_000)
    t.poll_idle()
    assert t.current() == MIN_WATERMARK  # "b" silent for only 500 ms
    clock.advance(500)
    t.poll_idle()
    assert t.partitions == {"a": "active", "b": "idle"}
    assert t.current() == 4_990
    # the idle partition wakes up behind: the watermark does not go back
    t.observe("b", 1_000)
    assert t.partitions["b"] == "active"
    assert t.current() == 4_990
    t.observe("b", 8_000)
    t.observe("a", 9_000)
    assert t.current() == 7_990


def test_all_idle_watermark_follows_the_processing_clock() -> None:
    clock = ManualClock(10_000)
    t = WatermarkTracker(100, idle_timeout_ms=1_000, clock=clock)
    t.declare_partitions([0, 1])
    t.observe(0, 50_000)
    t.observe(1, 40_000)
    assert t.current() == 39_900
    clock.advance(1_000)
    t.poll_idle()
    # all idle: W = max(W_last, 50_000 - 100 + (11_000 - 10_000))
    assert t.current() == 50_900
    clock.advance(2_500)
    assert t.current() == 53_400
    # an event wakes its partition; the min rule is back but cannot lower W
    t.observe(1, 41_000)
    assert t.current() == 53_400


def test_all_idle_without_any_event_stays_at_min() -> None:
    clock = ManualClock(0)
    t = WatermarkTracker(0, idle_timeout_ms=10, clock=clock)
    t.declare_partitions([0])
    clock.advance(100)
    t.poll_idle()
    assert t.current() == MIN_WATERMARK


def test_mark_idle_and_no_timeout() -> None:
    t = WatermarkTracker(0)
    t.observe(0, 10)
    t.observe(1, 5)
    t.poll_idle()  # no timeout: nothing becomes idle
    assert t.current() == 5
    t.mark_idle(1)
    assert t.current() == 10


def test_bad_arguments() -> None:
    with pytest.raises(ConfigError):
        WatermarkTracker(-1)
    with pytest.raises(ConfigError):
        WatermarkTracker("5s", idle_timeout_ms=0)
    assert WatermarkTracker("5s").out_of_orderness_ms == 5_000


def test_snapshot_restore() -> None:
    t = WatermarkTracker(5)
    t.observe(("topic", 0), 100)
    t.observe(("topic", 1), 80)
    t.observe(("topic", 1), 70)
    t.end_partition(("topic", 2))
    snap = msgspec.msgpack.decode(msgspec.msgpack.encode(t.snapshot()))
    again = WatermarkTracker.restore(snap)
    assert again.current() == t.current() == 75
    assert again.partitions == t.partitions
    assert (again.events, again.out_of_order_count, again.max_delay_ms) == (3, 2, 30)
    assert again.observe(("topic", 0), 99) is True
    with pytest.raises(CheckpointError):
        again.load({"format": 0})


def test_combine_watermarks() -> None:
    assert combine_watermarks(10, 5, 7) == 5
    assert combine_watermarks(MAX_WATERMARK, 3) == 3
    with pytest.raises(ConfigError):
        combine_watermarks()


def test_marking_all_idle_without_timeout_counts_quiet_time_from_then() -> None:
    clock = ManualClock(0)
    t = WatermarkTracker(10, clock=clock)
    t.observe(0, 1_000)
    clock.advance(5_000)  # not counted: without a timeout the clock was not read
    t.mark_idle(0)
    assert t.current() == 990
    clock.advance(100)
    assert t.current() == 1_090


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 3),
            st.lists(st.integers(-50, 1_000), min_size=1, max_size=20),
            st.booleans(),
        ),
        min_size=1,
        max_size=12,
    ),
    st.integers(0, 100),
)
def test_observe_array_is_observe_then_current_for_each_event(
    parts: list[tuple[int, list[int], bool]], bound: int
) -> None:
    """The array form (the micro-batch runtime, one part of one partition at a time) gives
    the watermark after each event and the same statistics as observing them one by one."""
    clock = ManualClock(0)
    one = WatermarkTracker(out_of_orderness_ms=bound, clock=clock)
    many = WatermarkTracker(out_of_orderness_ms=bound, clock=clock)
    for tracker in (one, many):
        tracker.declare_partitions(range(4))
    for partition, times, idle_after in parts:
        expected = []
        for t in times:
            one.observe(partition, t)
            expected.append(one.current())
        got = many.observe_array(partition, np.asarray(times, dtype=np.int64)).tolist()
        assert got == expected
        if idle_after:  # another partition goes quiet: it stops holding the watermark
            for tracker in (one, many):
                tracker.mark_idle((partition + 1) % 4)
    assert (many.out_of_order_count, many.max_delay_ms) == (
        one.out_of_order_count,
        one.max_delay_ms,
    )
    assert many.current() == one.current()
