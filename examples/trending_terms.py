"""Trending terms in a stream of short texts, per window.

Run it with ``python examples/trending_terms.py [TOP_N]`` (default 5).

Each post is split into terms (lowercased, punctuation stripped, stop words and very short
words dropped; a term counts once per post). The flow counts the posts that mention each
term in 15-minute event-time windows, then takes every term's count in a window together
(a second window over the first one's results) and keeps the top N of each window.

Data: the texts are real -- the 180 English one-liners of the ``pyjokes`` package on PyPI
(``pyjokes.get_jokes("en", "neutral")``; the package is BSD-3-Clause, these jokes come from
a Stack Overflow thread under CC BY-SA 3.0) -- but the stream is SYNTHETIC: the posting
times, and which joke is posted (and re-posted) when, are drawn by :func:`synthetic_posts`
with a fixed seed. Every 15 minutes a different topic is "hot": half the posts in that slot
are jokes that mention it.
"""

from __future__ import annotations

import random
import re
import sys
from datetime import UTC, datetime
from typing import Any

import rheos as rh

START_MS = 1_700_000_000_000 - 1_700_000_000_000 % 3_600_000  # an hour boundary, 2023-11-14
SLOT_MS = 15 * 60_000
HOT_TOPICS = ["python", "java", "bar", "programmers", "bytes", "sql", "recursion", "unicode"]
STOP_TEXT = """a about after all also an and any are as at be because been but by can could did do
    does don't for from get go goes had has have he her his how i if in into is it it's its
    just like make me more my no not now of on one only or our out over said says she so some
    than that that's the their them then there they this to too two up us was we what when
    where which who why will with would you your"""
STOP_WORDS = frozenset(STOP_TEXT.split())
WORD = re.compile(r"[a-z0-9][a-z0-9'+#]*")


# -- the data (real texts, synthetic timing) -----------------------------------------------------
def load_texts() -> list[str]:
    """The English one-liners shipped by ``pyjokes`` (offline)."""
    try:
        import pyjokes
    except ModuleNotFoundError:
        raise SystemExit("this example needs the pyjokes package: pip install pyjokes") from None
    return list(pyjokes.get_jokes("en", "neutral"))


def synthetic_posts(
    texts: list[str], *, slots: int = 8, per_slot: int = 300, seed: int = 3
) -> list[dict[str, Any]]:
    """SYNTHETIC posts ``{"id", "ts", "text"}``: ``per_slot`` posts in each 15-minute slot,
    half of them about that slot's hot topic. In time order."""
    rng = random.Random(seed)
    posts = []
    for slot in range(slots):
        topic = HOT_TOPICS[slot % len(HOT_TOPICS)]
        about = [t for t in texts if topic in terms(t)] or texts
        for _ in range(per_slot):
            text = rng.choice(about) if rng.random() < 0.5 else rng.choice(texts)
            ts = START_MS + slot * SLOT_MS + rng.randrange(SLOT_MS)
            posts.append({"ts": ts, "text": text})
    posts.sort(key=lambda p: p["ts"])
    return [{"id": i, **p} for i, p in enumerate(posts)]


# -- the flow -----------------------------------------------------------------------------------
def terms(text: str) -> list[str]:
    """The distinct terms of a text, in order: lowercase, no punctuation, no stop words."""
    seen: dict[str, None] = {}
    for word in WORD.findall(text.lower()):
        word = word.strip("'")
        if len(word) > 2 and word not in STOP_WORDS:
            seen[word] = None
    return list(seen)


def top_n(n: int) -> Any:
    """A window of term counts → its ``n`` most mentioned terms (ties: alphabetical)."""

    def pick(window: dict[str, Any]) -> dict[str, Any]:
        ranked = sorted(window["terms"], key=lambda t: (-t["posts"], t["key"]))
        return {
            "window_start": window["window_start"],
            "window_end": window["window_end"],
            "top": [(t["key"], t["posts"]) for t in ranked[:n]],
        }

    return pick


def build_trending(
    flow: rh.Flow, source: Any, out: Any, *, window: str = "15m", n: int = 5
) -> rh.Flow:
    """Add the trending-terms steps to ``flow``: posts from ``source`` (``{"ts", "text"}``),
    one ``{"window_start", "window_end", "top": [(term, posts), ...]}`` per window into ``out``.
    """
    (
        flow.source(source, timestamp="ts", timestamp_unit="ms", out_of_orderness="30s")
        .flat_map(lambda post: terms(post["text"]))  # each term keeps its post's event time
        .key_by(lambda term: term)
        .window(rh.tumbling(window))
        .aggregate(posts=rh.count())
        # the results of one window all carry its last millisecond as their event time, so a
        # second window of the same size, keyed by the window, gathers every term of it
        .key_by("window_start")
        .window(rh.tumbling(window))
        .aggregate(terms=rh.collect())
        .map(top_n(n))
        .sink(out)
    )
    return flow


# -- run it -------------------------------------------------------------------------------------
def show(window: dict[str, Any]) -> None:
    start = datetime.fromtimestamp(window["window_start"] / 1000, UTC).strftime("%H:%M")
    end = datetime.fromtimestamp(window["window_end"] / 1000, UTC).strftime("%H:%M")
    print(f"{start}-{end}  " + ", ".join(f"{term} ({count})" for term, count in window["top"]))


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    posts = synthetic_posts(load_texts())
    print(f"{len(posts)} posts: real one-liners (pyjokes), SYNTHETIC timing (fixed seed)")
    print(f"top {n} terms per 15 minutes, with the number of posts that mention each:")
    flow = build_trending(
        rh.Flow("trending-terms"), rh.iterable_source(posts), rh.callback_sink(show), n=n
    )
    print(flow.run())


if __name__ == "__main__":
    main()
