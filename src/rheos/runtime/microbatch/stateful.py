"""Stateful steps on batches: windows (vectorised), and everything else per event.

Every stateful step runs the same node as in stream-first mode (:mod:`rheos.runtime.nodes`),
so state, results, late records and statistics are the stream-first ones by construction.

**Watermark inside a batch.** A :class:`Round` carries the flow watermark before each event of
the source batch (``wm[i]``, a cumulative maximum computed vectorised) and after it
(``wm[n]``). A node is advanced at *crossings*: the first event index ``i`` whose watermark
reaches the node's ``next_due``. A crossing before event ``i`` happens after the rows other
nodes emitted at that crossing (position ``3 * i``) and before the event itself (``3 * i + 2``),
which is the order of the stream-first runtime, where a rising watermark advances every node
(upstream first) and only then pushes the event.

**Per event** (:class:`Driver`): items are pushed one by one into the node, with the node
advanced at every crossing between them. Used for process steps, joins, session windows,
``emit="update"``, processing time, custom aggregations, and batches that are not columnar.
When a push raises a bad-event error (a process step's logic, an aggregation, a join's
``combine``), the source event behind the item is given to ``on_bad`` -- the step's
``on_error`` policy, as in stream-first mode, where the error leaves the event's push -- and
its other items in this step are dropped (stream-first stops that event there); the rest of
the batch goes on. User code that fails while a node is advanced or finished (``on_timer``, a
custom aggregation's ``result``, a window join's ``combine``) goes to the node's error hook,
as in stream-first mode (:mod:`rheos.runtime.nodes`).

**Timers already due.** A process step may register a timer for a time the watermark has
already passed (out-of-order events make this common). Stream-first mode fires it when the
watermark next rises, so a node is advanced only where the watermark rises, and never at a
crossing before the item that made it due.

**Vectorised windows** (:class:`VectorWindow`, tumbling, sliding and calendar windows,
``emit="final"``, event time, aggregations with a columnar form -- ``count/sum/min/max/mean/
first/last`` -- of fields or expressions): the event-time kernel of the step
(:class:`~rheos.windowing.kernel.WindowKernel`) assigns the whole array of events to windows
and, from the watermark each event saw, decides which of its windows it is late for -- the
same answer the operator gives one event at a time. The other events are grouped by (window,
key) with Polars, in first-arrival order, with each aggregation's columnar form
(:meth:`~rheos.windowing.aggregations.BoundAggregation.partial_polars`), and merged into the
operator as partial aggregates; then the node is
advanced through the batch's crossings. A window that finalizes at a crossing inside the batch
holds only events that arrived before that crossing -- any later one was late for it -- so
merging the whole batch first emits the same rows, in the same order (by window end, start,
then first arrival, which the merge preserves).

**Float sums** (``sum``, and the sum of ``mean``: the aggregations that
:attr:`~rheos.windowing.aggregations.BoundAggregation.sums_in_order`) are not partial sums
merged into the state:
floating-point addition is not associative, and stream-first mode computes
``((state + v1) + v2) + ...`` in arrival order. Each group's non-null values (a list, in
arrival order) are added one by one to the window's sum so far, vectorised with
``np.add.at`` (:func:`_sums_in_order`), and the result replaces the state's sum. Integer sums
are exact, so they are merged; a float sum that goes on with integer values (a field whose
values were floats in an earlier batch) adds them one by one in Python.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl

from rheos.flows.expressions import Expr
from rheos.flows.steps import WindowStep
from rheos.runtime.compile import BAD_EVENT_ERRORS
from rheos.runtime.microbatch.batch import Batch, key_series, merge_by_pos
from rheos.runtime.microbatch.stateless import OnBad
from rheos.runtime.nodes import JoinNode, Node, ProcessNode, WindowNode
from rheos.windowing import MAX_WATERMARK, MIN_WATERMARK, LateInfo, SessionWindows
from rheos.windowing.aggregations import BoundAggregation


class Round:
    """One pass of a source batch through the graph: the flow watermark around each event."""

    def __init__(
        self, wm: np.ndarray, start_wm: int, *, reads_min: bool = False, final: bool = False
    ) -> None:
        self.wm = wm
        self.final = final
        """The last round: every node finishes (closes all windows, fires all timers)."""
        """``wm[i]``: the flow watermark before event ``i``; ``wm[n]``: at the round's end."""
        self.start_wm = start_wm
        self.n = len(wm) - 1
        self.reads_min = reads_min
        """Bounded runs: steps reading the flow watermark see the minimum until the end."""

    @functools.cached_property
    def rises(self) -> list[int]:
        """``rises[j]``: the first crossing at or after ``j`` where the watermark rises
        (``n + 1`` if none): what a search for "above the watermark before crossing ``j``"
        finds, for the steps due at every rise (session windows), without a search."""
        wm = self.wm
        before = np.empty_like(wm)
        before[0] = self.start_wm
        before[1:] = wm[:-1]
        at = np.where(wm > before, np.arange(len(wm)), len(wm))
        rises: list[int] = np.minimum.accumulate(at[::-1])[::-1].tolist()
        return rises

    def flow_watermark(self, pos: int) -> int:
        """The flow watermark while the item at ``pos`` is processed."""
        if self.reads_min:
            return MIN_WATERMARK
        return int(self.wm[min(pos // 3, self.n)])


class Collector:
    """A node's output port as a push function that records positions."""

    def __init__(self, cur: list[int]) -> None:
        self.cur = cur
        self.pos: list[int] = []
        self.ts: list[int] = []
        self.keys: list[Any] = []
        self.values: list[Any] = []

    def __call__(self, key: Any, value: Any, ts: int) -> None:
        self.pos.append(self.cur[0])
        self.ts.append(ts)
        self.keys.append(key)
        self.values.append(value)

    def take(self) -> Batch:
        batch = Batch(
            np.asarray(self.pos, dtype=np.int64),
            np.asarray(self.ts, dtype=np.int64),
            rows=self.values,
            keys=self.keys,
        )
        self.pos, self.ts, self.keys, self.values = [], [], [], []
        return batch


class Driver:
    """Runs a node per event, with crossings between events (see the module docs)."""

    def __init__(
        self, node: Node, pushes: list[Callable[[Any, Any, int], None]], cur: list[int]
    ) -> None:
        self.node = node
        self.pushes = pushes
        self.cur = cur
        self._round: Round | None = None
        self._next = 0
        """The first crossing of the round not considered yet."""
        self.on_bad: OnBad | None = None
        """Where events whose push fails go (set by the plan; without it errors are raised)."""

    def cross(self, rnd: Round, before: int) -> None:
        """Advance the node at every crossing with position below ``before`` (at the end of
        the last round: finish it)."""
        self._cross(rnd, before)
        if rnd.final and before > 3 * rnd.n + 1:
            self.cur[0] = 3 * rnd.n
            self.node.finish()

    def _cross(self, rnd: Round, before: int) -> tuple[int, int]:
        """Crossings happen where the watermark *rises* to the node's next due point.

        Crossing ``j`` lies between the rows emitted at ``3 * j`` and event ``3 * j + 2``; it
        is a rise when ``wm[j]`` is above the watermark before it. A node whose due point is
        already reached (a timer registered for a time the watermark has passed) is advanced
        at the next rise after the item that made it due, as in stream-first mode -- never at
        a crossing before that item.

        Returns ``(j, due)``: no crossing lies before crossing ``j`` as long as the node's
        next due point stays at or above ``due`` (:meth:`run` skips the calls until then:
        the watermark only rises, so a later search could only end further on).
        """
        if rnd is not self._round:
            self._round, self._next = rnd, 0
        node = self.node
        wm = rnd.wm
        last = (before + 1) // 3  # the first crossing at or after ``before``
        found = (last, MAX_WATERMARK)  # (nothing known beyond ``last``)
        while self._next < last and self._next <= rnd.n:
            j0 = self._next
            floor = rnd.start_wm if j0 == 0 else int(wm[j0 - 1])
            if floor >= MAX_WATERMARK:
                found = (rnd.n + 1, MIN_WATERMARK)  # no crossing left in the round
                break
            due = node.next_due
            # (due at the next rise: found without a search)
            rise = due <= floor + 1
            j = rnd.rises[j0] if rise else j0 + int(wm[j0:].searchsorted(due, "left"))
            if j >= last or j > rnd.n:
                found = (j, due)
                break
            self._next = j + 1
            self.cur[0] = 3 * j
            node.advance(int(wm[j]))
        self._next = max(self._next, min(last, rnd.n + 1))
        return found

    def run(self, inputs: list[Batch], rnd: Round) -> None:
        items: list[tuple[int, int, Any, Any, int]] = []
        for index, batch in enumerate(inputs):
            if len(batch):
                items.extend(
                    zip(
                        batch.pos.tolist(),
                        [index] * len(batch),
                        batch.key_list(),
                        batch.rows,
                        batch.ts.tolist(),
                        strict=True,
                    )
                )
        if len(inputs) > 1:  # by position, then input (a stable sort: added in input order)
            items.sort(key=_POSITION)
        pushes, cur, on_bad, node = self.pushes, self.cur, self.on_bad, self.node
        failed = -1
        clear, due = -1, MAX_WATERMARK  # no crossing before ``clear`` while due stays
        top = rnd.n + 1
        for pos, index, key, value, ts in items:
            if pos == failed:
                continue  # the rest of an event that failed here
            last = (pos + 1) // 3
            if last <= clear and node.next_due >= due:
                if self._next < last:  # (what _cross does when it finds no crossing)
                    self._next = last if last < top else top
            else:
                clear, due = self._cross(rnd, pos)
            cur[0] = pos
            try:
                pushes[index](key, value, ts)
            except BAD_EVENT_ERRORS as exc:
                if on_bad is None:
                    raise
                if pos % 3 == 2:  # an event's: the rest of it is skipped
                    failed = pos
                on_bad(self.node.step, pos, exc, (key, value, ts))
        self.cross(rnd, 3 * rnd.n + 2)


_POSITION = operator.itemgetter(0)


def vectorizable(step: WindowStep) -> bool:
    """Whether a window step can run vectorised (see the module docs)."""
    if step.time != "event" or step.emit != "final" or isinstance(step.spec, SessionWindows):
        return False
    for agg in step.aggregations.values():
        if not isinstance(agg, BoundAggregation) or not agg.columnar:
            return False
        if agg.reads_value and not isinstance(agg.field, str | Expr):
            return False
    return True


def _held(w: np.ndarray, hold: int) -> np.ndarray:
    if not hold:
        return w
    infinite = (w == MIN_WATERMARK) | (w == MAX_WATERMARK)
    return np.where(infinite, w, w - hold)


class VectorWindow(Driver):
    """A window step run vectorised where it can be, per event where it cannot."""

    def __init__(self, node: WindowNode, cur: list[int]) -> None:
        super().__init__(node, [node.push], cur)
        self.window = node
        self.kernel = node.op.kernel
        self.aggs = node.op.aggregations
        self.value_exprs: list[Any] = []
        for j, agg in enumerate(self.aggs):
            if agg.reads_value:
                field = agg.field
                assert isinstance(field, str | Expr)  # see vectorizable
                source = pl.col(field) if isinstance(field, str) else field.to_polars()
                self.value_exprs.append(source.alias(f"__v{j}"))

    def run(self, inputs: list[Batch], rnd: Round) -> None:
        batch = inputs[0]
        if not len(batch) or not self._vector(batch, rnd):
            super().run(inputs, rnd)

    def _vector(self, batch: Batch, rnd: Round) -> bool:
        frame = batch.columnar()
        if frame is None:
            return False
        if batch.keys is None:
            keys: pl.Series | None = pl.Series("__key", [None] * len(batch), dtype=pl.Null)
        elif isinstance(batch.keys, pl.Series):
            keys = batch.keys.alias("__key")
            if keys.dtype.is_nested() or keys.dtype == pl.Object:
                return False
        else:
            keys = key_series(batch.keys)
        if keys is None:
            return False
        try:
            values = frame.select(self.value_exprs) if self.value_exprs else pl.DataFrame()
        except Exception:
            return False  # per event: the error names the event
        if any(values.get_column(c).dtype.is_nested() for c in values.columns):
            return False
        op = self.window.op
        n = len(batch)
        pos, ts = batch.pos, batch.ts
        idx = pos // 3
        prev = np.concatenate([np.asarray([rnd.start_wm], dtype=np.int64), rnd.wm[:-1]])
        seen = np.where(pos % 3 == 2, rnd.wm[idx], prev[idx])
        limit = _held(seen, self.window.hold_ms)
        self.window.disorder.observe_array(ts)
        # every (event, window) pair, and whether the event is late for the window
        rep, starts, ends = self.kernel.windows_array(ts)
        missed = self.kernel.late_array(ends, limit if rep is None else limit[rep])
        any_missed = bool(missed.any())
        if any_missed:
            every = np.arange(n) if rep is None else rep
            self._late(batch, keys, every, starts, ends, missed)
        base = op.reserve_seq(n)
        seq = np.arange(base, base + n, dtype=np.int64)
        columns = [
            pl.Series("__start", starts),
            keys if rep is None else keys.gather(rep),
            pl.Series("__seq", seq if rep is None else seq[rep]),
            pl.Series("__ts", ts if rep is None else ts[rep]),
            *(values if rep is None or not values.width else values[rep]).get_columns(),
        ]
        pairs = pl.DataFrame(columns)
        kept = pairs.filter(pl.Series(~missed)) if any_missed else pairs
        if len(kept):
            self._merge(kept)
        self.cross(rnd, 3 * rnd.n + 2)
        return True

    def _late(
        self,
        batch: Batch,
        keys: pl.Series,
        rep: np.ndarray,
        starts: np.ndarray,
        ends: np.ndarray,
        missed: np.ndarray,
    ) -> None:
        op, cur = self.window.op, self.cur
        late_pairs: dict[int, list[tuple[int, int]]] = {}
        chosen = (rep[missed].tolist(), starts[missed].tolist(), ends[missed].tolist())
        for i, s, e in zip(*chosen, strict=True):
            late_pairs.setdefault(i, []).append((s, e))
        for i, windows in late_pairs.items():
            op.late_events += 1
            cur[0] = int(batch.pos[i])
            event = batch.value(i)
            info = LateInfo(keys[i], int(batch.ts[i]), event, tuple(windows))
            self.window.route_late(info)

    def _merge(self, kept: pl.DataFrame) -> None:
        aggs = self.aggs
        schema = kept.schema
        floats = frozenset(
            j for j, agg in enumerate(aggs) if agg.reads_value and schema[f"__v{j}"].is_float()
        )
        in_order = frozenset(
            j
            for j, agg in enumerate(aggs)
            if agg.sums_in_order and (j in floats or schema[f"__v{j}"] == pl.Null)
        )
        exprs = [pl.col("__seq").first()]
        for j, agg in enumerate(aggs):
            if j in in_order:  # the values, for ``_sums_in_order``
                exprs.append(pl.col(f"__v{j}").drop_nulls().alias(f"__a{j}"))
            else:  # the aggregation's columnar form
                exprs.extend(
                    agg.partial_polars(f"__v{j}", "__ts", "__seq", f"__a{j}", floats=j in floats)
                )
        # groups in first-arrival order (rows keep their order within a group); sorting the
        # few groups is cheaper than ``maintain_order``
        parts = kept.group_by(["__start", "__key"]).agg(exprs).sort(["__seq", "__start"])
        rows = parts.drop([f"__a{j}" for j in in_order]).rows()
        op = self.window.op
        states = [op.accumulators(row[0], row[1]) for row in rows]
        sums = {
            j: _sums_in_order(
                parts.get_column(f"__a{j}"), [_state_sum(aggs[j], s, j) for s in states]
            )
            for j in in_order
        }
        for g, (row, state) in enumerate(zip(rows, states, strict=True)):
            start, key = row[0], row[1]
            accs: list[Any] = []
            totals = in_order
            at = 3
            for j, agg in enumerate(aggs):
                if j in in_order:
                    total, counts = sums[j]
                    accs.append(
                        agg.with_sum(None if state is None else state[j], total[g], counts[g])
                    )
                    continue
                acc, width = agg.from_partial(row, at, floats=j in floats)
                accs.append(acc)
                at += width
                if agg.sums_in_order and isinstance(_state_sum(agg, state, j), float):
                    # a float sum goes on with integers (rare)
                    accs[j] = _float_then_ints(kept, start, key, agg, j, state)
                    totals = totals | {j}
            op.merge_partial(start, key, row[2], accs, totals)


def _state_sum(agg: BoundAggregation, state: list[Any] | None, j: int) -> Any:
    """The sum so far of aggregation ``j`` (one that sums in order): 0 in a new window."""
    if state is None:
        return 0
    return agg.running_sum(state[j])


def _sums_in_order(values: pl.Series, inits: list[Any]) -> tuple[list[Any], list[int]]:
    """Per group, from a list of its non-null values in arrival order and its sum so far
    (``init``): ``((init + v1) + v2) + ...`` -- each value added in turn, with Python's
    rounding, as stream-first mode adds them -- and the number of values.

    ``np.add.at`` adds unbuffered, element by element in index order, so each group's sum is
    sequential. A Python int ``init`` is converted as ``int + float`` converts it; a group
    without values keeps ``init`` as it is (stream-first mode skips nulls: 0 stays an int).
    """
    lens = values.list.len().to_numpy()
    flat = values.explode(empty_as_null=False, keep_nulls=False).cast(pl.Float64).to_numpy()
    acc = np.array([float(init) for init in inits], dtype=np.float64)
    np.add.at(acc, np.repeat(np.arange(len(inits)), lens), flat)
    counts: list[int] = lens.tolist()
    sums = [s if n else init for s, n, init in zip(acc.tolist(), counts, inits, strict=True)]
    return sums, counts


def _float_then_ints(
    kept: pl.DataFrame,
    start: int,
    key: Any,
    agg: BoundAggregation,
    j: int,
    state: Any,
) -> Any:
    """The new accumulator of a ``sum`` or ``mean`` whose state is a float and whose values
    in this batch are integers (or booleans): each added to the float in turn."""
    hit = (pl.col("__start") == start) & pl.col("__key").eq_missing(key)
    values = kept.filter(hit).get_column(f"__v{j}").drop_nulls().to_list()
    total = functools.reduce(operator.add, values, agg.running_sum(state[j]))
    return agg.with_sum(state[j], total, len(values))


def make_driver(node: Node, cur: list[int]) -> Driver:
    """The driver of a stateful node: vectorised windows where possible."""
    if isinstance(node, WindowNode):
        if vectorizable(node.step):
            return VectorWindow(node, cur)
        return Driver(node, [node.push], cur)
    if isinstance(node, JoinNode):
        return Driver(node, [node.push_left, node.push_right], cur)
    assert isinstance(node, ProcessNode)
    return Driver(node, [node.push], cur)


__all__ = [
    "Collector",
    "Driver",
    "Round",
    "VectorWindow",
    "make_driver",
    "merge_by_pos",
    "vectorizable",
]
