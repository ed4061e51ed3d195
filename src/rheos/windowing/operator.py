"""The window operator: keyed event-time windows, their aggregations, lateness and emission.

:class:`WindowOperator` is pure logic: the caller feeds it events with :meth:`~WindowOperator.
process` and moves event time forward with :meth:`~WindowOperator.advance`; it returns result
rows and reports late events. It does no I/O, starts no thread and reads no clock.

Results. One row per (key, window), a plain dict::

    {"key": key, "window_start": start, "window_end": end, <name>: <result>, ...}

with one entry per named aggregation, in the order given; calendar windows
(:func:`~rheos.windowing.calendar`) add ``"period": <label>`` after ``window_end``. Unkeyed
(global) windows use the key ``None``. Keys are JSON-able scalars (``str``, ``int``,
``float``, ``bool``, ``None``) or tuples of them.

Finalization. With allowed lateness ``L`` a window ``[start, end)`` is *finalized* -- its final
row is emitted and its state dropped -- when the watermark reaches ``end + L``
(``W >= end + L``); see :mod:`rheos.windowing.windows`.

Emission modes.

* ``emit="final"`` (default): one row per window, when it is finalized; :meth:`process`
  returns no rows.
* ``emit="update"``: :meth:`process` returns a row for every window the event changed (by
  window start), and the final row follows when the window is finalized. Rows carry
  ``"final": False`` / ``"final": True`` (only in this mode). An update row of a session
  supersedes the rows of the sessions it merged.

Order. :meth:`advance` returns rows ordered by window end, then window start, then the order in
which the window's keys received their first event (the *key insertion order* of the window;
after a merge of sessions, the earliest of the merged ones). The order does not depend on how
the calls to ``advance`` are grouped: advancing to ``W1`` and then to ``W2`` returns the same
rows in the same order as advancing to ``W2`` at once, so a stream-first runtime and a
micro-batch runtime that feed the same events and watermarks produce identical output.

Errors at close. An aggregation's ``result`` runs when a window is finalized. If it raises,
:meth:`~WindowOperator.advance` raises -- or, given ``on_error``, reports a
:class:`CloseFailure` to it, drops that (key, window) as finalized (no row) and goes on with
the others.

Event time. Which windows an event is in and whether it is late are the event-time kernel's
answers (:class:`~rheos.windowing.kernel.WindowKernel`, :attr:`WindowOperator.kernel`); the
tumbling and sliding paths are generated code that inlines the kernel's formulas as source
text, so the micro-batch runtime, which asks the kernel for whole arrays, decides the same.

Late events. An event is late for a window that was finalized when it arrived. It is not added
to such windows, but it is still added to those of its windows that are open (sliding windows).
:meth:`process` returns a :class:`LateInfo` naming the windows it missed and counts it in
:attr:`~WindowOperator.late_events`: nothing is dropped silently. For every input, the final
rows plus the late events re-added to exactly the windows they missed equal the rows of a batch
run over all events (with a perfect watermark) -- for tumbling and sliding windows; with
sessions, every event is in exactly one final session or reported late.

Sessions. A late event is one whose own proto-window ``[ts, ts + gap)`` is finalized, or which
would merge into a session of its key that was already finalized (the operator keeps the bounds
of each key's last finalized session until no event could reach it any more). It is reported
with the missed window -- the proto-window, or that finalized session -- and not added at all.

Bad events. Every aggregation's value is read before any state changes: an event without a
field an aggregation reads raises :class:`rheos.errors.EventError` (an error raised by a user's
field function propagates as it is) and leaves the operator as it was.

Where the keys live. In dicts and lists by default. :meth:`~WindowOperator.keep_keys_in`
(tumbling, sliding and calendar windows) and :meth:`~WindowOperator.keep_sessions_in`
(sessions) hand them to disk-backed containers instead (:mod:`rheos.state.disk`, for flows
with ``state="disk"``); the semantics above do not change, and the operator then tracks no
changed keys (the containers write what changed). :meth:`~WindowOperator.advance` with a
``sink`` hands rows over a few thousand at a time.

Checkpoints. :meth:`~WindowOperator.snapshot` returns plain data (msgpack-able: lists, dicts
with ``str`` keys, scalars; never tuples as keys or custom objects) and
:meth:`~WindowOperator.load` restores it exactly: a restored operator continues as the
original would have. For incremental checkpoints,
:meth:`~WindowOperator.changed_keys` names the keys whose state changed since
:meth:`~WindowOperator.clear_changed`; store ``snapshot(include_keys=False)`` plus
:meth:`~WindowOperator.snapshot_key` of each changed key, and restore with :meth:`load` followed
by :meth:`~WindowOperator.restore_key` for every stored key.

>>> from rheos.windowing import MAX_WATERMARK, count, sum, tumbling
>>> op = WindowOperator(tumbling("10s"), {"n": count(), "total": sum("x")})
>>> op.process("a", {"x": 1}, 1_000).outputs
[]
>>> _ = op.process("a", {"x": 2}, 9_999)
>>> _ = op.process("b", {"x": 5}, 10_000)
>>> op.advance(10_000)
[{'key': 'a', 'window_start': 0, 'window_end': 10000, 'n': 2, 'total': 3}]
>>> op.process("a", {"x": 7}, 3_000).late
LateInfo(key='a', ts=3000, event={'x': 7}, windows=((0, 10000),))
>>> op.advance(MAX_WATERMARK)
[{'key': 'b', 'window_start': 10000, 'window_end': 20000, 'n': 1, 'total': 5}]
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Callable, Collection, Hashable, Iterable, Mapping
from copy import deepcopy
from heapq import heappop, heappush
from typing import Any, NamedTuple

from rheos.durations import Duration, to_ms
from rheos.errors import CheckpointError, ConfigError, EventError
from rheos.windowing.aggregations import Aggregation, BoundAggregation, bind
from rheos.windowing.containers import ListHeap, NoChanges, SessionHeap
from rheos.windowing.kernel import WindowKernel
from rheos.windowing.watermarks import MAX_WATERMARK, MIN_WATERMARK
from rheos.windowing.windows import (
    CalendarWindows,
    SessionWindows,
    SlidingWindows,
    TumblingWindows,
    WindowSpec,
)

_FORMAT = 1
_RESERVED = frozenset({"key", "window_start", "window_end", "final"})
_EMITS = ("final", "update")

Row = dict[str, Any]


class LateInfo(NamedTuple):
    """A late event and the windows ``(start, end)`` it missed."""

    key: Hashable
    ts: int
    event: Any
    windows: tuple[tuple[int, int], ...]


class CloseFailure(NamedTuple):
    """An aggregation's ``result`` raised while ``(key, window)`` was finalized."""

    key: Hashable
    start: int
    end: int
    name: str
    """The aggregation's result name."""
    aggregation: BoundAggregation
    error: Exception


