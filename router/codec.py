"""Wire format of every record: UTF-8 JSON, via msgspec's compiled encoder and decoders.

Decoding validates: a record's bytes that are not JSON, or not that record (a wrong type, a
missing or an unknown field), raise `Unreadable`, which names the offending field.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec

R = TypeVar("R")

_encoder = msgspec.json.Encoder()
_decoders: dict[type[Any], msgspec.json.Decoder[Any]] = {}

# msgspec's messages end with where the error is: "Expected `int`, got `str` - at `$.a[0].b`".
_WHERE = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_NAMED = re.compile(r"(?:missing required field|contains unknown field) `(?P<name>[^`]+)`")


class Unreadable(ValueError):
    """Bytes that do not decode into the record asked for."""

    def __init__(self, message: str, field: str | None) -> None:
        super().__init__(message if field is None else f"{message} (at {field})")
        self.message = message
        self.field = field


def encode(record: Any) -> bytes:
    return _encoder.encode(record)


def decode(record_type: type[R], data: bytes) -> R:
    decoder = _decoders.get(record_type)
    if decoder is None:
        decoder = _decoders[record_type] = msgspec.json.Decoder(record_type)
    try:
        return decoder.decode(data)
    except msgspec.ValidationError as error:
        raise _unreadable(str(error)) from None
    except msgspec.DecodeError as error:
        raise Unreadable(f"not valid JSON: {error}", None) from None


def convert(record_type: type[R], value: Any) -> R:
    """A record from already-parsed JSON values (a table's value, say), validated."""
    try:
        return msgspec.convert(value, record_type)
    except msgspec.ValidationError as error:
        raise _unreadable(str(error)) from None


def to_builtins(record: Any) -> Any:
    """The record as JSON values (dicts, lists, strings, numbers): what `encode` writes."""
    return msgspec.to_builtins(record)


def _unreadable(text: str) -> Unreadable:
    found = _WHERE.match(text)
    assert found is not None  # the pattern matches any text
    message, path = found.group("message"), found.group("path") or ""
    parts = [part for part in re.split(r"[.\[\]]", path) if part]
    named = _NAMED.search(message)
    if named is not None:
        parts.append(named.group("name"))
    return Unreadable(message, ".".join(parts) or None)
