"""The Nexmark queries as rheos flows: q0 to q8 and q11.

Each query is a function from :class:`Events` -- the streams of persons, auctions and bids,
as :mod:`rheos.nexmark.generator` makes them, with event time ``dateTime`` -- to the stream
of its results. :func:`build` puts one in a flow between a source of all events (a JSON-lines
file, say) and a sink; :func:`build_from_topics` reads one log topic per kind instead.

The queries are written with the public flow API only: filters and ``with_columns``
expressions (columnar in micro-batch mode), windows with built-in aggregations, a window
join, and keyed ``process`` steps with event-time timers where the API has no ready-made
operator (the winning bid of an auction, top-N of a window, the last ten of a key).

What each one computes (the SQL of the reference, in words):

=====  =========================================================================================
q0     pass-through: every bid, unchanged
q1     currency conversion: every bid, its ``price`` times 0.908 (dollars to euros)
q2     selection: ``auction`` and ``price`` of the bids on auctions whose id is a multiple of 123
q3     local item suggestion: auctions of category 10 joined with their sellers from Oregon,
       Idaho or California (``name``, ``city``, ``state`` and the auction's ``id``); an
       unwindowed join, each pair emitted as soon as both sides are seen
q4     average closing price per category: an auction's closing price is its highest bid
       between its ``dateTime`` and ``expires`` (both included); when an auction with bids
       closes (the watermark passes ``expires``), its category's average over every closed
       auction so far is emitted (the last row per category is the SQL answer)
q5     hot items: per sliding window of 10 s every 2 s, the auctions with the most bids
q6     average selling price per seller: when an auction closes (as in q4), the mean closing
       price of its seller's last ten closed auctions, this one included (in order of
       ``expires``, then auction id)
q7     highest bid: per tumbling window of 10 s, the bids at the window's highest price
q8     new users: persons who created an auction in the same tumbling 10 s window in which
       they registered (``id``, ``name``, ``starttime``)
q11    user sessions: per bidder and session window (a gap of 10 s), the number of bids
=====  =========================================================================================

Windows are half-open ``[start, end)`` in milliseconds, as everywhere in rheos.

>>> from rheos.nexmark.generator import GeneratorConfig, generate
>>> import rheos as rh
>>> out = []
>>> flow = build("q2", rh.iterable_source(generate(GeneratorConfig(events=20_000))),
...              rh.list_sink(out))
>>> _ = flow.run(bounded=True)
>>> out[0]
{'auction': 1107, 'price': 1527931}
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import rheos as rh
from rheos import KeyedStream, ProcessContext, Stream
from rheos.errors import FlowDefinitionError

WINDOW_MS = 10_000
"""The window of q5, q7 and q8 and the session gap of q11 (the reference's ``windowSizeSec``)."""
SLIDE_MS = 2_000
"""How often q5's sliding windows start."""
EUROS_PER_DOLLAR = 0.908
Q2_MODULUS = 123
Q3_STATES = ("OR", "ID", "CA")
Q3_CATEGORY = 10
Q6_LAST = 10


# -- the streams of each kind ------------------------------------------------------------
class Events:
    """The three streams of Nexmark -- persons, auctions and bids -- each made on first use
    by ``make(kind)``, so a flow reads and splits only the kinds its query uses."""

    def __init__(self, make: Callable[[str], Stream]) -> None:
        self._make = make
        self._streams: dict[str, Stream] = {}

    def _stream(self, kind: str) -> Stream:
        if kind not in self._streams:
            self._streams[kind] = self._make(kind)
        return self._streams[kind]

    @property
    def persons(self) -> Stream:
        return self._stream("person")

    @property
    def auctions(self) -> Stream:
        return self._stream("auction")

    @property
    def bids(self) -> Stream:
        return self._stream("bid")


def split_by_kind(events: Stream) -> Events:
    """The persons, auctions and bids of one stream of all events (by their ``kind``)."""
    return Events(lambda kind: events.filter(rh.col("kind") == kind, name=f"{kind}s"))


# -- stateless ---------------------------------------------------------------------------
def q0(events: Events) -> Stream:
    """Pass-through: every bid."""
    return events.bids


def q1(events: Events) -> Stream:
    """Currency conversion: bids with their price in euros."""
    return events.bids.with_columns(price=rh.col("price") * EUROS_PER_DOLLAR)


def q2(events: Events) -> Stream:
    """Selection: the bids on a few auctions (ids that are multiples of 123)."""
    chosen = events.bids.filter(rh.col("auction") % Q2_MODULUS == 0, name="q2-auctions")
    return chosen.map(_auction_and_price, name="q2-select")


def _auction_and_price(bid: dict[str, Any]) -> dict[str, Any]:
    return {"auction": bid["auction"], "price": bid["price"]}


# -- joins and closing prices ------------------------------------------------------------
def q3(events: Events) -> Stream:
    """Local item suggestion: category-10 auctions joined with their sellers in OR, ID, CA."""
    state = rh.col("state")
    local = events.persons.filter(
        (state == Q3_STATES[0]) | (state == Q3_STATES[1]) | (state == Q3_STATES[2]),
        name="q3-states",
    )
    items = events.auctions.filter(rh.col("category") == Q3_CATEGORY, name="q3-category")
    both = local.key_by("id", name="person-id").union(items.key_by("seller", name="seller"))
    assert isinstance(both, KeyedStream)
    return both.process(LocalItemSuggestion(), name="q3-join")


class LocalItemSuggestion:
    """Per person id: the person once seen, and the auctions that came before their seller.

    State: ``[name, city, state]`` once the person is seen (persons are kept: an auction of
    theirs may come at any time), or ``{"auctions": [id, ...]}`` before.
    """

    def process(self, ctx: ProcessContext, event: dict[str, Any]) -> None:
        seen = ctx.state
        if event["kind"] == "person":
            person = [event["name"], event["city"], event["state"]]
            if isinstance(seen, dict):
                for auction in seen["auctions"]:
                    ctx.emit(_suggestion(person, auction))
            ctx.state = person
        elif isinstance(seen, list):
            ctx.emit(_suggestion(seen, event["id"]))
        elif seen is None:
            ctx.state = {"auctions": [event["id"]]}
        else:
            seen["auctions"].append(event["id"])


def _suggestion(person: list[Any], auction: int) -> dict[str, Any]:
    return {"name": person[0], "city": person[1], "state": person[2], "id": auction}


def closed_auctions(events: Events) -> Stream:
    """Every auction with at least one bid in ``[dateTime, expires]``, when it expires:
    ``{"id", "seller", "category", "expires", "price"}`` (``price`` the highest such bid)."""
    by_id = events.auctions.key_by("id", name="auction-id")
    on_auction = events.bids.key_by("auction", name="bid-auction")
    both = by_id.union(on_auction)
    assert isinstance(both, KeyedStream)
    return both.process(WinningBid(), name="winning-bid")


class WinningBid:
    """Per auction id: the auction and its highest bid so far, closed at ``expires``.

    State: ``{"auction": [seller, category, dateTime, expires], "price": highest or None}``
    once the auction is seen; before that ``{"early": [[dateTime, price], ...]}``, the bids
    that came first, kept until the watermark passes their time (a bid can only count if its
    auction started at or before it). A timer at ``expires + 1`` closes the auction: every bid
    at or before ``expires`` has been seen once the watermark is past it.
    """

    def process(self, ctx: ProcessContext, event: dict[str, Any]) -> None:
        seen = ctx.state
        if event["kind"] == "auction":
            start, expires = event["dateTime"], event["expires"]
            price = None
            if seen is not None and "early" in seen:
                prices = [p for t, p in seen["early"] if start <= t <= expires]
                price = max(prices) if prices else None
            auction = [event["seller"], event["category"], start, expires]
            ctx.state = {"auction": auction, "price": price}
            ctx.register_timer(expires + 1)
            return
        t, price = event["dateTime"], event["price"]
        if seen is None:
            ctx.state = {"early": [[t, price]]}
            ctx.register_timer(t + 1)
        elif "early" in seen:
            seen["early"].append([t, price])
            ctx.register_timer(t + 1)
        else:
            _, _, start, expires = seen["auction"]
            if start <= t <= expires and (seen["price"] is None or price > seen["price"]):
                seen["price"] = price

    def on_timer(self, ctx: ProcessContext, timestamp: int) -> None:
        seen = ctx.state
        if seen is None:
            return
        if "early" in seen:
            early = [b for b in seen["early"] if b[0] >= timestamp]
            ctx.state = {"early": early} if early else None
            return
        seller, category, _, expires = seen["auction"]
        if timestamp <= expires:
            return  # an early bid's timer
        if seen["price"] is not None:
            closed = {
                "id": ctx.key,
                "seller": seller,
                "category": category,
                "expires": expires,
                "price": seen["price"],
            }
            ctx.emit(closed)
        ctx.state = None


def q4(events: Events) -> Stream:
    """Average closing price per category, updated as auctions close."""
    per_category = closed_auctions(events).key_by("category", name="category")
    means = per_category.aggregate(avg=rh.mean("price"), name="q4-average")
    return means.map(_category_row, name="q4-rows")


def _category_row(row: dict[str, Any]) -> dict[str, Any]:
    return {"category": row["key"], "avg": row["avg"]}


def q6(events: Events) -> Stream:
    """Average selling price per seller over their last ten closed auctions."""
    per_seller = closed_auctions(events).key_by("seller", name="seller")
    return per_seller.process(LastTenMean(), name="q6-last-ten")


class LastTenMean:
    """Per seller: the closing prices of their last ten auctions (state: a list of prices)."""

    def process(self, ctx: ProcessContext, event: dict[str, Any]) -> None:
        prices = [*(ctx.state or [])[-(Q6_LAST - 1) :], event["price"]]
        ctx.state = prices
        ctx.emit({"seller": ctx.key, "auction": event["id"], "avg": sum(prices) / len(prices)})


# -- windows -----------------------------------------------------------------------------
def q5(events: Events) -> Stream:
    """Hot items: per sliding window, the auctions with the most bids."""
    windows = events.bids.key_by("auction", name="bid-auction").window(
        rh.sliding(WINDOW_MS, every=SLIDE_MS)
    )
    counts = windows.aggregate(num=rh.count(), name="q5-counts")
    per_window = counts.key_by("window_start", name="q5-window")
    return per_window.process(HotItems(), name="q5-top")


class HotItems:
    """Per window: the highest count and the auctions that have it, emitted at the window's
    end. State: ``[window_end, highest, [auction, ...]]``."""

    def process(self, ctx: ProcessContext, row: dict[str, Any]) -> None:
        top, num = ctx.state, row["num"]
        if top is None or num > top[1]:
            ctx.state = [row["window_end"], num, [row["key"]]]
            ctx.register_timer(row["window_end"])
        elif num == top[1]:
            top[2].append(row["key"])

    def on_timer(self, ctx: ProcessContext, timestamp: int) -> None:
        end, num, items = ctx.state
        for auction in items:
            ctx.emit({"auction": auction, "num": num, "window_start": ctx.key, "window_end": end})
        ctx.state = None


def q7(events: Events) -> Stream:
    """Highest bid: per tumbling window, the bids at its highest price."""
    start = rh.col("dateTime") // WINDOW_MS * WINDOW_MS
    per_window = events.bids.key_by(start, name="q7-window")
    return per_window.process(HighestBids(), name="q7-top")


class HighestBids:
    """Per window start: the highest price and its bids, emitted when the window ends.
    State: ``[highest, [bid, ...]]``."""

    def process(self, ctx: ProcessContext, bid: dict[str, Any]) -> None:
        top, price = ctx.state, bid["price"]
        if top is None:
            ctx.state = [price, [bid]]
            ctx.register_timer(ctx.key + WINDOW_MS)
        elif price > top[0]:
            ctx.state = [price, [bid]]
        elif price == top[0]:
            top[1].append(bid)

    def on_timer(self, ctx: ProcessContext, timestamp: int) -> None:
        _, top = ctx.state
        for bid in top:
            row = {k: bid[k] for k in ("auction", "price", "bidder", "dateTime")}
            ctx.emit(row | {"window_start": ctx.key, "window_end": ctx.key + WINDOW_MS})
        ctx.state = None


def q8(events: Events) -> Stream:
    """New users: persons who opened an auction in the tumbling window they registered in."""
    people = events.persons.key_by("id", name="person-id")
    sellers = events.auctions.key_by("seller", name="seller")
    pairs = people.join(sellers, window=rh.tumbling(WINDOW_MS), name="q8-join")
    return pairs.process(FirstPerWindow(), name="q8-distinct")


class FirstPerWindow:
    """One row per person and window out of the join's pairs (one pair per auction).

    A window join emits every pair of a key and window together when the window closes, so
    pairs of one person come grouped by window: the state is the last window emitted.
    """

    def process(self, ctx: ProcessContext, pair: dict[str, Any]) -> None:
        start = pair["window_start"]
        if ctx.state != start:
            ctx.state = start
            person = pair["left"]
            ctx.emit({"id": person["id"], "name": person["name"], "starttime": start})


def q11(events: Events) -> Stream:
    """User sessions: bids per bidder and session (a gap of 10 s)."""
    sessions = events.bids.key_by("bidder", name="bidder").window(rh.session(WINDOW_MS))
    counts = sessions.aggregate(bid_count=rh.count(), name="q11-sessions")
    return counts.map(_session_row, name="q11-rows")


def _session_row(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "bidder": row["key"],
        "bid_count": row["bid_count"],
        "starttime": row["window_start"],
        "endtime": row["window_end"],
    }


QUERIES: dict[str, Callable[[Events], Stream]] = {
    "q0": q0,
    "q1": q1,
    "q2": q2,
    "q3": q3,
    "q4": q4,
    "q5": q5,
    "q6": q6,
    "q7": q7,
    "q8": q8,
    "q11": q11,
}
"""Every query, by name."""


def build(query: str, source: Any, sink: Any, *, data_dir: Any = None) -> rh.Flow:
    """A flow running ``query`` on the events of ``source`` (all kinds, as the generator
    writes them) into ``sink``.

    Event time is each event's ``dateTime`` (epoch ms); the generator's events are in order,
    so the watermark follows the newest event. Checkpoints are off (the input is a file);
    a bad event stops the run.
    """
    flow = _flow(query, data_dir)
    events = flow.source(source, timestamp="dateTime", timestamp_unit="ms", name="events")
    QUERIES[query](split_by_kind(events)).sink(sink, name="results")
    return flow


def build_from_topics(query: str, topic: str, sink: Any, *, data_dir: Any = None) -> rh.Flow:
    """A flow running ``query`` on the log topics ``<topic>.person``, ``<topic>.auction`` and
    ``<topic>.bid`` (as ``rheos nexmark generate --topic`` writes them) into ``sink``; it
    reads only the topics of the kinds the query uses.

    One topic per kind gives each topic one schema, so a micro-batch run decodes it in bulk
    and runs its filters and window aggregations columnar. Event time is the records'
    timestamp (their ``dateTime``). Log sources never end: run it bounded.
    """
    flow = _flow(query, data_dir)
    events = Events(lambda kind: flow.source(rh.log_source(f"{topic}.{kind}"), name=f"{kind}s"))
    QUERIES[query](events).sink(sink, name="results")
    return flow


def build_from_files(
    query: str, folder: str | os.PathLike[str], sink: Any, *, data_dir: Any = None
) -> rh.Flow:
    """A flow running ``query`` on the JSON-lines files ``person.jsonl``, ``auction.jsonl``
    and ``bid.jsonl`` of ``folder`` (one kind each, as ``rheos nexmark generate --split``
    writes them) into ``sink``; it reads only the files of the kinds the query uses."""
    flow = _flow(query, data_dir)

    def source(kind: str) -> Stream:
        path = os.path.join(folder, f"{kind}.jsonl")
        return flow.source(
            rh.jsonl_source(path), timestamp="dateTime", timestamp_unit="ms", name=f"{kind}s"
        )

    QUERIES[query](Events(source)).sink(sink, name="results")
    return flow


def _flow(query: str, data_dir: Any) -> rh.Flow:
    if query not in QUERIES:
        raise FlowDefinitionError(
            f"no Nexmark query {query!r}; the queries are {', '.join(QUERIES)}"
        )
    return rh.Flow(f"nexmark-{query}", data_dir=data_dir, checkpoint_interval=None, on_error="fail")


__all__ = [
    "QUERIES",
    "Events",
    "build",
    "build_from_files",
    "build_from_topics",
    "closed_auctions",
    "split_by_kind",
]
