"""Bad events: the per-step policy, and dead letters in the topic ``<flow>.dlq``.

An event is *bad* when it cannot be decoded, fails the source's schema, is over the source's
``max_record_bytes``, has a missing or unparsable timestamp, or makes a step's function raise
(:data:`rheos.runtime.compile.BAD_EVENT_ERRORS`). What happens to it is the step's
``on_error`` policy, else the flow's:

* ``"dead-letter"`` (default): the event goes to ``<flow>.dlq`` and the flow carries on;
* ``"skip"``: it is dropped and counted (``RunSummary.skipped``);
* ``"fail"``: the run stops with the error (an :class:`~rheos.errors.EventError` or
  :class:`~rheos.errors.UserFunctionError` naming the flow, step, topic, partition, offset).

Dead-letter record layout. The **value** is the event's original bytes: the log record's value
as it was read (for sources that are not the log, the event encoded as JSON; the header
``rheos-value-format`` says which). Everything else is in **headers** (UTF-8 text), so the
value stays byte-for-byte what arrived and can be fed back through the flow:

=========================  ================================================================
``rheos-flow``             the flow
``rheos-source``           the source step the event came in through
``rheos-source-topic``     its topic, ``rheos-source-partition``, ``rheos-source-offset``
``rheos-step``             the step that failed
``rheos-error-type``       the exception's class name, ``rheos-error-message`` its text
``rheos-traceback``        the formatted traceback (user code frames included)
``rheos-time``             when it was dead-lettered (epoch ms)
``rheos-event-time``       the event time, when it was known
``rheos-value-format``     ``record`` (the log record's bytes) or ``json``
``rheos-key``              the key (JSON), when the failure has no source event
``rheos-window-start``     with ``rheos-window-end``: the window that was closing
``rheos-timer``            the time of the timer that was firing
=========================  ================================================================

**Failures with no source event.** User code also runs when a window closes (a custom
aggregation's ``result``, a window join's ``combine``) and when a process step's timer fires
(``on_timer``). An error there is handled with the failing step's policy too, but there is no
event to keep: the dead letter's ``rheos-source`` is empty, its value is the JSON of what
failed (``{"key": ..., "window_start": ..., "window_end": ...}`` or ``{"key": ..., "timer":
...}``, the same as the headers) and its event time is the window's last millisecond or the
timer's time. Such a letter cannot be replayed (:attr:`DeadLetter.replayable`); the run goes on
with the other keys and windows.

**Failures on a stateful step's output.** A step after a window, a join or a process step
that fails on one of its outputs (a ``map`` raising on a window's result), and an output a
sink refuses (over the topic's ``max_record_bytes``, no key field), are handled the same way,
with the failing step's policy: there is no one source event to blame (the output came from
state), so the letter's value is ``{"key": ..., "output": ...}`` (the output's ``repr``, cut
to 1,000 characters), with the window when the output is a window's result.

The record's timestamp is the event time when known, else the time of dead-lettering. In a
run with checkpoints the dead-letter topic is written exactly once like any log sink.
``rheos dlq FLOW`` lists them; :func:`rheos.runtime.replay.replay_dead_letters` (``rheos dlq
APP --replay``) sends them back through the fixed flow, exactly once.
"""

from __future__ import annotations

import time
import traceback
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from rheos.connectors.base import OpenContext, SinkWriter
from rheos.connectors.codecs import encoder
from rheos.connectors.log import FLUSH_EVERY, LogSink, LogWriter
from rheos.errors import RheosError
from rheos.flows.steps import Graph
from rheos.state import CheckpointStore, store_path
from rheos.transport import Log, Record

PREFIX = "rheos-"
MAX_TRACEBACK = 8000
RECENT = 20
"""Dead letters of a run kept in :attr:`DeadLetters.recent` (for live metrics)."""
IN_SUMMARY = 1_000
"""The first dead letters (and late events) of a run that its :class:`RunSummary` keeps."""
_json = encoder("json")


def dlq_topic(flow: str) -> str:
    """The dead-letter topic of ``flow``: ``<flow>.dlq``."""
    return f"{flow}.dlq"


