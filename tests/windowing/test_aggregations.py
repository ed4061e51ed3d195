from typing import Any

import msgspec
import pytest

from rheos.errors import ConfigError, EventError
from rheos.windowing import (
    BoundAggregation,
    aggregate_with,
    collect,
    count,
    count_distinct,
    first,
    last,
    max,
    mean,
    min,
    sum,
)


def run(agg: BoundAggregation, events: list[tuple[int, Any]]) -> Any:
    acc = agg.init()
    for seq, (ts, event) in enumerate(events):
        acc = agg.add_event(acc, event, ts, seq)
    return agg.result(acc)


EVENTS = [(30, {"v": 3}), (10, {"v": 1}), (20, {"v": 2}), (10, {"v": 5})]


def test_builtin_results() -> None:
    assert run(count(), EVENTS) == 4
    assert run(sum("v"), EVENTS) == 11
    assert run(min("v"), EVENTS) == 1
    assert run(max("v"), EVENTS) == 5
    assert run(mean("v"), EVENTS) == pytest.approx(2.75)
    assert run(count_distinct("v"), [*EVENTS, (40, {"v": 3})]) == 4


def test_first_and_last_go_by_event_time_with_arrival_tie_break() -> None:
    # two events at ts 10: first keeps the earlier arrival (v=1), last the later one
    assert run(first("v"), EVENTS) == 1
    assert run(last("v"), EVENTS) == 3
    assert run(last("v"), [(10, {"v": 1}), (10, {"v": 5})]) == 5


def test_collect_orders_by_event_time_then_arrival() -> None:
    assert run(collect("v"), EVENTS) == [1, 5, 2, 3]
    assert run(collect(), [(2, "b"), (1, "a")]) == ["a", "b"]


def test_field_may_be_a_function() -> None:
    assert run(sum(lambda e: e["v"] * 10), EVENTS) == 110


def test_none_values_are_skipped() -> None:
    events = [(1, {"v": None}), (2, {"v": 4})]
    assert run(sum("v"), events) == 4
    assert run(min("v"), events) == 4
    assert run(max("v"), events) == 4
    assert run(mean("v"), events) == 4.0
    assert run(count_distinct("v"), events) == 1
    assert run(mean("v"), [(1, {"v": None})]) is None
    assert run(min("v"), []) is None


def test_missing_field_names_it() -> None:
    with pytest.raises(EventError, match=r"sum\('price'\).*no field 'price'"):
        run(sum("price"), [(1, {"v": 1})])


def test_merge_combines_accumulators() -> None:
    for agg in [count(), sum("v"), min("v"), max("v"), mean("v"), first("v"), last("v")]:
        a = agg.init()
        b = agg.init()
        for seq, (ts, event) in enumerate(EVENTS):
            if seq % 2:
                b = agg.add_event(b, event, ts, seq)
            else:
                a = agg.add_event(a, event, ts, seq)
        assert agg.result(agg.merge(a, b)) == run(agg, EVENTS), agg
    c = collect("v")
    a = c.add_event(c.init(), {"v": 1}, 5, 0)
    b = c.add_event(c.init(), {"v": 2}, 1, 1)
    assert c.result(c.merge(a, b)) == [2, 1]


def test_accumulators_survive_msgpack() -> None:
    aggs = [
        count(),
        sum("v"),
        min("v"),
        max("v"),
        mean("v"),
        first("v"),
        last("v"),
        collect("v"),
        count_distinct("v"),
    ]
    for agg in aggs:
        acc = agg.init()
        for seq, (ts, event) in enumerate(EVENTS):
            acc = agg.add_event(acc, event, ts, seq)
        plain = msgspec.msgpack.decode(msgspec.msgpack.encode(agg.dump(acc)))
        assert agg.result(agg.load(plain)) == agg.result(acc), agg


def test_count_distinct_of_lists_and_dicts() -> None:
    events = [(1, {"v": [1, 2]}), (2, {"v": [1, 2]}), (3, {"v": {"a": 1}})]
    agg = count_distinct("v")
    assert run(agg, events) == 2


class Product:
    def init(self) -> int:
        return 1

    def add(self, acc: int, value: int) -> int:
        return acc * value

    def merge(self, a: int, b: int) -> int:
        return a * b

    def result(self, acc: int) -> int:
        return acc


def test_user_defined_aggregation() -> None:
    agg = aggregate_with(Product(), "v")
    assert run(agg, EVENTS) == 30
    assert repr(agg) == "aggregate_with(Product, 'v')"
    whole = aggregate_with(Product(), None)
    assert run(whole, [(1, 3), (2, 4)]) == 12
    assert repr(whole) == "aggregate_with(Product)"


def test_user_defined_aggregation_with_codec() -> None:
    class Distinct(Product):
        def init(self) -> Any:
            return set()

        def add(self, acc: Any, value: Any) -> Any:
            acc.add(value)
            return acc

        def result(self, acc: Any) -> Any:
            return sorted(acc)

        def dump(self, acc: Any) -> Any:
            return sorted(acc)

        def load(self, data: Any) -> Any:
            return set(data)

    agg = aggregate_with(Distinct(), "v")
    acc = agg.add(agg.add(agg.init(), {"v": 2}), {"v": 1})
    assert agg.dump(acc) == [1, 2]
    assert agg.result(agg.load([1, 2])) == [1, 2]


def test_aggregate_with_checks_the_object() -> None:
    with pytest.raises(ConfigError, match="merge"):
        aggregate_with(object())  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="field"):
        sum(3)  # type: ignore[arg-type]


def test_reprs() -> None:
    assert repr(count()) == "count()"
    assert repr(sum("price")) == "sum('price')"
    assert repr(collect()) == "collect()"
