"""The micro-batch runtime: the stream as a series of small batches, processed columnar.

``flow.run(mode="micro-batch", batch_size=N, batch_interval="50ms")`` runs the same flow as
the stream-first runtime with the same results, late output and statistics, but hands whole
batches to every step: JSON log values are decoded in bulk (:mod:`.sources`), expressions run
as Polars expressions (:mod:`.stateless`), tumbling and sliding windows aggregate with Polars
and merge partial aggregates into the window state (:mod:`.stateful`). Plain Python functions,
process steps, joins, session windows and ``emit="update"`` run per event inside the batch
(the slow path), with the watermark advancing event by event exactly as in stream-first mode.

Larger batches raise throughput and latency: a result is visible only when its batch is done.
"""

from __future__ import annotations

from rheos.runtime.microbatch.batch import Batch
from rheos.runtime.microbatch.executor import (
    BOUNDED_BATCH_SIZE,
    DEFAULT_BATCH_SIZE,
    DEFAULT_INTERVAL_MS,
    BatchExecutor,
    MicroBatchRunner,
)
from rheos.runtime.microbatch.sink import FrameSink, frame_sink

__all__ = [
    "BOUNDED_BATCH_SIZE",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_INTERVAL_MS",
    "Batch",
    "BatchExecutor",
    "FrameSink",
    "MicroBatchRunner",
    "frame_sink",
]