OnCloseError = Callable[[CloseFailure], None]


class ProcessResult(NamedTuple):
    """What :meth:`WindowOperator.process` returns: update rows, and the late report if any."""

    outputs: list[Row]
    late: LateInfo | None


_new_result = tuple.__new__  # ProcessResult without the NamedTuple constructor: the hot path


class Inlined(NamedTuple):
    """:meth:`WindowOperator.process` as Python lines for a generated loop over many events
    (:meth:`WindowOperator.inline_source`)."""

    enter: list[str]
    """Before the loop."""
    late: list[str]
    """Per event: lines ending in an ``if`` whose block sets the late report."""
    body: list[str]
    """Per event: adding an event that is not late (for an ``else``)."""
    sync: list[str]
    """Storing the loop's locals into the operator: before the watermark moves (a checkpoint
    may read them) and once the loop ends, however it ends."""
    resume: list[str]
    """After the watermark moved."""


def key_to_plain(key: Hashable) -> Any:
    """A key as plain data (tuples become lists)."""
    if isinstance(key, tuple):
        return [key_to_plain(k) for k in key]
    return key


def key_from_plain(data: Any) -> Hashable:
    """A key back from :func:`key_to_plain` (or from msgpack): lists become tuples."""
    if isinstance(data, list):
        return tuple(key_from_plain(d) for d in data)
    return data  # type: ignore[no-any-return]


def copy_plain(value: Any) -> Any:
    """A deep copy of plain data; tuples become lists, as after a msgpack round trip."""
    if isinstance(value, list | tuple):
        return [copy_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: copy_plain(v) for k, v in value.items()}
    return value


SINK_ROWS = 4096
"""Rows :meth:`WindowOperator.advance` hands its ``sink`` at a time."""


def _new_dict(start: int) -> dict[Hashable, list[Any]]:
    return {}


def _by_creation(item: tuple[Hashable, list[Any]]) -> int:
    return item[1][0]  # type: ignore[no-any-return]


