"""Topic settings, names, and the data directory layout.

A data directory holds::

    <data_dir>/
      topics/<topic>/topic.json          settings (partitions, retention, durability, limits)
      topics/<topic>/<partition>/         segments: NNNNNNNNNNNNNNNNNNNN.log/.index/.timeindex
      groups.sqlite                       committed offsets of consumer groups
"""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path

import msgspec

from rheos.durations import Duration, to_ms
from rheos.errors import ConfigError, InvalidTopicNameError

DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_RECORD_BYTES = 1024 * 1024
DATA_DIR_ENV = "RHEOS_DATA_DIR"
DEFAULT_DATA_DIR = ".rheos"

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,248}$")


def default_data_dir() -> Path:
    """``$RHEOS_DATA_DIR`` if set, else ``./.rheos`` (in the current directory)."""
    return Path(os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR)


def check_topic_name(name: str) -> str:
    """Return ``name`` if it is a valid topic name, else raise :class:`InvalidTopicNameError`.

    Names are 1 to 249 characters of letters, digits, ``.``, ``_`` and ``-``, not starting
    with ``.`` or ``-``: no path separators, no ``..``, so a topic can never point outside
    the data directory.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
        raise InvalidTopicNameError(
            f"invalid topic name {name!r}: use 1 to 249 letters, digits, '.', '_' or '-', "
            "not starting with '.' or '-' and without '..'"
        )
    return name


class Durability(msgspec.Struct, frozen=True):
    """When appended data is forced to disk.

    - ``"batch"``: ``fdatasync`` after every append; an append that returned survives a
      process kill *and* power loss.
    - ``"os"``: the operating system flushes when it likes; an append that returned survives a
      process kill (the data is in the page cache), but power loss may lose the last seconds.
    - a duration such as ``"100ms"``: ``fdatasync`` at least that often, by a background
      thread; power loss loses at most about that much.
    """

    mode: str = "os"
    interval_ms: int = 0

    @staticmethod
    def parse(spec: str | Durability | None) -> Durability:
        if spec is None:
            return Durability()
        if isinstance(spec, Durability):
            return spec
        text = str(spec).strip().lower()
        if text in ("batch", "os"):
            return Durability(text)
        try:
            return Durability("interval", to_ms(text, what="durability"))
        except ConfigError:
            raise ConfigError(
                f"durability {spec!r}: use 'batch' (fsync every append), 'os' (leave it to the "
                "operating system) or an interval such as '100ms'"
            ) from None

    def __str__(self) -> str:
        return f"{self.interval_ms}ms" if self.mode == "interval" else self.mode


class TopicConfig(msgspec.Struct, frozen=True):
    """The settings of a topic, stored in ``topic.json``."""

    name: str
    partitions: int
    retention_ms: int | None = None
    retention_bytes: int | None = None
    segment_bytes: int = DEFAULT_SEGMENT_BYTES
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
    durability: str = "os"
    created_ms: int = 0

    @staticmethod
    def build(
        name: str,
        partitions: int,
        *,
        retention_ms: Duration | None = None,
        retention_bytes: int | None = None,
        segment_bytes: int | None = None,
        max_record_bytes: int | None = None,
        durability: str | Durability | None = None,
    ) -> TopicConfig:
        check_topic_name(name)
        if not isinstance(partitions, int) or isinstance(partitions, bool) or partitions < 1:
            raise ConfigError(f"topic {name!r}: partitions must be a whole number >= 1")
        for what, value in (
            ("retention_bytes", retention_bytes),
            ("segment_bytes", segment_bytes),
            ("max_record_bytes", max_record_bytes),
        ):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigError(f"topic {name!r}: {what} must be a whole number >= 1")
        return TopicConfig(
            name=name,
            partitions=partitions,
            retention_ms=None if retention_ms is None else to_ms(retention_ms, what="retention"),
            retention_bytes=retention_bytes,
            segment_bytes=segment_bytes or DEFAULT_SEGMENT_BYTES,
            max_record_bytes=max_record_bytes or DEFAULT_MAX_RECORD_BYTES,
            durability=str(Durability.parse(durability)),
            created_ms=time.time_ns() // 1_000_000,
        )


def write_config(path: Path, config: TopicConfig) -> None:
    """Write ``config`` atomically. Processes and threads creating one topic at once (the
    tasks of a flow split across workers) each write a file of their own and rename it: a
    reader sees one whole ``topic.json`` or none."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "wb") as f:
        f.write(msgspec.json.format(msgspec.json.encode(config)))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_config(path: Path) -> TopicConfig:
    return msgspec.json.decode(path.read_bytes(), type=TopicConfig)
