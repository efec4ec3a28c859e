"""The JSON header of a safetensors file, where conceptlab keeps its metadata (each value as JSON text).

A file is `<length: u64 little-endian><header: JSON, space-padded><tensor bytes>`. The header is read here without
the safetensors library, so a damaged or foreign file is named as such before any tensor is parsed.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from typing import Any

LENGTH_PREFIX = struct.Struct("<Q")


class HeaderError(ValueError):
    """What is wrong with a safetensors header, as a phrase for a message: "too short", "its header is not JSON"."""


def encode_metadata(metadata: Mapping[str, Any]) -> dict[str, str]:
    """Each value as JSON text with sorted keys: safetensors metadata holds strings only."""
    return {key: json.dumps(value, sort_keys=True) for key, value in metadata.items()}


def decode_metadata(encoded: Mapping[str, Any]) -> dict[str, Any]:
    """The values `encode_metadata` wrote, decoded."""
    try:
        return {key: json.loads(value) for key, value in encoded.items()}
    except (TypeError, json.JSONDecodeError):
        raise HeaderError("its metadata values are not JSON") from None
    except RecursionError:
        raise HeaderError("its metadata is nested too deeply") from None


def header_bytes(header: Mapping[str, Any]) -> bytes:
    """The length prefix and the header as compact JSON with sorted keys, padded to 8 bytes as safetensors does.

    Sorted keys make the same header the same bytes in every process (the safetensors library writes metadata in
    hash-map order).
    """
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return LENGTH_PREFIX.pack(len(text)) + text


def encoded_metadata(data: bytes) -> dict[str, Any] | None:
    """The header's `__metadata__`, values still JSON text; None when the header has none. Raises `HeaderError`."""
    if len(data) < LENGTH_PREFIX.size:
        raise HeaderError("too short")
    (length,) = LENGTH_PREFIX.unpack_from(data)
    if length > len(data) - LENGTH_PREFIX.size:
        raise HeaderError("its header runs past the end")
    try:
        header = json.loads(data[LENGTH_PREFIX.size : LENGTH_PREFIX.size + length])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise HeaderError("its header is not JSON") from None
    except RecursionError:
        raise HeaderError("its header is nested too deeply") from None
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    return metadata if isinstance(metadata, dict) else None
