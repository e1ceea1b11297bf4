"""The file store's record format: a one-line ASCII header, then the payload.

The header is ``wss1 <expires_at> <payload length>\\n``; ``expires_at`` is
written with ``repr`` so that it reads back exactly.
"""

from __future__ import annotations

import math
import os

_MAGIC = b"wss1"
HEADER_MAX = 64  # bytes; the longest header is about 45
_READ_SIZE = 65536  # bytes per read: a typical record in one call


def encode(payload: bytes, expires_at: float) -> bytes:
    """The bytes of a record file."""
    header = b"%s %s %d\n" % (_MAGIC, repr(expires_at).encode("ascii"), len(payload))
    return header + payload


def parse_header(data: bytes) -> tuple[float, int, int] | None:
    """``(expires_at, payload_length, payload_offset)`` or None if malformed."""
    end = data.find(b"\n", 0, HEADER_MAX)
    parts = data[:end].split(b" ") if end > 0 else []
    if len(parts) != 3 or parts[0] != _MAGIC:
        return None
    try:
        expires_at, length = float(parts[1]), int(parts[2])
    except ValueError:
        return None
    if not math.isfinite(expires_at) or length < 0:
        return None
    return expires_at, length, end + 1


def read_record(fd: int) -> tuple[bytes, float] | None:
    """``(payload, expires_at)`` of an open record file, or None if malformed.

    A record shorter than one read takes one ``os.read``: the header says
    how long the file must be.
    """
    data = os.read(fd, _READ_SIZE)
    header = parse_header(data)
    if header is None:
        return None
    expires_at, length, offset = header
    if len(data) < offset + length or len(data) == _READ_SIZE:  # maybe more
        chunks = [data]
        while chunk := os.read(fd, _READ_SIZE):
            chunks.append(chunk)
        data = b"".join(chunks)
    if len(data) != offset + length:
        return None
    return data[offset:], expires_at


def write_whole(fd: int, data: bytes) -> None:
    """Write all of ``data`` (``os.write`` may write less than asked)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
