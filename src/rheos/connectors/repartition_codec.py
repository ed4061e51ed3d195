"""How events travel through a repartition topic: msgpack, exact for plain Python values.

An event crossing a repartition topic (see :mod:`rheos.connectors.repartition_topic`) must
come out as it went in: the steps after it see the same value as in a run without one. The
values a flow's steps make are plain Python -- ``dict``, ``list``, ``tuple``, ``str``,
``bytes``, ``int`` (of any size), ``float``, ``bool`` and ``None`` -- and msgpack keeps all of
them but three, which go as msgpack extension types:

=========  =====================================================================
ext code   what
=========  =====================================================================
1          a ``tuple`` (its items, a msgpack array)
2          an ``int`` outside msgpack's 64 bits (its two's-complement bytes)
3          a ``dict`` with a key msgpack cannot hold as a map key (a ``tuple``, a
           large ``int``): its ``[key, value]`` pairs
=========  =====================================================================

Anything else -- a ``datetime``, a ``Decimal``, an object, a subclass of ``dict`` -- is
refused with :class:`~rheos.errors.EventError` rather than turned into something else
silently (msgpack would write a ``datetime`` as a string). Events are never pickled.

>>> value = {"key": ("ACME", 2024), "n": 2**70, "ok": True, "xs": [1.5, None, b"\\x00"]}
>>> decode(encode(value)) == value
True
>>> type(decode(encode(value))["key"])
<class 'tuple'>
"""

from __future__ import annotations

from typing import Any

import msgspec

TUPLE = 1
BIG_INT = 2
PAIRS = 3

INT_MIN = -(2**63)
INT_MAX = 2**64 - 1

_SCALARS = frozenset({str, float, bool, type(None), bytes})
_FLAT = _SCALARS | {int}
_STR = frozenset({str})
_encoder = msgspec.msgpack.Encoder()


class UnencodableError(TypeError):
    """A value of a type a repartition topic does not carry (see the module docs)."""


def _ext_hook(code: int, data: memoryview) -> Any:
    if code == TUPLE:
        return tuple(_decoder.decode(data))
    if code == BIG_INT:
        return int.from_bytes(data, "big", signed=True)
    if code == PAIRS:
        return {k: v for k, v in _decoder.decode(data)}
    raise UnencodableError(f"unknown msgpack extension type {code}")


_decoder = msgspec.msgpack.Decoder(ext_hook=_ext_hook)


def _big_int(value: int) -> msgspec.msgpack.Ext:
    size = (value.bit_length() + 8) // 8
    return msgspec.msgpack.Ext(BIG_INT, value.to_bytes(size, "big", signed=True))


def _plain_key(key: Any) -> bool:
    """Whether msgpack holds ``key`` as a map key that decodes back to an equal key."""
    t = type(key)
    return t in _SCALARS or (t is int and INT_MIN <= key <= INT_MAX)


def _plain(value: Any) -> Any:
    """``value`` as msgspec encodes it exactly (the extension types in place)."""
    t = type(value)
    if t in _SCALARS:
        return value
    if t is int:
        return value if INT_MIN <= value <= INT_MAX else _big_int(value)
    if t is dict:
        if all(map(_plain_key, value)):
            return {k: _plain(v) for k, v in value.items()}
        pairs = [[_plain(k), _plain(v)] for k, v in value.items()]
        return msgspec.msgpack.Ext(PAIRS, _encoder.encode(pairs))
    if t is list:
        return [_plain(v) for v in value]
    if t is tuple:
        return msgspec.msgpack.Ext(TUPLE, _encoder.encode([_plain(v) for v in value]))
    raise UnencodableError(
        f"a {t.__module__}.{t.__qualname__} cannot cross a repartition topic (it carries "
        "dict, list, tuple, str, bytes, int, float, bool and None); convert it in a map "
        "before the key_by"
    )


def encode(value: Any) -> bytes:
    """``value`` as bytes (raises :class:`UnencodableError` for a type not carried)."""
    if (
        type(value) is dict
        and set(map(type, value.values())) <= _FLAT
        and set(map(type, value)) <= _STR
    ):
        try:  # the common event: a flat dict by field name, encoded as it is
            return _encoder.encode(value)
        except OverflowError:  # an int beyond 64 bits
            pass
    return _encoder.encode(_plain(value))


def decode(data: bytes | memoryview) -> Any:
    """The value :func:`encode` made ``data`` from."""
    return _decoder.decode(data)


def decode_all(data: list[bytes]) -> list[Any]:
    """The values :func:`encode` made each of ``data`` from."""
    dec = _decoder.decode
    return [dec(d) for d in data]


__all__ = ["UnencodableError", "decode", "decode_all", "encode"]