@dataclass
class DeadLetter:
    """One dead letter, as written (``offset`` and ``partition`` once read back)."""

    value: bytes
    flow: str
    source: str
    step: str
    error_type: str
    message: str
    traceback: str
    time_ms: int
    source_topic: str | None = None
    source_partition: int | None = None
    source_offset: int | None = None
    event_time: int | None = None
    value_format: str = "record"
    key: str | None = None
    """The key as JSON text (failures with no source event only)."""
    window_start: int | None = None
    window_end: int | None = None
    timer: int | None = None
    partition: int | None = None
    offset: int | None = None

    @property
    def identity(self) -> tuple[Any, ...] | None:
        """What makes two letters the same failure of the same event: where it was read (a
        position is needed), the step and the error type, and its bytes."""
        if self.source_offset is None:
            return None
        return (
            self.source,
            self.source_topic,
            self.source_partition,
            self.source_offset,
            self.step,
            self.error_type,
            self.value,
        )

    @property
    def replayable(self) -> bool:
        """Whether the letter holds a source event (a window closing or a timer firing has
        none: there is nothing to send back through the flow)."""
        return bool(self.source)

    def headers(self) -> list[tuple[str, bytes]]:
        fields = {
            "flow": self.flow,
            "source": self.source,
            "source-topic": self.source_topic,
            "source-partition": self.source_partition,
            "source-offset": self.source_offset,
            "step": self.step,
            "error-type": self.error_type,
            "error-message": self.message,
            "traceback": self.traceback,
            "time": self.time_ms,
            "event-time": self.event_time,
            "value-format": self.value_format,
            "key": self.key,
            "window-start": self.window_start,
            "window-end": self.window_end,
            "timer": self.timer,
        }
        return [(PREFIX + k, str(v).encode()) for k, v in fields.items() if v is not None]

    @classmethod
    def from_record(cls, record: Record) -> DeadLetter:
        h = {k.removeprefix(PREFIX): v.decode(errors="replace") for k, v in record.headers}

        def num(name: str) -> int | None:
            text = h.get(name)
            return int(text) if text not in (None, "") else None

        return cls(
            value=record.value,
            flow=h.get("flow", ""),
            source=h.get("source", ""),
            step=h.get("step", ""),
            error_type=h.get("error-type", ""),
            message=h.get("error-message", ""),
            traceback=h.get("traceback", ""),
            time_ms=num("time") or 0,
            source_topic=h.get("source-topic"),
            source_partition=num("source-partition"),
            source_offset=num("source-offset"),
            event_time=num("event-time"),
            value_format=h.get("value-format", "record"),
            key=h.get("key"),
            window_start=num("window-start"),
            window_end=num("window-end"),
            timer=num("timer"),
            partition=record.partition,
            offset=record.offset,
        )

    def as_dict(self) -> dict[str, Any]:
        """For printing: every field, the value as text when it is UTF-8."""
        out: dict[str, Any] = {
            k: v for k, v in self.__dict__.items() if k not in ("value", "traceback")
        }
        try:
            out["value"] = self.value.decode()
        except UnicodeDecodeError:
            out["value_hex"] = self.value.hex()
        return out


class DeadLetterWriter(LogWriter):
    """Appends dead letters to ``<flow>.dlq`` (a log writer with headers per record)."""

    def __init__(self, topic: str, ctx: OpenContext) -> None:
        super().__init__(LogSink(topic, format="raw"), ctx)
        self._headers = []
        self._stamp = self._in_checkpoints

    def write_letter(self, letter: DeadLetter, timestamp: int) -> None:
        headers = letter.headers()
        if self._stamp:
            headers.extend(self._epoch)
        self._values.append(letter.value)
        self._times.append(timestamp)
        assert self._headers is not None
        self._headers.append(headers)
        if len(self._values) >= FLUSH_EVERY:
            self._append()


