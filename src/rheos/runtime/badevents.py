"""What happens to a bad event: the dead-letter policy of a run, and dead-letter replay.

A bad event -- a record that does not decode, a missing or unparsable timestamp, a step whose
function raises -- is given to the flow's ``on_error`` policy through :class:`BadEvents`: a
dead letter (:mod:`rheos.runtime.deadletters`, with the record's bytes and where it came
from), a skip, or the end of the run. Both executors hand it their bad events the same way,
so a dead letter is the same record whichever mode ran the flow.

:func:`replay_letters` sends a flow's dead letters not replayed yet back into the sources
they came from (see :meth:`rheos.runtime.Runner.replay_dead_letters`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rheos.connectors.base import Chunk, OpenContext
from rheos.errors import CheckpointError, EventError, RheosError
from rheos.flows.steps import Graph
from rheos.runtime.build import Compiled
from rheos.runtime.checkpointing import Checkpointer
from rheos.runtime.deadletters import (
    DeadLetters,
    decode_letter_value,
    dlq_topic,
    read_dead_letters,
)
from rheos.runtime.nodes import where
from rheos.runtime.source_run import SourceRun


class BadEvents:
    """The dead-letter policy of one run (see the module docs); :meth:`open` once the flow
    is compiled."""

    def __init__(self) -> None:
        self.dead: DeadLetters | None = None
        """The run's dead letters (``None`` until :meth:`open`)."""

    def open(
        self,
        graph: Graph,
        ctx: OpenContext,
        on_disk: bool,
        compiled: Compiled,
        checkpointer: Checkpointer | None,
    ) -> DeadLetters:
        """Open the run's dead letters (their writer opens at the first one, recovered to the
        restored checkpoint) and give them to the compiled flow's steps."""
        self.dead = DeadLetters(graph, ctx, on_disk, compiled.named_writers)
        self.dead.open_copy()  # (recovered with the flow's sinks when the run restores)
        compiled.dead = self.dead
        if checkpointer is not None:
            self.dead.on_open = checkpointer.recover_writer
        compiled.writers.append(_DeadLetterCloser(self.dead))
        return self.dead

    def _letters(self) -> DeadLetters:
        if self.dead is None:
            raise RheosError("the run's dead letters are not open yet")
        return self.dead

    def dead_letter(
        self, src: SourceRun, chunk: Chunk, i: int, t: int, value: Any, exc: Exception
    ) -> None:
        """Event ``i`` of ``chunk`` (time ``t``) failed in a step with ``exc``."""
        self._letters().handle(
            exc,
            source=src.step.name,
            raw=chunk.raw[i] if chunk.raw is not None else None,
            value=value,
            event_time=t,
            **chunk.where(i),
        )

    def rejects(self, src: SourceRun, chunk: Chunk) -> None:
        """Apply the policy to the records of a chunk that did not become events."""
        for offset, raw, exc in chunk.rejects or ():
            self._reject(src, chunk, offset, raw, exc)
        chunk.rejects = None

    def _reject(
        self, src: SourceRun, chunk: Chunk, offset: int | None, raw: Any, exc: Exception
    ) -> None:
        self._letters().handle(
            exc,
            source=src.step.name,
            step=src.step.name,
            raw=raw,
            topic=chunk.topic,
            partition=chunk.partition,
            offset=offset,
        )

    def _bad_time(self, src: SourceRun, chunk: Chunk, i: int, exc: Exception) -> None:
        self._letters().handle(
            exc,
            source=src.step.name,
            step=src.step.name,
            raw=chunk.raw[i] if chunk.raw is not None else None,
            value=chunk.values[i],
            **chunk.where(i),
        )

    def sift(self, src: SourceRun, chunk: Chunk) -> list[int]:
        """Apply the policy to a chunk's rejects and bad timestamps, in the order of their
        offsets (the first bad record is the one a ``fail`` policy names); return the good
        times."""
        tss, bad = src.timestamps(chunk)
        rejects = chunk.rejects or []
        offsets = chunk.offsets
        if rejects and bad and offsets is not None and all(r[0] is not None for r in rejects):
            letters = sorted(
                [(offsets[i], 1, n) for n, (i, _) in enumerate(bad)]
                + [(r[0], 0, n) for n, r in enumerate(rejects)]
            )
            for _, kind, n in letters:
                if kind:
                    self._bad_time(src, chunk, *bad[n])
                else:
                    self._reject(src, chunk, *rejects[n])
            chunk.rejects = None
        else:
            self.rejects(src, chunk)
            for i, exc in bad:
                self._bad_time(src, chunk, i, exc)
        if bad:
            gone = {i for i, _ in bad}
            chunk.drop(sorted(gone))
            tss = [t for i, t in enumerate(tss) if i not in gone]
        return tss


