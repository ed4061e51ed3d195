"""State that outlives a process: the checkpoint store of each flow.

:class:`CheckpointStore` keeps a flow's checkpoints in one SQLite file
(``<data_dir>/flows/<flow>/checkpoints.sqlite``) with msgpack values: atomic, incremental,
with a configurable number of generations. It knows nothing of flows or the runtime: the
runtime (:mod:`rheos.runtime.checkpointing`) decides what goes in a checkpoint.
"""

from rheos.state.store import (
    DEFAULT_KEEP,
    Change,
    CheckpointInfo,
    CheckpointStore,
    PendingWrite,
    state_dir,
    store_path,
)

__all__ = [
    "DEFAULT_KEEP",
    "Change",
    "CheckpointInfo",
    "CheckpointStore",
    "PendingWrite",
    "state_dir",
    "store_path",
]
