"""Event encodings: ``"json"`` (default), ``"msgpack"`` and ``"raw"`` bytes, via msgspec.

With a ``schema`` (a :class:`msgspec.Struct` type) values are decoded *and validated* as that
type; ``as_dict=True`` (the default) turns each struct into a dict so that field-name
helpers (``key_by("symbol")``, ``rh.sum("qty")``) keep working; pass ``as_dict=False`` to keep
the structs and use attribute access in your functions.

>>> decode = decoder("json")
>>> decode([b'{"a": 1}', b'[2]'])
[{'a': 1}, [2]]
>>> encoder("json")({"a": (1, 2)})
b'{"a":[1,2]}'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypedDict

import msgspec

from rheos.connectors.base import Chunk
from rheos.errors import ConfigError, EventError, RecordTooLargeError

Format = Literal["json", "msgpack", "raw"]
FORMATS = ("json", "msgpack", "raw")


def _fallback(obj: Any) -> Any:
    """Encode what msgspec does not know as its ``str`` (sets become lists)."""
    if isinstance(obj, set | frozenset):
        return sorted(obj, key=repr)
    return str(obj)


def check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ConfigError(f"format must be one of {', '.join(FORMATS)}; got {fmt!r}")


def value_decoder(
    fmt: str, schema: type | None = None, *, as_dict: bool = True
) -> Callable[[bytes], Any]:
    """A function decoding one value."""
    check_format(fmt)
    if fmt == "raw":
        if schema is not None:
            raise ConfigError("format='raw' cannot take a schema")
        return bytes
    kind: Any = schema if schema is not None else Any
    dec = (msgspec.json.Decoder(kind) if fmt == "json" else msgspec.msgpack.Decoder(kind)).decode
    if schema is not None and as_dict and issubclass(schema, msgspec.Struct):
        to_dict = msgspec.structs.asdict

        def decode_struct(data: bytes) -> Any:
            return to_dict(dec(data))

        return decode_struct
    return dec


def fields_decoder(
    fmt: str, fields: frozenset[str], schema: type | None = None
) -> Callable[[bytes], Any] | None:
    """A function decoding one JSON or MessagePack object into a dict of only ``fields``
    (those it has; the rest of the object is checked and skipped, not built), or None for
    another format or given a ``schema`` (a source decoding into its type, not dicts). A
    value that is not an object raises :class:`msgspec.ValidationError`."""
    if fmt not in ("json", "msgpack") or schema is not None:
        return None
    module = msgspec.json if fmt == "json" else msgspec.msgpack
    return module.Decoder(_only(fields)).decode  # type: ignore[no-any-return]


def lines_decoder(
    fmt: str, schema: type | None = None, fields: frozenset[str] | None = None
) -> Callable[[bytes], list[Any]] | None:
    """A function decoding newline-delimited JSON values at once (``decode_lines``: one call
    for a record batch), each exactly as :func:`value_decoder` (or, given ``fields``,
    :func:`fields_decoder`) decodes it; None for another format or a ``schema``."""
    if fmt != "json" or schema is not None:
        return None
    kind = Any if fields is None else _only(fields)
    return msgspec.json.Decoder(kind).decode_lines


def _only(fields: frozenset[str]) -> Any:
    """The type of an object decoded into a dict of only ``fields`` (those it has)."""
    return TypedDict("Fields", dict.fromkeys(fields, Any), total=False)  # type: ignore[operator]


def decoder(
    fmt: str, schema: type | None = None, *, as_dict: bool = True
) -> Callable[[list[bytes]], list[Any]]:
    """A function decoding a list of values at once (one list comprehension)."""
    one = value_decoder(fmt, schema, as_dict=as_dict)

    def decode_all(values: list[bytes]) -> list[Any]:
        return [one(v) for v in values]

    return decode_all


def encoder(fmt: str) -> Callable[[Any], bytes]:
    """A function encoding one value (``raw`` takes bytes, or str as UTF-8)."""
    check_format(fmt)
    if fmt == "json":
        return msgspec.json.Encoder(enc_hook=_fallback).encode
    if fmt == "msgpack":
        return msgspec.msgpack.Encoder(enc_hook=_fallback).encode

    def raw(value: Any) -> bytes:
        if isinstance(value, bytes):
            return value
        if isinstance(value, str):
            return value.encode()
        raise ConfigError(
            f"format='raw' sinks need bytes or str values, got {type(value).__name__}"
        )

    return raw


def sift(
    decode: Callable[[bytes], Any],
    fmt: str,
    where: tuple[str, int],
    raw: list[bytes],
    offsets: list[int],
    timestamps: list[int],
    max_record_bytes: int | None = None,
) -> Chunk:
    """The chunk of a stretch of records with bad ones among them: the records that decode
    become events, the others rejects (``where`` is the records' topic and partition)."""
    topic, partition = where
    kept: list[bytes] = []
    chunk = Chunk(partition, [], [], topic, [], kept, [])
    assert chunk.timestamps is not None
    assert isinstance(chunk.offsets, list) and chunk.rejects is not None
    for value, offset, ts in zip(raw, offsets, timestamps, strict=True):
        try:
            if max_record_bytes is not None and len(value) > max_record_bytes:
                raise RecordTooLargeError(
                    f"the record is {len(value)} bytes, over the source's "
                    f"max_record_bytes of {max_record_bytes}",
                    topic=topic,
                    partition=partition,
                    offset=offset,
                )
            decoded = decode(value)
        except RecordTooLargeError as exc:
            chunk.rejects.append((offset, value, exc))
            continue
        except Exception as exc:
            err = EventError(
                f"cannot decode a {fmt} value: {exc}: {value[:60]!r}",
                topic=topic,
                partition=partition,
                offset=offset,
            )
            err.__cause__ = exc
            chunk.rejects.append((offset, value, err))
            continue
        chunk.values.append(decoded)
        chunk.timestamps.append(ts)
        chunk.offsets.append(offset)
        kept.append(value)
    return chunk


def key_getter(key: str | Callable[[Any], Any] | None, who: str) -> Callable[[Any], Any] | None:
    """A sink's ``key=`` as a function of the event: a field name becomes a lookup whose
    miss is an :class:`EventError` naming the sink (``who``) and the field."""
    if not isinstance(key, str):
        return key
    field = key

    def by_field(value: Any) -> Any:
        try:
            return value[field]
        except (KeyError, TypeError, IndexError):
            raise EventError(f"{who}: the event has no key field {field!r}") from None

    return by_field


def key_bytes(key: Any) -> bytes | None:
    """A record key as bytes: ``None`` stays, str is UTF-8, bytes as is, others JSON."""
    if key is None or isinstance(key, bytes):
        return key
    if isinstance(key, str):
        return key.encode()
    return msgspec.json.encode(key, enc_hook=_fallback)


__all__ = [
    "FORMATS",
    "Format",
    "decoder",
    "encoder",
    "fields_decoder",
    "key_bytes",
    "sift",
    "value_decoder",
]