class WindowOperator:
    """Keyed windows over event time (see the module docs for the semantics).

    ``spec`` comes from :func:`~rheos.windowing.tumbling`, :func:`~rheos.windowing.sliding` or
    :func:`~rheos.windowing.session`; ``aggregations`` maps each result name to an aggregation.
    """

    def __init__(
        self,
        spec: WindowSpec,
        aggregations: Mapping[str, Aggregation],
        *,
        allowed_lateness_ms: Duration = 0,
        emit: str = "final",
    ) -> None:
        if not isinstance(spec, WindowSpec):
            raise ConfigError(
                f"window operator: expected tumbling(...), sliding(...), session(...) or "
                f"calendar(...), got {spec!r}"
            )
        if emit not in _EMITS:
            raise ConfigError(f"window operator: emit must be 'final' or 'update', got {emit!r}")
        calendar = isinstance(spec, CalendarWindows)
        for name in aggregations:
            if not isinstance(name, str) or name in _RESERVED or (calendar and name == "period"):
                raise ConfigError(
                    f"window operator: {name!r} cannot name an aggregation "
                    "(names are strings other than key, window_start, window_end, final, "
                    "and period for calendar windows)"
                )
        self.spec = spec
        self.allowed_lateness_ms = to_ms(allowed_lateness_ms, what="allowed_lateness")
        self.emit = emit
        self._names = tuple(aggregations)
        self._aggs: tuple[BoundAggregation, ...] = tuple(bind(a) for a in aggregations.values())
        self._reads = tuple(a.read for a in self._aggs)
        self._reads_fields = any(read is not None for read in self._reads)
        self._adds = tuple(a.add_value for a in self._aggs)
        self._add_order = sorted(range(len(self._aggs)), key=lambda j: _in_place(self._aggs[j]))
        """The aggregations in the order :meth:`_add` adds to them: those whose accumulator
        is changed in place last."""
        self._update = emit == "update"
        self._watermark = MIN_WATERMARK
        self._seq = 0
        self.late_events = 0
        """Events that missed at least one window."""
        self._changed: set[Hashable] = set()
        self._bound: list[tuple[dict[str, Any], str]] = []
        """The globals of generated code that binds ``_changed.add`` (as ``prefix +
        "changed_add"``): a generated ``process``, loops that inline it
        (:meth:`inline_source`)."""
        self._state_size = 0
        # Which windows an event is in, and whether it is late: the event-time kernel.
        kernel = self.kernel = WindowKernel(spec, self.allowed_lateness_ms)
        self._windows_of = kernel.windows
        self._is_late = kernel.late
        # Tumbling and sliding windows: start -> key -> [creation seq, acc, ...], plus a heap
        # of starts; windows of restored state may need sorting by creation seq.
        # Calendar windows are tumbling windows whose end is asked of the spec.
        self._kind: type[WindowSpec] = (
            TumblingWindows
            if kernel.tumbling
            else SlidingWindows
            if kernel.sliding
            else SessionWindows
        )
        self._calendar = kernel.calendar
        self._size = kernel.size
        self._windows: dict[int, dict[Hashable, list[Any]]] = {}
        self._starts: list[int] = []
        self._unsorted: set[int] = set()
        # Session windows: key -> sessions by start, each [start, end, creation seq, acc, ...];
        # a heap of (end, start, creation seq, n, key) with stale entries skipped; per key, the
        # bounds of the last finalized session, and a heap saying when they can be forgotten.
        self._sessions: Any = {}
        """key -> sessions: a dict, or a disk-backed mapping (:meth:`keep_sessions_in`)."""
        self._session_heap: Any = ListHeap()
        self._closed: Any = {}
        self._closed_heap: Any = ListHeap()
        self._pushes = 0
        self._quiet_until = MIN_WATERMARK
        """Sessions: below this watermark no session finalizes and no finalized one is
        forgotten (the lowest end on the heap plus the lateness, the next forget time), so
        :meth:`advance` only moves the watermark. A stale heap entry makes it lower, never
        higher; :data:`MIN_WATERMARK` until an advance has computed it."""
        self._on_disk = False
        """Keys in a disk-backed store (:meth:`keep_keys_in`, :meth:`keep_sessions_in`)."""
        self._new_keys: Callable[[int], Any] = _new_dict
        """Makes the container of one window's keys (a dict; a disk-backed one: see
        :meth:`keep_keys_in`)."""

        if self._kind is TumblingWindows and not self._update:
            self.process = _compile_tumbling(self)  # type: ignore[method-assign]
        elif self._kind is SlidingWindows:
            self.process = _compile_sliding(self)  # type: ignore[method-assign]

    # -- reading -------------------------------------------------------------------------------

    @property
    def watermark(self) -> int:
        """The watermark the operator was last advanced to."""
        return self._watermark

    @property
    def windows_open(self) -> int:
        """Distinct open windows (a session counts once per key)."""
        if self._kind is SessionWindows:
            return self._state_size
        return len(self._windows)

    @property
    def state_size(self) -> int:
        """Open (key, window) states held: the number of accumulator sets in memory."""
        return self._state_size

    def _head(self, key: Hashable, start: int, end: int) -> Row:
        row: Row = {"key": key, "window_start": start, "window_end": end}
        if self._calendar is not None:
            row["period"] = self._calendar.label(start)
        return row

    def _row(self, key: Hashable, start: int, end: int, state: list[Any], at: int) -> Row:
        row = self._head(key, start, end)
        for name, agg, acc in zip(self._names, self._aggs, state[at:], strict=True):
            row[name] = agg.result(acc)
        return row

    def _final_row(
        self,
        key: Hashable,
        start: int,
        end: int,
        state: list[Any],
        at: int,
        on_error: OnCloseError | None,
    ) -> Row | None:
        """The final row of ``(key, [start, end))``; None when a result raised and
        ``on_error`` took the failure."""
        if on_error is None:
            row = self._row(key, start, end, state, at)
        else:
            row = self._head(key, start, end)
            for name, agg, acc in zip(self._names, self._aggs, state[at:], strict=True):
                try:
                    row[name] = agg.result(acc)
                except Exception as exc:
                    on_error(CloseFailure(key, start, end, name, agg, exc))
                    return None
        if self._update:
            row["final"] = True
        return row

    def _late(
        self, key: Hashable, event: Any, ts: int, missed: tuple[tuple[int, int], ...]
    ) -> LateInfo:
        self.late_events += 1
        return LateInfo(key, ts, event, missed)

    # -- processing ----------------------------------------------------------------------------

    def _read(self, event: Any) -> list[Any] | None:
        """Every aggregation's value of ``event``, read before any state changes.

        None when no aggregation reads a field (each receives the whole event).
        """
        if not self._reads_fields:
            return None
        try:
            return [event if read is None else read(event) for read in self._reads]
        except (LookupError, TypeError) as exc:
            raise self._bad_event(event, exc) from None

    def _add(
        self, state: list[Any], at: int, event: Any, values: list[Any] | None, ts: int, seq: int
    ) -> None:
        """Add one event to the accumulators from ``state[at]`` on: into a copy, stored once
        every add succeeded (an accumulator changed in place -- a list, a user's object -- is
        added to last), so that an event an aggregation cannot add changes none of them."""
        accs = state[at : at + len(self._adds)]
        adds = self._adds
        for j in self._add_order:
            accs[j] = adds[j](accs[j], event if values is None else values[j], ts, seq)
        state[at : at + len(accs)] = accs

    def _bad_event(self, event: Any, exc: Exception) -> Exception:
        for agg in self._aggs:
            if isinstance(agg.field, str):
                try:
                    agg.value(event)
                except EventError as error:
                    return error
        return exc  # raised by a user's field function: not ours to rename

    def process(self, key: Hashable, event: Any, ts: int) -> ProcessResult:
        """Add ``event`` (event time ``ts``) to the windows of ``key`` it belongs to."""
        if self._kind is SessionWindows:
            return self._process_session(key, event, ts)
        window = self._windows_of(ts)
        start, end = window[0]
        if self._is_late(end, self._watermark):
            return ProcessResult([], self._late(key, event, ts, window))
        values = None
        if self._reads_fields:
            try:
                values = [event if read is None else read(event) for read in self._reads]
            except (LookupError, TypeError) as exc:
                raise self._bad_event(event, exc) from None
        keys = self._windows.get(start)
        if keys is None:
            keys = self._windows[start] = self._new_keys(start)
            heappush(self._starts, start)
        seq = self._seq
        self._seq = seq + 1
        state = keys.get(key)
        if state is None:  # (kept only once the event is added)
            fresh = [seq]
            fresh.extend([agg.init() for agg in self._aggs])
            self._add(fresh, 1, event, values, ts, seq)
            state = keys[key] = fresh
            self._state_size += 1
        else:
            self._add(state, 1, event, values, ts, seq)
        self._changed.add(key)
        if self._update:
            row = self._row(key, start, end, state, 1)
            row["final"] = False
            return ProcessResult([row], None)
        return _new_result(ProcessResult, ([], None))

    @property
    def inlinable(self) -> bool:
        """Whether :meth:`inline_source` gives lines (tumbling windows in final mode: their
        rows come only as the watermark moves)."""
        return self._kind is TumblingWindows and not self._update

    def inline_source(
        self, env: dict[str, Any], key: str, event: str, ts: str, prefix: str, late_name: str
    ) -> Inlined | None:
        """What :meth:`process` does, as Python lines for a generated loop to inline
        (:func:`tumbling_source`, ``cached``): tumbling windows in final mode; None for the
        others. The loop keeps the arrival number in a local, stored back (``sync``) before
        anything outside the loop can read it -- before the watermark moves, and however
        the loop ends."""
        if not self.inlinable:
            return None
        late, body = tumbling_source(self, env, key, event, ts, prefix, late_name, cached=True)
        self._bound.append((env, prefix))
        o = f"{prefix}op"
        return Inlined(
            enter=[f"{prefix}at = {prefix}keys = None", f"{prefix}seq = {o}._seq"],
            late=late,
            body=body,
            sync=[f"{o}._seq = {prefix}seq"],
            # (windows may have closed: the next event's is looked up and checked again)
            resume=[f"{prefix}at = None", f"{prefix}seq = {o}._seq"],
        )

    def _push_session(self, key: Hashable, state: list[Any]) -> None:
        self._pushes += 1
        if state[1] + self.allowed_lateness_ms < self._quiet_until:
            self._quiet_until = state[1] + self.allowed_lateness_ms
        self._session_heap.push((state[1], state[0], state[2], self._pushes, key))

    def _process_session(self, key: Hashable, event: Any, ts: int) -> ProcessResult:
        proto = self._windows_of(ts)
        end = proto[0][1]
        if self._is_late(end, self._watermark):
            return ProcessResult([], self._late(key, event, ts, proto))
        closed = self._closed.get(key)
        if closed is not None and ts < closed[1]:
            return ProcessResult([], self._late(key, event, ts, ((closed[0], closed[1]),)))
        values = self._read(event)
        seq = self._seq
        self._seq = seq + 1
        sessions = self._sessions.get(key)
        hits = (
            []
            if sessions is None
            else [i for i, s in enumerate(sessions) if s[0] < end and s[1] > ts]
        )
        if not hits:  # (kept only once the event is added)
            state = [ts, end, seq]
            state.extend([agg.init() for agg in self._aggs])
            self._add(state, 3, event, values, ts, seq)
            if sessions is None:
                sessions = self._sessions[key] = []
            insort(sessions, state, key=lambda s: s[0])
            self._state_size += 1
            self._push_session(key, state)
        elif len(hits) == 1:
            state = sessions[hits[0]]
            start = state[0]
            self._add(state, 3, event, values, ts, seq)  # (first: a bad event grows nothing)
            state[0] = min(start, ts)
            state[1] = max(state[1], end)
            if state[0] != start:
                # (a session that only ends later keeps its heap entry, found too early and
                # pushed again then: one push per session and gap, not one per event)
                self._push_session(key, state)
        else:  # the event bridges sessions: merged into a new one, kept once it is added
            first = sessions[hits[0]]
            state = [min(first[0], ts), first[1], first[2], *deepcopy(first[3:])]
            for other in [sessions[i] for i in hits[1:]]:
                state[1] = max(state[1], other[1])
                state[2] = min(state[2], other[2])
                for i, agg in enumerate(self._aggs, 3):
                    state[i] = agg.merge(state[i], deepcopy(other[i]))
            state[1] = max(state[1], end)
            self._add(state, 3, event, values, ts, seq)
            sessions[hits[0] : hits[-1] + 1] = [state]  # overlapping sessions are contiguous
            self._state_size -= len(hits) - 1
            self._push_session(key, state)
        self._changed.add(key)
        if self._update:
            row = self._row(key, state[0], state[1], state, 3)
            row["final"] = False
            return ProcessResult([row], None)
        return ProcessResult([], None)

    # -- event time ----------------------------------------------------------------------------

    def advance(
        self,
        watermark: int,
        on_error: OnCloseError | None = None,
        sink: Callable[[list[Row]], None] | None = None,
    ) -> list[Row]:
        """Move event time to ``watermark``; return the rows of the windows it finalizes.

        A watermark lower than (or equal to) the current one changes nothing. Advance to
        :data:`MAX_WATERMARK` at the end of input to finalize every window. An aggregation's
        ``result`` that raises goes to ``on_error`` when given (see the module docs).
        Given ``sink``, tumbling and sliding windows hand it their rows
        :data:`SINK_ROWS` at a time as they are made (the rest are returned, in order): a
        window of millions of keys is never held as one list of rows.
        """
        if watermark <= self._watermark:
            return []
        self._watermark = watermark
        if self._kind is SessionWindows:
            if watermark < self._quiet_until:
                return []  # (the common case: called at every rise of the watermark)
            return self._advance_sessions(watermark, on_error)
        out: list[Row] = []
        heap = self._starts
        end_of, is_late = self.kernel.end_of, self._is_late
        while heap:
            start = heap[0]
            end = end_of(start)
            if not is_late(end, watermark):
                break
            heappop(heap)
            keys = self._windows.pop(start, None)
            if keys is None:
                continue
            items: Any = keys.items()
            if start in self._unsorted:
                self._unsorted.discard(start)
                items = sorted(items, key=_by_creation)
            for key, state in items:
                row = self._final_row(key, start, end, state, 1, on_error)
                if row is not None:
                    out.append(row)
                    if sink is not None and len(out) >= SINK_ROWS:
                        sink(out)
                        out = []
                self._changed.add(key)
            self._state_size -= len(keys)
        return out

    def _advance_sessions(self, watermark: int, on_error: OnCloseError | None) -> list[Row]:
        is_late = self._is_late
        out: list[Row] = []
        heap = self._session_heap
        while True:
            top = heap.peek()
            if top is None or not is_late(top[0], watermark):
                break
            end, start, cseq, _, key = heap.pop()
            sessions = self._sessions.get(key)
            if not sessions:
                continue
            index = next((i for i, s in enumerate(sessions) if s[2] == cseq), None)
            if index is None:
                continue  # a stale entry: the session merged into another since
            state = sessions[index]
            if state[1] != end:  # it grew since (not pushed again then): in its new place
                self._push_session(key, state)
                continue
            if state[0] != start:
                continue  # it started earlier since: pushed again then
            sessions.pop(index)
            if not sessions:
                del self._sessions[key]
            self._state_size -= 1
            self._changed.add(key)
            row = self._final_row(key, start, end, state, 3, on_error)
            if row is not None:
                out.append(row)
            closed = self._closed.get(key)
            if closed is None or end > closed[1]:
                self._closed[key] = [start, end]
                self._pushes += 1
                forget_at = end + self._size + self.allowed_lateness_ms
                self._closed_heap.push((forget_at, self._pushes, key))
        closed_heap = self._closed_heap
        while True:
            top = closed_heap.peek()
            if top is None or top[0] > watermark:
                break
            _, _, key = closed_heap.pop()
            closed = self._closed.get(key)
            if closed is not None and is_late(closed[1] + self._size, watermark):
                del self._closed[key]
                self._changed.add(key)
        top = heap.peek()
        quiet = MAX_WATERMARK if top is None else top[0] + self.allowed_lateness_ms
        top = closed_heap.peek()
        self._quiet_until = quiet if top is None else min(quiet, top[0])
        return out

    # -- checkpoints ---------------------------------------------------------------------------

    def keep_keys_in(self, new_keys: Callable[[int], Any]) -> None:
        """Keep each window's keys in ``new_keys(start)`` (tumbling and sliding windows): a
        mutable mapping ``key -> [creation seq, accumulators...]`` whose ``items()`` give the
        keys by creation seq, such as a disk-backed store's
        (:class:`rheos.state.disk.WindowTable`). The store then holds what changed: the
        operator stops tracking changed keys, and :meth:`snapshot_changed` is empty."""
        if self._kind is SessionWindows:
            raise ConfigError(
                f"window operator {self.spec!r}: session windows keep their keys with "
                "keep_sessions_in"
            )
        self._new_keys = new_keys
        self._untracked()

    def keep_sessions_in(
        self, sessions: Any, closed: Any, heap: SessionHeap, closed_heap: SessionHeap
    ) -> None:
        """Keep session windows' state in disk-backed stores: ``sessions`` (``key -> list of
        [start, end, creation seq, accumulators...]``) and ``closed`` (``key -> [start, end]``
        of its last finalized session) as mappings with ``get``, item setting and deletion;
        the two heaps as :class:`SessionHeap` s. As with :meth:`keep_keys_in`, the operator
        then stops tracking changed keys; :meth:`load` leaves the stores alone."""
        if self._kind is not SessionWindows:
            raise ConfigError(f"window operator {self.spec!r}: not session windows")
        self._sessions, self._closed = sessions, closed
        self._session_heap, self._closed_heap = heap, closed_heap
        self._untracked()
        self._quiet_until = MIN_WATERMARK

    def _untracked(self) -> None:
        self._on_disk = True
        self._changed = NoChanges()
        self._rebind()

    def _rebind(self) -> None:
        """Have the generated code add changed keys to :attr:`_changed` (a new set)."""
        for env, prefix in self._bound:
            env[f"{prefix}changed_add"] = self._changed.add

    @property
    def session_pushes(self) -> int:
        """How many session heap entries were numbered (a disk-backed store's checkpoint
        keeps it, so that numbers stay unique after a restore)."""
        return self._pushes

    def resume_sessions(self, state_size: int, pushes: int) -> None:
        """After :meth:`load`, with sessions kept on disk: their count and numbering."""
        self._state_size = state_size
        self._pushes = pushes
        self._quiet_until = MIN_WATERMARK

    def open_windows(self, starts: Mapping[int, Any]) -> None:
        """After :meth:`load`: the open windows of a disk-backed store, ``start -> keys``
        (their containers from :meth:`keep_keys_in`'s ``new_keys``, with their counts)."""
        for start, keys in starts.items():
            self._windows[start] = keys
            heappush(self._starts, start)
            self._state_size += len(keys)

    def window_sizes(self) -> list[tuple[int, int]]:
        """``(start, keys)`` of every open tumbling or sliding window."""
        return [(start, len(keys)) for start, keys in self._windows.items()]

    def changed_keys(self) -> set[Hashable]:
        """Keys whose state changed since the last :meth:`clear_changed`."""
        return set(self._changed)

    def clear_changed(self) -> None:
        """Forget which keys changed (call after writing an incremental checkpoint)."""
        self._changed.clear()

    def take_changed(self) -> set[Hashable]:
        """Hand over the keys changed so far and start an empty set, in constant time (a
        forked snapshot reads its copy of them; :meth:`merge_changed` gives them back if
        it fails)."""
        taken = self._changed
        self._changed = NoChanges() if isinstance(taken, NoChanges) else set()
        self._rebind()  # (the generated hot paths add to the new set)
        return taken

    def merge_changed(self, taken: set[Hashable]) -> None:
        """Count ``taken`` (from :meth:`take_changed`) as changed again."""
        self._changed |= taken

    def _dump(self, state: list[Any], at: int) -> list[Any]:
        return [copy_plain(agg.dump(acc)) for agg, acc in zip(self._aggs, state[at:], strict=True)]

    def _load(self, data: list[Any]) -> list[Any]:
        return [agg.load(copy_plain(d)) for agg, d in zip(self._aggs, data, strict=True)]

    def snapshot_key(self, key: Hashable) -> dict[str, Any] | None:
        """The state of ``key`` as plain data, or None if it holds none."""
        if self._kind is SessionWindows:
            sessions = self._sessions.get(key, [])
            closed = self._closed.get(key)
            if not sessions and closed is None:
                return None
            return {
                "sessions": [[s[0], s[1], s[2], self._dump(s, 3)] for s in sessions],
                "closed": None if closed is None else list(closed),
            }
        windows = [
            [start, keys[key][0], self._dump(keys[key], 1)]
            for start, keys in sorted(self._windows.items())
            if key in keys
        ]
        return {"windows": windows} if windows else None

    def snapshot_changed(self) -> list[tuple[Any, dict[str, Any] | None]]:
        """``(key as plain data, state)`` of every key changed since :meth:`clear_changed`,
        as :meth:`snapshot_key` gives it -- but sharing the operator's values, not copying
        them: encode it before the operator runs on (a checkpoint does, at once). One pass
        over the open windows for all the keys, the checkpoint's part that stops the flow."""
        changed = self._changed
        if self._kind is SessionWindows:
            return [(key_to_plain(k), self.snapshot_key(k)) for k in changed]
        found: dict[Hashable, list[Any]] = {k: [] for k in changed}
        dumps = [agg.dump for agg in self._aggs]
        single = dumps[0] if len(dumps) == 1 else None
        for start in sorted(self._windows):
            keys = self._windows[start]
            pairs: Iterable[tuple[list[Any] | None, list[Any] | None]]
            if len(keys) < len(found):  # walk the smaller side
                pairs = ((found.get(k), state) for k, state in keys.items())
            else:
                pairs = ((out, keys.get(k)) for k, out in found.items())
            for out, state in pairs:
                if out is None or state is None:
                    continue
                if single is not None:
                    accs = [single(state[1])]
                else:
                    accs = [d(a) for d, a in zip(dumps, state[1:], strict=True)]
                out.append([start, state[0], accs])
        return [(key_to_plain(k), {"windows": w} if w else None) for k, w in found.items()]

    def _drop_key(self, key: Hashable) -> None:
        if self._kind is SessionWindows:
            self._state_size -= len(self._sessions.pop(key, ()))
            self._closed.pop(key, None)
            return
        for start in [s for s, keys in self._windows.items() if key in keys]:
            keys = self._windows[start]
            del keys[key]
            self._state_size -= 1
            if not keys:
                del self._windows[start]

    def restore_key(self, key: Hashable, data: dict[str, Any] | None) -> None:
        """Replace the state of ``key`` by ``data`` from :meth:`snapshot_key` (None: no state)."""
        self._drop_key(key)
        if data is None:
            return
        if self._kind is SessionWindows:
            self._quiet_until = MIN_WATERMARK
            sessions = []
            for start, end, cseq, accs in data["sessions"]:
                state = [start, end, cseq, *self._load(accs)]
                sessions.append(state)
                self._push_session(key, state)
            if sessions:
                self._sessions[key] = sessions
                self._state_size += len(sessions)
            closed = data.get("closed")
            if closed is not None:
                self._closed[key] = [closed[0], closed[1]]
                self._pushes += 1
                forget_at = closed[1] + self._size + self.allowed_lateness_ms
                self._closed_heap.push((forget_at, self._pushes, key))
            return
        for start, cseq, accs in data["windows"]:
            keys = self._windows.get(start)
            if keys is None:
                keys = self._windows[start] = self._new_keys(start)
                heappush(self._starts, start)
            keys[key] = [cseq, *self._load(accs)]
            self._state_size += 1
            self._unsorted.add(start)

    def _keys(self) -> list[Hashable]:
        if self._kind is SessionWindows:
            return list(dict.fromkeys([*self._sessions, *self._closed]))
        seen: dict[Hashable, None] = {}
        for start in sorted(self._windows):
            seen.update(dict.fromkeys(self._windows[start]))
        return list(seen)

    def snapshot(self, *, include_keys: bool = True) -> dict[str, Any]:
        """The operator's state as plain data (see the module docs on checkpoints).

        With ``include_keys=False`` only the operator-wide part (watermark, counters) is
        returned, for incremental checkpoints that store keys with :meth:`snapshot_key`.
        """
        snap: dict[str, Any] = {
            "format": _FORMAT,
            "window": repr(self.spec),
            "aggregations": list(self._names),
            "allowed_lateness_ms": self.allowed_lateness_ms,
            "watermark": self._watermark,
            "seq": self._seq,
            "late_events": self.late_events,
        }
        if include_keys:
            snap["keys"] = [[key_to_plain(k), self.snapshot_key(k)] for k in self._keys()]
        return snap

    def load(self, snapshot: Mapping[str, Any]) -> None:
        """Replace the whole state by ``snapshot`` (from :meth:`snapshot`)."""
        if snapshot.get("format") != _FORMAT:
            raise CheckpointError(
                f"window operator: unknown snapshot format {snapshot.get('format')!r}"
            )
        expected = (repr(self.spec), list(self._names), self.allowed_lateness_ms)
        found = (
            snapshot["window"],
            list(snapshot["aggregations"]),
            snapshot["allowed_lateness_ms"],
        )
        if found != expected:
            raise CheckpointError(
                f"window operator: the snapshot is of {found[0]} with aggregations {found[1]} "
                f"and allowed lateness {found[2]} ms, not {expected[0]} with {expected[1]} "
                f"and {expected[2]} ms"
            )
        self._windows.clear()
        self._starts.clear()
        self._unsorted.clear()
        if not self._on_disk:  # a disk-backed store is restored by its owner
            self._sessions.clear()
            self._session_heap.clear()
            self._closed.clear()
            self._closed_heap.clear()
        self._changed.clear()
        self._state_size = 0
        self._watermark = int(snapshot["watermark"])
        self._seq = int(snapshot["seq"])
        self._quiet_until = MIN_WATERMARK
        self.late_events = int(snapshot["late_events"])
        for key, data in snapshot.get("keys", ()):
            self.restore_key(key_from_plain(key), data)

    @classmethod
    def restore(
        cls,
        spec: WindowSpec,
        aggregations: Mapping[str, Aggregation],
        snapshot: Mapping[str, Any],
        *,
        allowed_lateness_ms: Duration = 0,
        emit: str = "final",
    ) -> WindowOperator:
        """A new operator holding the state of ``snapshot``."""
        op = cls(spec, aggregations, allowed_lateness_ms=allowed_lateness_ms, emit=emit)
        op.load(snapshot)
        return op

    # -- partial aggregates: many events merged at once (the micro-batch runtime) -------------

    @property
    def aggregations(self) -> tuple[BoundAggregation, ...]:
        """The bound aggregations, in result order."""
        return self._aggs

    def reserve_seq(self, n: int) -> int:
        """Reserve ``n`` arrival numbers for events added as partial aggregates (the first)."""
        seq = self._seq
        self._seq = seq + n
        return seq

    def accumulators(self, start: int, key: Hashable) -> list[Any] | None:
        """The accumulators (one per aggregation) of window ``start`` of ``key`` while it is
        open (tumbling and sliding windows), else None. Read only."""
        keys = self._windows.get(start)
        state = None if keys is None else keys.get(key)
        return None if state is None else state[1:]

    def merge_partial(
        self,
        start: int,
        key: Hashable,
        seq: int,
        accs: list[Any],
        totals: Collection[int] = (),
    ) -> None:
        """Merge accumulators ``accs`` (one per aggregation, for events that are not late) into
        window ``start`` of ``key`` (tumbling and sliding windows); ``seq`` is the arrival
        number of the earliest of those events (the window's creation order if it is new).

        ``accs[i]`` for ``i`` in ``totals`` is not a partial aggregate but the aggregation's
        new accumulator, computed by the caller from :meth:`accumulators`: a float sum must
        add its values to the state one by one, in arrival order, to give the bits
        :meth:`process` gives (``(state + v1) + v2 ...``), which merging two sums does not.
        With that, merging the partial aggregates of a batch gives the state :meth:`process`
        would have built event by event.
        """
        keys = self._windows.get(start)
        if keys is None:
            keys = self._windows[start] = self._new_keys(start)
            heappush(self._starts, start)
        state = keys.get(key)
        if state is None:
            keys[key] = [seq, *accs]
            self._state_size += 1
        else:
            for i, agg in enumerate(self._aggs, 1):
                other = accs[i - 1]
                state[i] = other if i - 1 in totals else agg.merge(state[i], other)
        self._changed.add(key)

    def __repr__(self) -> str:
        return (
            f"WindowOperator({self.spec!r}, {list(self._names)}, emit={self.emit!r}, "
            f"watermark={self._watermark}, open={self._state_size})"
        )