@dataclass
class DeadLetters:
    """Applies the bad-event policy during a run and writes dead letters."""

    graph: Graph
    ctx: OpenContext
    to_log: bool
    """False when the data directory cannot be written: dead letters stay in :attr:`memory`
    only (the run warned about it when it started)."""
    writers: dict[str, SinkWriter]
    on_open: Callable[[str, SinkWriter], None] | None = None
    dead: Counter[tuple[str, str]] = field(default_factory=Counter)
    skipped: Counter[tuple[str, str]] = field(default_factory=Counter)
    memory: list[DeadLetter] = field(default_factory=list)
    """The run's first :data:`IN_SUMMARY` dead letters (all of them without ``to_log``)."""
    recent: deque[DeadLetter] = field(default_factory=lambda: deque(maxlen=RECENT))
    """The latest dead letters of this run, newest last."""
    bad_events: int = 0
    """Source events that went bad (dead-lettered or skipped); failures with no source event
    -- a window closing, a timer firing -- are not among them."""
    again: int = 0
    """Bad events of this run already in the topic, not replayed yet (not written twice)."""
    dedupe: bool = True
    """Skip letters already in the topic (off while dead letters are replayed: one that fails
    again is a new letter)."""
    _writer: DeadLetterWriter | None = None
    _copy: SinkWriter | None = None
    """The writer of the flow's ``dead_letter_sink`` (open with :attr:`_writer`)."""
    _known: set[tuple[Any, ...]] | None = None

    def __post_init__(self) -> None:
        self.policies = {s.name: s.on_error or self.graph.on_error for s in self.graph.steps}

    @property
    def topic(self) -> str:
        return dlq_topic(self.graph.name)

    def policy(self, step: str) -> str:
        return self.policies.get(step, self.graph.on_error)

    def handle(
        self,
        exc: BaseException,
        *,
        source: str,
        step: str | None = None,
        raw: bytes | None = None,
        value: Any = None,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
        event_time: int | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> None:
        """Apply the policy of the failing step to one bad event (raises with ``"fail"``).

        ``context`` instead of an event: a failure with no source event (``source`` is then
        empty), ``{"key": ..., "window_start": ..., "window_end": ...}`` or ``{"key": ...,
        "timer": ...}``; it becomes the letter's value and headers (see the module docs).
        """
        step = step or (exc.step if isinstance(exc, RheosError) else None) or source
        policy = self.policy(step)
        kind = type(exc).__name__
        if policy == "fail":
            raise exc
        if source:
            self.bad_events += 1
        if policy == "skip":
            self.skipped[(step, kind)] += 1
            return
        self.dead[(step, kind)] += 1
        now = int(time.time() * 1000)
        fmt = "record"
        if raw is None:
            fmt = "json"
            raw = _json(value if context is None else dict(context))
        ctx = context or {}
        letter = DeadLetter(
            value=raw,
            flow=self.graph.name,
            source=source,
            step=step,
            error_type=kind,
            message=str(exc),
            traceback="".join(traceback.format_exception(exc))[-MAX_TRACEBACK:],
            time_ms=now,
            source_topic=topic,
            source_partition=partition,
            source_offset=offset,
            event_time=event_time,
            value_format=fmt,
            key=_json(ctx["key"]).decode() if "key" in ctx else None,
            window_start=ctx.get("window_start"),
            window_end=ctx.get("window_end"),
            timer=ctx.get("timer"),
        )
        self.recent.append(letter)
        if not self.to_log:
            self.memory.append(letter)
            return
        if len(self.memory) < IN_SUMMARY:
            self.memory.append(letter)
        if self.dedupe and letter.identity is not None:
            if self._known is None:
                self._known = self._pending()
            if letter.identity in self._known:
                self.again += 1
                return
        if self._writer is None:
            self._writer = DeadLetterWriter(self.topic, self.ctx)
            self.writers[self.topic] = self._writer
            if self.on_open is not None:
                self.on_open(self.topic, self._writer)
        timestamp = event_time if event_time is not None else now
        self._writer.write_letter(letter, timestamp)
        if self._copy is not None:
            self._copy.write(letter.as_dict(), timestamp)

    def open_copy(self) -> None:
        """Open the flow's ``dead_letter_sink``, if it has one, as the run starts: it is one
        of the run's sinks, recovered with the others from the restored checkpoint and part
        of every checkpoint (a sink opened at the first letter would miss the commit of what
        an earlier run prepared)."""
        sink = self.graph.dead_letter_sink
        if sink is None or not self.to_log:
            return
        self._copy = sink.open(self.ctx)
        self.writers[f"{self.topic} (dead_letter_sink)"] = self._copy

    def _pending(self) -> set[tuple[Any, ...]]:
        """The identities of the flow's committed letters that were not replayed yet: a run
        over the same input again (a bounded run, a streaming run without checkpoints) meets
        the same bad events, and they are already there."""
        flow = self.graph.name
        log = self.ctx.log
        if not log.has_topic(dlq_topic(flow)):
            return set()
        start: dict[int, int] = {}
        path = store_path(self.ctx.data_dir, flow, self.ctx.task)
        if path.exists():
            with CheckpointStore(path) as store:
                latest = store.latest()
            if latest is not None:
                done = latest.meta.get("dlq_replayed", {})
                start = {int(p): int(o) for p, o in done.items()}
        known = set()
        for letter in read_dead_letters(log, flow, start=start):
            identity = letter.identity
            if identity is not None:
                known.add(identity)
        return known

    @property
    def writer(self) -> DeadLetterWriter | None:
        return self._writer

    @property
    def copy(self) -> SinkWriter | None:
        """The writer of the flow's ``dead_letter_sink``, once open."""
        return self._copy

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._copy is not None:
            self._copy.close()


def read_dead_letters(
    log: Log, flow: str, *, start: dict[int, int] | None = None, until: dict[int, int] | None = None
) -> Iterator[DeadLetter]:
    """The committed dead letters of ``flow`` (from ``start``, below ``until``)."""
    topic = dlq_topic(flow)
    if not log.has_topic(topic):
        return
    with log.reader(topic, start=start or "beginning") as reader:
        ends = reader.end_offsets() if until is None else until
        for record in reader.read():
            if record.offset < ends.get(record.partition, 0):
                yield DeadLetter.from_record(record)


def decode_letter_value(letter: DeadLetter, decode: Callable[[bytes], Any] | None) -> Any:
    """The event of a dead letter: the record bytes through the source's decoder, or JSON."""
    if letter.value_format == "json" or decode is None:
        return msgspec.json.decode(letter.value)
    return decode(letter.value)


__all__ = [
    "IN_SUMMARY",
    "DeadLetter",
    "DeadLetterWriter",
    "DeadLetters",
    "decode_letter_value",
    "dlq_topic",
    "read_dead_letters",
]
