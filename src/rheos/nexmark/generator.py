"""The Nexmark event generator: persons, auctions and bids of an online auction site.

It follows the reference generator of the Nexmark benchmark (the nexmark/nexmark project, the
one Flink, RisingWave and Arroyo publish results with) and its default configuration:

* **Proportions.** Events come in groups of 50: one person, then three auctions, then 46 bids
  (``1 : 3 : 46``). Event ``n`` is a person when ``n % 50 == 0``, an auction when
  ``1 <= n % 50 <= 3``, and a bid otherwise.
* **Ids.** Person and auction ids are dense, from 1000; the person or auction an event ``n``
  creates has the next id, so the ids say which events came before.
* **Hot sellers, auctions and bidders.** An auction's seller is, with probability
  ``1 - 1/hot_sellers_ratio`` (3/4), the first of the latest hundred persons; otherwise one of
  the 1,000 most recent persons (or up to ten not created yet). A bid's auction is, with
  probability ``1 - 1/hot_auction_ratio`` (1/2), the first of the latest hundred auctions;
  otherwise one of the 100 auctions in flight (or up to ten not created yet). A bid's
  bidder is, with probability 3/4, the second of the latest hundred persons.
* **Prices** (initial bids, reserves above them, bids) are ``round(100 * 10**u)`` cents for
  ``u`` uniform in ``[0, 6)``: log-uniform from $1 to $1,000,000.
* **Auction durations**: uniform in ``[1, 2h]`` milliseconds, where ``h`` is the event time
  until the auction 100 auctions later is created (about 167 ms at the default rate), so
  about 100 auctions are open at any time.
* **Event time**: the default rate is 10,000 events per second of event time, so event ``n``
  has ``dateTime = base_time + n // 10`` (milliseconds); event times never go backwards.
* **Channels**: half of the bids come from four hot channels (``Google``, ``Facebook``,
  ``Baidu``, ``Apple``), the rest from ``channel-0`` to ``channel-9999``, each with its URL.

Unlike the reference, whose random numbers are seeded from the clock, a generator is
deterministic: the same :class:`GeneratorConfig` (its ``seed`` included) gives the same
events, byte for byte. Events are flat dicts with a ``kind`` (``"person"``, ``"auction"``
or ``"bid"``) and the standard fields; the reference's padding fields (``extra``, an
auction's ``description``) are left out. A bid's bidder is a person id, offset by 1000 once
(the reference's latest bid generator adds the offset twice, naming bidders that never
register).

>>> events = list(generate(GeneratorConfig(events=50)))
>>> [e["kind"] for e in events[:5]]
['person', 'auction', 'auction', 'auction', 'bid']
>>> sorted(events[0])
['city', 'creditCard', 'dateTime', 'emailAddress', 'id', 'kind', 'name', 'state']
>>> events[1]["id"], events[3]["id"], events[49]["dateTime"] - events[0]["dateTime"]
(1000, 1002, 4)
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import msgspec

from rheos.transport import Log

FIRST_PERSON_ID = 1000
FIRST_AUCTION_ID = 1000
FIRST_CATEGORY_ID = 10
NUM_CATEGORIES = 5
HOT_RATIO_WINDOW = 100
"""A hot seller, bidder or auction is one of the latest hundred (the first or second of them)."""
ID_LEAD = 10
"""How many ids beyond the latest person or auction a random choice may pick."""

US_STATES = ("AZ", "CA", "ID", "OR", "WA", "WY")
US_CITIES = (
    "Phoenix",
    "Los Angeles",
    "San Francisco",
    "Boise",
    "Portland",
    "Bend",
    "Redmond",
    "Seattle",
    "Kent",
    "Cheyenne",
)
FIRST_NAMES: tuple[str, ...] = (
    *("Peter", "Paul", "Luke", "John", "Saul", "Vicky"),
    *("Kate", "Julie", "Sarah", "Deiter", "Walter"),
)
LAST_NAMES: tuple[str, ...] = (
    *("Shultz", "Abrams", "Spencer", "White", "Bartels"),
    *("Walton", "Smith", "Jones", "Noris"),
)
HOT_CHANNELS = ("Google", "Facebook", "Baidu", "Apple")
CHANNELS = 10_000
KINDS = ("person", "auction", "bid")
APPEND_BATCH = 10_000
"""Records appended to a topic at once by :func:`write_topics`."""
DEFAULT_BASE_TIME = 1_704_067_200_000
"""2024-01-01T00:00:00Z, the event time of the first event unless told otherwise."""


@dataclass(frozen=True)
class GeneratorConfig:
    """What to generate; the defaults are the reference's.

    ``events`` is the number of events, ``events_per_second`` the rate in event time (the
    reference's ``firstEventRate``), ``base_time`` the first event's time (epoch ms).
    """

    events: int
    seed: int = 0
    base_time: int = DEFAULT_BASE_TIME
    events_per_second: int = 10_000
    person_proportion: int = 1
    auction_proportion: int = 3
    bid_proportion: int = 46
    hot_auction_ratio: int = 2
    hot_sellers_ratio: int = 4
    hot_bidders_ratio: int = 4
    active_people: int = 1000
    in_flight_auctions: int = 100

    @property
    def total_proportion(self) -> int:
        return self.person_proportion + self.auction_proportion + self.bid_proportion

    def timestamp(self, n: int) -> int:
        """The event time of event ``n`` (epoch ms)."""
        return self.base_time + n * 1000 // self.events_per_second

    def last_person(self, n: int) -> int:
        """The newest person id (from 0) at event ``n``: the one it creates, if a person."""
        epoch, offset = divmod(n, self.total_proportion)
        return epoch * self.person_proportion + min(offset, self.person_proportion - 1)

    def last_auction(self, n: int) -> int:
        """The newest auction id (from 0) at event ``n``; -1 before the first auction."""
        epoch, offset = divmod(n, self.total_proportion)
        if offset < self.person_proportion:
            epoch, offset = epoch - 1, self.auction_proportion - 1
        elif offset >= self.person_proportion + self.auction_proportion:
            offset = self.auction_proportion - 1
        else:
            offset -= self.person_proportion
        return epoch * self.auction_proportion + offset


def generate(config: GeneratorConfig) -> Iterator[dict[str, Any]]:
    """The events of ``config``, in order (event times non-decreasing)."""
    return _Generator(config).events()


def write_jsonl(config: GeneratorConfig, path: str | os.PathLike[str]) -> int:
    """Write the events of ``config`` to ``path``, one JSON object per line; returns the count."""
    encode = msgspec.json.Encoder().encode
    count = 0
    with open(path, "wb") as out:
        lines: list[bytes] = []
        for event in generate(config):
            lines.append(encode(event))
            if len(lines) == 4096:
                out.write(b"\n".join(lines) + b"\n")
                count, lines = count + len(lines), []
        if lines:
            out.write(b"\n".join(lines) + b"\n")
            count += len(lines)
    return count


def write_jsonl_by_kind(config: GeneratorConfig, folder: str | os.PathLike[str]) -> int:
    """Write the events of ``config`` to ``person.jsonl``, ``auction.jsonl`` and ``bid.jsonl``
    in ``folder`` (created if missing), one schema per file; returns the number of events."""
    os.makedirs(folder, exist_ok=True)
    encode = msgspec.json.Encoder().encode
    count = 0
    with ExitStack() as stack:
        files = {
            kind: stack.enter_context(open(os.path.join(folder, f"{kind}.jsonl"), "wb"))
            for kind in KINDS
        }
        for event in generate(config):
            files[event["kind"]].write(encode(event) + b"\n")
            count += 1
    return count


def write_topics(config: GeneratorConfig, log: Log, topic: str, *, partitions: int = 1) -> int:
    """Append the events of ``config`` to ``log``, one topic per kind: ``<topic>.person``,
    ``<topic>.auction`` and ``<topic>.bid`` (created with ``partitions`` if missing). Each
    record's timestamp is its event's ``dateTime``. Returns the number of events."""
    encode = msgspec.json.Encoder().encode
    producers = {
        kind: log.producer(f"{topic}.{kind}", create_partitions=partitions) for kind in KINDS
    }
    pending: dict[str, tuple[list[bytes], list[int]]] = {kind: ([], []) for kind in KINDS}
    count = 0

    def flush(kind: str) -> None:
        nonlocal count
        values, stamps = pending[kind]
        if values:
            producers[kind].append(values, timestamps=stamps)
            count += len(values)
            pending[kind] = ([], [])

    try:
        for event in generate(config):
            values, stamps = pending[event["kind"]]
            values.append(encode(event))
            stamps.append(event["dateTime"])
            if len(values) == APPEND_BATCH:
                flush(event["kind"])
        for kind in KINDS:
            flush(kind)
    finally:
        for producer in producers.values():
            producer.close()
    return count


class _Generator:
    def __init__(self, config: GeneratorConfig) -> None:
        if config.events < 0:
            raise ValueError(f"events must be at least 0, got {config.events}")
        self.config = config
        self.rng = random.Random(config.seed)
        urls = random.Random(f"nexmark-urls-{config.seed}")
        self.hot_urls = tuple(_base_url(urls) for _ in HOT_CHANNELS)
        self.channel_urls: dict[int, str] = {}

    def events(self) -> Iterator[dict[str, Any]]:
        c = self.config
        persons, auctions = c.person_proportion, c.person_proportion + c.auction_proportion
        for n in range(c.events):
            ts = c.timestamp(n)
            rem = n % c.total_proportion
            if rem < persons:
                yield self.person(n, ts)
            elif rem < auctions:
                yield self.auction(n, ts)
            else:
                yield self.bid(n, ts)

    # -- ids -------------------------------------------------------------------------------
    def random_person(self, n: int) -> int:
        """One of the active persons, or one of the next few to be created (from 0)."""
        people = self.config.last_person(n) + 1
        active = min(people, self.config.active_people)
        return people - active + _below(self.rng, active + ID_LEAD)

    def random_auction(self, n: int) -> int:
        """One of the auctions in flight, or one of the next few to be created (from 0)."""
        last = self.config.last_auction(n)
        low = max(last - self.config.in_flight_auctions, 0)
        return low + _below(self.rng, last - low + 1 + ID_LEAD)

    # -- events ----------------------------------------------------------------------------
    def person(self, n: int, ts: int) -> dict[str, Any]:
        rng = self.rng
        name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
        email = f"{_string(rng, 7)}@{_string(rng, 5)}.com"
        card = " ".join(f"{_below(rng, 10_000):04d}" for _ in range(4))
        return {
            "kind": "person",
            "id": self.config.last_person(n) + FIRST_PERSON_ID,
            "name": name,
            "emailAddress": email,
            "creditCard": card,
            "city": rng.choice(US_CITIES),
            "state": rng.choice(US_STATES),
            "dateTime": ts,
        }

    def auction(self, n: int, ts: int) -> dict[str, Any]:
        c, rng = self.config, self.rng
        if _below(rng, c.hot_sellers_ratio) > 0:
            seller = c.last_person(n) // HOT_RATIO_WINDOW * HOT_RATIO_WINDOW
        else:
            seller = self.random_person(n)
        category = FIRST_CATEGORY_ID + _below(rng, NUM_CATEGORIES)
        initial = _price(rng)
        # Long enough, on average, for the auction in_flight_auctions auctions later to be
        # created: about that many auctions are open at any time.
        ahead = c.in_flight_auctions * c.total_proportion // c.auction_proportion
        horizon = c.timestamp(n + ahead) - ts
        expires = ts + 1 + _below(rng, max(2 * horizon, 1))
        item = _string(rng, 20)
        return {
            "kind": "auction",
            "id": c.last_auction(n) + FIRST_AUCTION_ID,
            "itemName": item,
            "initialBid": initial,
            "reserve": initial + _price(rng),
            "dateTime": ts,
            "expires": expires,
            "seller": seller + FIRST_PERSON_ID,
            "category": category,
        }

    def bid(self, n: int, ts: int) -> dict[str, Any]:
        c, rng = self.config, self.rng
        if _below(rng, c.hot_auction_ratio) > 0:
            auction = c.last_auction(n) // HOT_RATIO_WINDOW * HOT_RATIO_WINDOW
        else:
            auction = self.random_auction(n)
        if _below(rng, c.hot_bidders_ratio) > 0:
            # the second of the latest hundred persons, so hot bidders are not hot sellers
            bidder = c.last_person(n) // HOT_RATIO_WINDOW * HOT_RATIO_WINDOW + 1
        else:
            bidder = self.random_person(n)
        price = _price(rng)
        if _below(rng, 2) > 0:
            i = _below(rng, len(HOT_CHANNELS))
            channel, url = HOT_CHANNELS[i], self.hot_urls[i]
        else:
            number = _below(rng, CHANNELS)
            channel, url = f"channel-{number}", self.channel_url(number)
        return {
            "kind": "bid",
            "auction": auction + FIRST_AUCTION_ID,
            "bidder": bidder + FIRST_PERSON_ID,
            "price": price,
            "channel": channel,
            "url": url,
            "dateTime": ts,
        }

    def channel_url(self, number: int) -> str:
        """The URL of channel ``number``: fixed per seed; nine in ten name their channel."""
        url = self.channel_urls.get(number)
        if url is None:
            rng = random.Random(f"nexmark-channel-{self.config.seed}-{number}")
            url = _base_url(rng)
            if _below(rng, 10) > 0:
                url += f"&channel_id={abs(_reverse_bits(number))}"
            self.channel_urls[number] = url
        return url


def _below(rng: random.Random, n: int) -> int:
    """A uniform integer in ``[0, n)`` (one call to the generator: faster than randrange)."""
    return int(rng.random() * n)


def _price(rng: random.Random) -> int:
    """A log-uniform price in cents, from 100 to 100,000,000 (rounded half up)."""
    return int(10.0 ** (rng.random() * 6.0) * 100.0 + 0.5)


def _string(rng: random.Random, max_length: int, space: str = " ") -> str:
    """Lower-case letters, one in 13 a space, 3 to ``max_length - 1`` long before trimming."""
    length = 3 + _below(rng, max_length - 3)
    chars = [space if _below(rng, 13) == 0 else chr(97 + _below(rng, 26)) for _ in range(length)]
    return "".join(chars).strip()


def _base_url(rng: random.Random) -> str:
    parts = "/".join(_string(rng, 5, "_") for _ in range(3))
    return f"https://www.nexmark.com/{parts}/item.htm?query=1"


def _reverse_bits(value: int) -> int:
    """The 32 bits of ``value`` in reverse order, as a signed 32-bit integer."""
    reversed_ = int(f"{value & 0xFFFFFFFF:032b}"[::-1], 2)
    return reversed_ - (1 << 32) if reversed_ >= 1 << 31 else reversed_


__all__ = [
    "KINDS",
    "GeneratorConfig",
    "generate",
    "write_jsonl",
    "write_jsonl_by_kind",
    "write_topics",
]
