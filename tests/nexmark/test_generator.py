"""The Nexmark generator against the reference's proportions and distributions.

The reference (the nexmark/nexmark project's generator, default configuration) makes, per 50
events, 1 person, 3 auctions and 46 bids; sends half of the bids to the hot auction (the first
of the latest hundred), three quarters to the hot bidder, three quarters of the auctions to
the hot seller; draws prices log-uniform over six decades from $1; categories uniform over
five; auction durations uniform up to twice the time it takes to create 100 more auctions;
and spaces events 100 microseconds apart in event time.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
import pytest

from rheos.nexmark import GeneratorConfig, generate, write_jsonl
from rheos.nexmark.generator import HOT_CHANNELS, US_STATES

CONFIG = GeneratorConfig(events=100_000)


@pytest.fixture(scope="module")
def events() -> list[dict[str, Any]]:
    return list(generate(CONFIG))


def of(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["kind"] == kind]


def near(value: float, expected: float, tolerance: float) -> bool:
    return abs(value - expected) <= tolerance


def test_proportions_are_1_3_46_in_every_group_of_50(events: list[dict[str, Any]]) -> None:
    for start in range(0, len(events), 50):
        kinds = [e["kind"] for e in events[start : start + 50]]
        assert kinds == ["person"] + ["auction"] * 3 + ["bid"] * 46
    assert Counter(e["kind"] for e in events) == {"person": 2_000, "auction": 6_000, "bid": 92_000}


def test_ids_are_dense_from_1000_and_fields_standard(events: list[dict[str, Any]]) -> None:
    assert [p["id"] for p in of(events, "person")] == list(range(1000, 3000))
    assert [a["id"] for a in of(events, "auction")] == list(range(1000, 7000))
    fields = {
        "person": ["kind", "id", "name", "emailAddress", "creditCard", "city", "state"],
        "auction": ["kind", "id", "itemName", "initialBid", "reserve", "dateTime", "expires"],
        "bid": ["kind", "auction", "bidder", "price", "channel", "url", "dateTime"],
    }
    fields["person"].append("dateTime")
    fields["auction"] += ["seller", "category"]
    for kind, names in fields.items():
        assert all(list(e) == names for e in of(events, kind))


def test_event_time_is_100_microseconds_apart(events: list[dict[str, Any]]) -> None:
    base = CONFIG.base_time
    assert [e["dateTime"] for e in events] == [base + n // 10 for n in range(len(events))]
    slower = list(generate(GeneratorConfig(events=5_000, events_per_second=1_000)))
    assert [e["dateTime"] - base for e in slower] == list(range(5_000))


def test_hot_auctions_bidders_and_sellers(events: list[dict[str, Any]]) -> None:
    last_auction = last_person = 999
    hot_bids = hot_bidders = hot_sellers = 0
    bids = auctions = 0
    for e in events:
        if e["kind"] == "person":
            last_person = e["id"]
        elif e["kind"] == "auction":
            last_auction = e["id"]
            auctions += 1
            hot_sellers += e["seller"] == (last_person - 1000) // 100 * 100 + 1000
        else:
            bids += 1
            hot_bids += e["auction"] == (last_auction - 1000) // 100 * 100 + 1000
            hot_bidders += e["bidder"] == (last_person - 1000) // 100 * 100 + 1001
            # the others: an auction in flight (the latest 100) or up to 10 to come
            assert last_auction - 100 <= e["auction"] <= last_auction + 10
            assert e["bidder"] <= last_person + 10
    # 1 - 1/ratio of each go to the hot one, a little more by chance among the rest
    assert near(hot_bids / bids, 0.5 + 0.5 / 100, 0.01)
    assert near(hot_bidders / bids, 0.75, 0.01)
    assert near(hot_sellers / auctions, 0.75, 0.02)


def test_prices_are_log_uniform_over_six_decades(events: list[dict[str, Any]]) -> None:
    prices = [b["price"] for b in of(events, "bid")]
    assert min(prices) >= 100 and max(prices) <= 100_000_000
    decades = Counter(min(int(math.log10(p / 100)), 5) for p in prices)
    for decade in range(6):
        assert near(decades[decade] / len(prices), 1 / 6, 0.01), decades
    for auction in of(events, "auction"):
        assert auction["reserve"] > auction["initialBid"] >= 100


def test_categories_and_states_are_uniform(events: list[dict[str, Any]]) -> None:
    auctions = of(events, "auction")
    categories = Counter(a["category"] for a in auctions)
    assert sorted(categories) == [10, 11, 12, 13, 14]
    assert all(near(n / len(auctions), 0.2, 0.02) for n in categories.values())
    persons = of(events, "person")
    states = Counter(p["state"] for p in persons)
    assert set(states) == set(US_STATES)
    assert all(near(n / len(persons), 1 / 6, 0.03) for n in states.values())


def test_auction_durations_keep_about_100_auctions_open(events: list[dict[str, Any]]) -> None:
    durations = [a["expires"] - a["dateTime"] for a in of(events, "auction")]
    # 100 auctions are 100 * 50 / 3 = 1,666 events ahead: about 166.6 ms; twice that at most
    assert min(durations) >= 1 and max(durations) <= 2 * 167
    assert near(statistics.mean(durations), 167, 5)


def test_half_the_bids_come_from_four_hot_channels(events: list[dict[str, Any]]) -> None:
    bids = of(events, "bid")
    channels = Counter(b["channel"] for b in bids)
    hot = sum(channels[c] for c in HOT_CHANNELS)
    assert near(hot / len(bids), 0.5, 0.01)
    cold = [c for c in channels if c not in HOT_CHANNELS]
    assert all(c.startswith("channel-") and 0 <= int(c[8:]) < 10_000 for c in cold)
    urls: dict[str, set[str]] = {}
    for b in bids:
        urls.setdefault(b["channel"], set()).add(b["url"])
    assert all(len(u) == 1 for u in urls.values())  # one URL per channel
    with_id = sum("&channel_id=" in next(iter(urls[c])) for c in cold)
    assert near(with_id / len(cold), 0.9, 0.03)


def test_the_same_seed_gives_the_same_events(tmp_path: Path) -> None:
    small = GeneratorConfig(events=2_000, seed=3)
    assert list(generate(small)) == list(generate(small))
    assert list(generate(small)) != list(generate(GeneratorConfig(events=2_000, seed=4)))
    path = tmp_path / "events.jsonl"
    assert write_jsonl(small, path) == 2_000
    lines = path.read_bytes().splitlines()
    assert [msgspec.json.decode(line) for line in lines] == list(generate(small))
