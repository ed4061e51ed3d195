"""Where a flow keeps its keyed state: in memory (the default) or on disk.

``rh.Flow(name, state="disk")`` or ``state=rh.disk_state(cache_keys=...)`` keeps the state
of the flow's windows (tumbling, sliding, calendar, session) and keyed ``process`` steps in
a SQLite file with a bounded in-memory cache of recently used keys (see
:mod:`rheos.state.disk` and docs/concepts/state.md). This module is the description only:
nothing is opened here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rheos.errors import FlowDefinitionError

DEFAULT_CACHE_KEYS = 100_000
"""Keys (a window's key, or a process step's key) a disk-backed step keeps in memory."""

MIN_CACHE_KEYS = 16
"""The smallest cache: a sliding window's event touches a few windows at once."""


@dataclass(frozen=True)
class DiskState:
    """Keyed state on disk, with ``cache_keys`` of each step's keys kept in memory."""

    cache_keys: int = DEFAULT_CACHE_KEYS

    def __post_init__(self) -> None:
        if (
            not isinstance(self.cache_keys, int)
            or isinstance(self.cache_keys, bool)
            or self.cache_keys < MIN_CACHE_KEYS
        ):
            raise FlowDefinitionError(
                f"disk_state: cache_keys must be an integer of at least {MIN_CACHE_KEYS}, "
                f"got {self.cache_keys!r}"
            )


StateOption = Literal["memory", "disk"] | DiskState
"""What ``rh.Flow(state=...)`` accepts."""


def disk_state(*, cache_keys: int = DEFAULT_CACHE_KEYS) -> DiskState:
    """Keyed state on disk (SQLite) with the ``cache_keys`` most recently used keys of each
    stateful step in memory: ``rh.Flow("f", state=rh.disk_state(cache_keys=50_000))``."""
    return DiskState(cache_keys)


def state_backend(flow: str, state: object) -> DiskState | None:
    """The backend ``state`` names (``None``: in memory), or :class:`FlowDefinitionError`."""
    if state == "memory":
        return None
    if state == "disk":
        return DiskState()
    if isinstance(state, DiskState):
        return state
    raise FlowDefinitionError(
        f"flow {flow!r}: state must be 'memory', 'disk' or rh.disk_state(...), got {state!r}"
    )


__all__ = ["DEFAULT_CACHE_KEYS", "DiskState", "StateOption", "disk_state", "state_backend"]