__all__ = [
    "SINK_ROWS",
    "CloseFailure",
    "LateInfo",
    "ListHeap",
    "OnCloseError",
    "ProcessResult",
    "Row",
    "SessionHeap",
    "WindowOperator",
    "copy_plain",
    "key_from_plain",
    "key_to_plain",
]


# -- the tumbling hot path, generated ---------------------------------------------------------

_NO_RESULT = ProcessResult([], None)
"""What the generated tumbling path returns for an on-time event (callers never mutate it)."""


def _in_place(agg: BoundAggregation) -> bool:
    """Whether ``agg``'s accumulator may be changed in place by an add (a list, a dict, a
    user's object): :meth:`WindowOperator._add` adds to those last."""
    try:
        acc = agg.init()
    except Exception:  # (the user's init: it fails again where it matters)
        return True
    return not isinstance(acc, int | float | str | bytes | bool | tuple | type(None))


def _compile_sliding(op: WindowOperator) -> Any:
    """The ``process`` of a sliding window operator, with the event-time kernel's formulas
    (the windows of an event, whether it is late for each) inlined as source text.

    An event is added to each of its windows that is still open, with one arrival number;
    the windows it is late for are reported together. In update mode each window it changed
    gives an update row, by window start.
    """
    kernel = op.kernel
    size, every = kernel.size, kernel.every
    env: dict[str, Any] = {
        "op": op,
        "windows": op._windows,
        "starts": op._starts,
        "heappush": heappush,
        "changed_add": op._changed.add,
        "aggs": op._aggs,
        "ProcessResult": ProcessResult,
    }
    lines = [
        "def process(key, event, ts):",
        f"    last = {kernel.start_source('ts')}",
        f"    start = {kernel.first_start_source('last', 'ts')}",
        "    watermark = op._watermark",
        "    missed = None",
        "    outputs = []",
        "    seq = op._seq",
        "    added = False",
        "    values = op._read(event)",
        "    while start <= last:",
        f"        if {kernel.late_source('start', 'watermark')}:",
        "            if missed is None:",
        "                missed = []",
        f"            missed.append((start, start + {size}))",
        f"            start += {every}",
        "            continue",
        "        keys = windows.get(start)",
        "        if keys is None:",
        "            keys = windows[start] = op._new_keys(start)",
        "            heappush(starts, start)",
        "        state = keys.get(key)",
        "        if state is None:",  # (kept only once the event is added)
        "            state = [seq]",
        "            state.extend([agg.init() for agg in aggs])",
        "            op._add(state, 1, event, values, ts, seq)",
        "            keys[key] = state",
        "            op._state_size += 1",
        "        else:",
        "            op._add(state, 1, event, values, ts, seq)",
        "        added = True",
    ]
    if op._update:
        lines += [
            f"        row = op._row(key, start, start + {size}, state, 1)",
            "        row['final'] = False",
            "        outputs.append(row)",
        ]
    lines += [
        f"        start += {every}",
        "    if added:",
        "        op._seq = seq + 1",
        "        changed_add(key)",
        "    late = None if missed is None else op._late(key, event, ts, tuple(missed))",
        "    return ProcessResult(outputs, late)",
    ]
    code = compile("\n".join(lines), f"<rheos sliding window {op.spec!r}>", "exec")
    exec(code, env)
    op._bound.append((env, ""))
    return env["process"]