def replay_letters(
    ctx: OpenContext,
    flow: str,
    sources: list[SourceRun],
    dead: DeadLetters,
    checkpointer: Checkpointer,
    *,
    stateful: bool,
    push: Callable[[SourceRun, Chunk], int],
    now: Callable[[], int],
) -> tuple[int, dict[int, int] | None]:
    """Push each dead letter of ``flow`` not replayed yet into the source it came from,
    decoded as that source decodes (``push``: one chunk through the flow); return how many
    were replayed and the dead-letter topic's end offsets (replayed up to there; ``None``:
    the flow has no dead-letter topic). A letter that does not decode again is
    dead-lettered again."""
    done = {int(p): int(o) for p, o in checkpointer.extra["dlq_replayed"].items()}
    log = ctx.log
    topic = dlq_topic(flow)
    if not log.has_topic(topic):
        return 0, None
    with log.reader(topic) as probe:
        until = probe.end_offsets()
    by_name = {src.step.name: src for src in sources}
    n = 0
    for letter in read_dead_letters(log, flow, start=done, until=until):
        if not letter.replayable:
            continue  # a window closing or a timer firing failed: no event to send back
        if stateful and checkpointer.restored is None:
            raise CheckpointError(
                f"flow {flow!r} has windows or keyed state but no checkpoint "
                "(it has only run bounded, or never checkpointed): replayed events would "
                "have no state to join and their windows would never emit. Run the "
                "flow again over its input with the fixed code instead (rheos run "
                "APP --bounded); its dead letters are not written twice."
            )
        n += 1
        src = by_name.get(letter.source)
        if src is None:
            continue
        try:
            value = decode_letter_value(letter, getattr(src.reader, "decode", None))
        except Exception as exc:
            err = exc
            if not isinstance(exc, RheosError):
                err = EventError(
                    f"{where(flow, src.step)}: cannot decode: {exc}",
                    topic=letter.source_topic,
                    partition=letter.source_partition,
                    offset=letter.source_offset,
                )
                err.__cause__ = exc
            dead.handle(
                err,
                source=src.step.name,
                step=src.step.name,
                raw=letter.value,
                topic=letter.source_topic,
                partition=letter.source_partition,
                offset=letter.source_offset,
                event_time=letter.event_time,
            )
            continue
        offsets = None if letter.source_offset is None else [letter.source_offset]
        chunk = Chunk(
            letter.source_partition or 0,
            [value],
            [letter.event_time if letter.event_time is not None else now()],
            letter.source_topic,
            offsets,
            [letter.value] if letter.value_format == "record" else None,
        )
        push(src, chunk)
    return n, until


class _DeadLetterCloser:
    """Closes the dead-letter writer with the other writers (it opens lazily)."""

    def __init__(self, dead: DeadLetters) -> None:
        self.dead = dead

    def write(self, value: Any, timestamp: int) -> None:  # pragma: no cover - never a sink
        raise AssertionError("not a sink")

    def flush(self) -> None:
        if self.dead.writer is not None:
            self.dead.writer.flush()
        if self.dead.copy is not None:
            self.dead.copy.flush()

    def close(self) -> None:
        self.dead.close()


__all__ = ["BadEvents", "replay_letters"]
