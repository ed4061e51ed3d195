"""The stateful nodes of a flow whose keyed state is on disk (``state="disk"``).

:class:`DiskWindowNode` and :class:`DiskProcessNode` are the window and ``process`` nodes of
:mod:`rheos.runtime.nodes` with their keys in a :mod:`rheos.state.disk` table instead of
dicts. What differs is only where the state lives and what a checkpoint holds: no changed
keys (the table's transaction, committed with the checkpoint, holds them), just each node's
small operator-wide part -- for windows, the key count of each open window (sessions: their
count and numbering); for ``process`` steps, the key count (their timers go to a table of
their own).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from heapq import heappush
from typing import Any

from rheos.flows.steps import ProcessStep, WindowStep
from rheos.runtime.nodes import LateRouter, NodeContext, ProcessNode, Push, WindowNode, user_error
from rheos.state.disk import DiskHeap, KeyTable, StateDB, TimerTable, WindowTable
from rheos.windowing.aggregations import BoundAggregation
from rheos.windowing.containers import NoChanges
from rheos.windowing.windows import SessionWindows


def _codec(
    aggs: tuple[BoundAggregation, ...], at: int = 1
) -> tuple[Callable[[list[Any]], list[Any]], Callable[[list[Any]], list[Any]]]:
    """A window state's accumulators (from index ``at``) as plain data and back (the
    aggregations' ``dump`` and ``load``, as checkpoints use them; skipped where both are the
    identity, as for count, sum, min, max). The plain data is encoded at once, and decoded
    fresh: no copies."""
    plain = all(
        type(a).dump is BoundAggregation.dump and type(a).load is BoundAggregation.load
        for a in aggs
    )
    if plain:
        return (lambda state: state[at:]), (lambda data: data)
    dumps = [a.dump for a in aggs]
    loads = [a.load for a in aggs]

    def dump(state: list[Any]) -> list[Any]:
        return [d(acc) for d, acc in zip(dumps, state[at:], strict=True)]

    def load(data: list[Any]) -> list[Any]:
        return [ld(x) for ld, x in zip(loads, data, strict=True)]

    return dump, load


class DiskWindowNode(WindowNode):
    """A window step with its keys on disk: tumbling, sliding and calendar windows in a
    :class:`WindowTable`; session windows in two :class:`KeyTable` s (each key's sessions,
    and its last finalized session) and two :class:`DiskHeap` s (sessions by end, finalized
    sessions by when they can be forgotten)."""

    def __init__(
        self,
        flow: str,
        step: WindowStep,
        out: Push,
        late: LateRouter,
        hold_ms: int,
        now: Callable[[], int],
        db: StateDB,
        cache_keys: int,
    ) -> None:
        super().__init__(flow, step, out, late, hold_ms, now)
        self.sessions = isinstance(step.spec, SessionWindows)
        if self.sessions:
            self._keep_sessions(db, step.name, cache_keys)
            return
        dump, load = _codec(self.op.aggregations)
        self.table = WindowTable(db, step.name, cache_keys, dump, load)
        self.op.keep_keys_in(self.table.keys_of)

    def _keep_sessions(self, db: StateDB, name: str, cache_keys: int) -> None:
        dump, load = _codec(self.op.aggregations, 3)

        def dump_sessions(sessions: list[list[Any]]) -> list[Any]:
            return [[s[0], s[1], s[2], dump(s)] for s in sessions]

        def load_sessions(data: list[Any]) -> list[list[Any]]:
            return [[start, end, cseq, *load(accs)] for start, end, cseq, accs in data]

        self.op.keep_sessions_in(
            KeyTable(db, name, cache_keys, dump=dump_sessions, load=load_sessions),
            KeyTable(db, name, cache_keys, suffix="_closed", in_place=False),
            DiskHeap(db, name, "_ends", 4, cache_keys),
            DiskHeap(db, name, "_forget", 2, cache_keys),
        )

    def checkpoint(self) -> tuple[dict[str, Any], list[tuple[Any, Any]]]:
        """Operator-wide state and the key count of each open window; the keys are in the
        table (committed with the checkpoint)."""
        meta, _ = super().checkpoint()
        if self.sessions:
            meta["sessions"] = [self.op.state_size, self.op.session_pushes]
        else:
            meta["windows"] = [[start, n] for start, n in self.op.window_sizes()]
        return meta, []

    def restore(self, meta: dict[str, Any], keys: Iterable[tuple[Any, Any]]) -> None:
        super().restore(meta, keys)
        if self.sessions:
            size, pushes = meta["sessions"]
            self.op.resume_sessions(int(size), int(pushes))
            return
        counts = {int(start): int(n) for start, n in meta.get("windows", ())}
        self.op.open_windows(self.table.open_windows(counts))


class _DiskContext(NodeContext):
    """The context of a :class:`DiskProcessNode`: ``ctx.state`` reads and writes the
    table (which tracks what changed)."""

    __slots__ = ()

    @property
    def state(self) -> Any:
        return self._node.states.get(self.key)

    @state.setter
    def state(self, value: Any) -> None:
        self._node.states[self.key] = value


class DiskProcessNode(ProcessNode):
    """A keyed ``process`` step with its per-key state in a :class:`KeyTable` (timers stay
    in memory and go to a :class:`TimerTable` at checkpoints)."""

    def __init__(
        self, flow: str, step: ProcessStep, out: Push, hold_ms: int, db: StateDB, cache_keys: int
    ) -> None:
        super().__init__(flow, step, out, hold_ms)
        self.table = KeyTable(db, step.name, cache_keys)
        self.timer_table = TimerTable(db, step.name)
        self.states = self.table  # type: ignore[assignment]
        self.changed = set() if db.durable else NoChanges()
        """Keys whose timers changed since the last checkpoint (state changes: the table);
        not tracked in a run without checkpoints."""
        self._ctx = _DiskContext(self)
        self.push = self._make_push()

    def _make_push(self) -> Push:
        ctx, process = self._ctx, self.logic.process
        flow, step, logic = self._flow, self.step, self.logic
        observe = self.disorder.observe

        def push(key: Any, value: Any, ts: int) -> None:
            observe(ts)
            ctx.key = key
            ctx.timestamp = ts
            try:
                process(ctx, value)
            except Exception as exc:
                raise user_error(flow, step, logic, exc) from exc

        return push

    def checkpoint(self) -> tuple[dict[str, Any], list[tuple[Any, Any]]]:
        """The logic's own snapshot and the key count; the timers of the keys whose timers
        changed go to the timer table."""
        changed = self.changed
        timers: dict[Hashable, list[int]] = {k: [] for k in changed}
        if changed:
            for ts, k in self.timer_set:
                if k in changed:
                    timers[k].append(ts)
        self.timer_table.write([(k, sorted(ts)) for k, ts in timers.items()])
        self.changed.clear()
        snap = getattr(self.logic, "snapshot", None)
        return {"logic": snap() if snap is not None else None, "keys": len(self.table)}, []

    def restore(self, meta: dict[str, Any], keys: Iterable[tuple[Any, Any]]) -> None:
        super().restore(meta, keys)
        self.table.count = int(meta.get("keys", 0))
        for key, times in self.timer_table.read():
            for ts in times:
                self.timer_set.add((ts, key))
                self.seq += 1
                heappush(self.timers, (ts, self.seq, key))


__all__ = ["DiskProcessNode", "DiskWindowNode"]