def _compile_tumbling(op: WindowOperator) -> Any:
    """A ``process`` specialised for one tumbling operator in final mode.

    The window's start and lateness are the event-time kernel's formulas, as source text
    (:class:`~rheos.windowing.kernel.WindowKernel`). Aggregations with a source form
    (``BoundAggregation.ADD``: count/sum/min/max/mean) are inlined; every other aggregation
    calls its ``add_value``. The generated function does exactly what
    :meth:`WindowOperator.process` does for tumbling windows: all values are read before any
    state changes, the arrival number grows by one per event, and the key is marked changed.
    The accumulators are added to in locals and stored once every add succeeded: an event
    whose value an aggregation cannot add (a string to a sum) changes no accumulator and
    makes no key (it is a bad event, dead-lettered).
    """
    env: dict[str, Any] = {"ProcessResult": ProcessResult, "NO_RESULT": _NO_RESULT}
    late, body = tumbling_source(op, env, "key", "event", "ts", "")
    lines = [
        "def process(key, event, ts):",
        *("    " + line for line in late),
        "        return ProcessResult([], late)",
        *("    " + line for line in body),
        "    return NO_RESULT",
    ]
    code = compile("\n".join(lines), f"<rheos tumbling window {op.spec!r}>", "exec")
    exec(code, env)
    op._bound.append((env, ""))
    return env["process"]


def tumbling_source(
    op: WindowOperator,
    env: dict[str, Any],
    key: str,
    event: str,
    ts: str,
    p: str,
    late_name: str = "late",
    cached: bool = False,
) -> tuple[list[str], list[str]]:
    """What the ``process`` of a tumbling operator in final mode does, as Python lines over
    the names ``key``, ``event`` and ``ts`` -- for :func:`_compile_tumbling` and for loops
    that inline it (its locals and ``env``'s names start with ``p``; ``env`` is bound to the
    operator's changed keys, as the generated ``process`` is).

    Two parts: lines ending in an ``if`` whose block sets ``late_name`` to the report of a
    late event; then the lines adding an event that is not late (for an ``else``).

    ``cached``: for a loop over many events, which keeps in locals the keys of the last
    window added to (``{p}at``, the window's start, ``None`` at first and whenever the
    watermark may have moved; ``{p}keys``) and the next arrival number (``{p}seq``). A
    window's keys stay the same object while it is open, so the keys kept are the window's;
    and an event of the window kept is not late (it was open when the watermark was last
    read): only an event of another window is checked."""
    reads: list[str] = []
    adds: list[str] = []
    later: list[str] = []
    calls: list[str] = []
    loads: list[str] = []
    fresh: list[str] = []
    stores: list[str] = []
    env.update(
        {
            f"{p}op": op,
            f"{p}windows": op._windows,
            f"{p}starts": op._starts,
            f"{p}heappush": heappush,
            f"{p}changed_add": op._changed.add,
        }
    )
    o = f"{p}op"
    number = f"{p}seq - 1" if cached else f"{p}seq"  # (the event's arrival number)
    for i, agg in enumerate(op._aggs):
        at = i + 1
        field = agg.field
        if field is None:
            value = event
        elif isinstance(field, str):
            reads.append(f"    {p}v{i} = {event}[{field!r}]")
            value = f"{p}v{i}"
        else:
            env[f"{p}read{i}"] = field
            reads.append(f"    {p}v{i} = {p}read{i}({event})")
            value = f"{p}v{i}"
        add = agg.add_source(f"{p}a{i}", value)  # the aggregation's row form, inlined
        if add is not None and agg.INIT is not None:
            init = agg.INIT
            # (mean's accumulator is a list changed in place: added after those that are not)
            (later if _in_place(agg) else adds).extend(add.splitlines())
        else:
            env[f"{p}init{i}"] = agg.init
            env[f"{p}add{i}"] = agg.add_value
            init = f"{p}init{i}()"
            calls.append(f"{p}a{i} = {p}add{i}({p}a{i}, {value}, {ts}, {number})")
        loads.append(f"    {p}a{i} = {p}state[{at}]")
        fresh.append(f"    {p}a{i} = {init}")
        stores.append(f"    {p}state[{at}] = {p}a{i}")
    adds += later + calls  # (user code last: it may change an accumulator in place)
    kernel = op.kernel  # the formulas of event time, as source text
    start = f"{p}start"
    other = f"{start} != {p}at and " if cached else ""
    if op._calendar is None:
        late = [
            f"{start} = {kernel.start_source(ts)}",
            f"if {other}{kernel.late_source(start, f'{o}._watermark')}:",
            f"    {late_name} = {o}._late({key}, {event}, {ts}, "
            f"(({start}, {start} + {kernel.size}),))",
        ]
    else:  # the spec says which period
        env[f"{p}window_of"] = op._calendar.window_of
        late = [
            f"{start}, {p}end = {p}window_of({ts})",
            f"if {other}{kernel.late_end_source(f'{p}end', f'{o}._watermark')}:",
            f"    {late_name} = {o}._late({key}, {event}, {ts}, (({start}, {p}end),))",
        ]
    body: list[str] = []
    if reads:
        body += ["try:", *reads]
        body += [
            "except (LookupError, TypeError) as exc:",
            f"    raise {o}._bad_event({event}, exc) from None",
        ]
    names = ", ".join(f"{p}a{i}" for i in range(len(op._aggs)))
    find = [
        f"{p}keys = {p}windows.get({start})",
        f"if {p}keys is None:",
        f"    {p}keys = {p}windows[{start}] = {o}._new_keys({start})",
        f"    {p}heappush({p}starts, {start})",
    ]
    seq = [f"{p}seq = {o}._seq", f"{o}._seq = {p}seq + 1"]
    if cached:
        find = [f"if {start} != {p}at:", *("    " + line for line in find), f"    {p}at = {start}"]
        seq = [f"{p}seq += 1"]
    body += [
        *find,
        *seq,
        f"{p}state = {p}keys.get({key})",
        f"if {p}state is None:",
        *(fresh or ["    pass"]),
        "else:",
        *(loads or ["    pass"]),
        *adds,  # (into locals: an add that raises leaves the state as it was)
        f"if {p}state is None:",
        f"    {p}keys[{key}] = [{number}, {names}]",
        f"    {o}._state_size += 1",
        "else:",
        *(stores or ["    pass"]),
        f"{p}changed_add({key})",
    ]
    return late, body
