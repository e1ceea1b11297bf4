"""The file store's record format: a one-line ASCII header, then the payload.

The header is ``wss2 <expires_at> <payload length> <checksum>\\n``:
``expires_at`` is written with ``repr`` so that it reads back exactly, and
the checksum is the CRC-32, in 8 hex digits, of the header before it and of
the payload. Readers take no lock while a small record is rewritten in
place (:mod:`._filerecord`), so a read may overlap a write and return a mix
of the two; the checksum tells such a read from a record (the file store
then reads it again under the shard's lock, which the writer holds). Bytes
after the payload are ignored: a record rewritten shorter keeps the old
one's tail until the file is truncated, which is a second system call.

Files of the earlier format ``wss1`` (the same header without the
checksum, never rewritten in place) still read.
"""

from __future__ import annotations

import math
import os
import zlib

_MAGIC = b"wss2"
_MAGIC_V1 = b"wss1"
_CHECKSUM_DIGITS = 8
_HEADER_MAX = 72  # bytes; the longest header is about 54
_READ_SIZE = 65536  # bytes per read: a typical record in one call


def encode(payload: bytes, expires_at: float) -> bytes:
    """The bytes of a record file."""
    head = b"%s %s %d " % (_MAGIC, repr(expires_at).encode("ascii"), len(payload))
    return b"%s%08x\n%s" % (head, zlib.crc32(payload, zlib.crc32(head)), payload)


def decode(data: bytes) -> tuple[bytes, float] | None:
    """``(payload, expires_at)`` of a record file's bytes; None if they are not
    a whole record (malformed, damaged, or read while being rewritten)."""
    end = data.find(b"\n", 0, _HEADER_MAX)
    parts = data[:end].split(b" ") if end > 0 else []
    if len(parts) == 4 and parts[0] == _MAGIC:
        checksum: bytes | None = parts[3]
    elif len(parts) == 3 and parts[0] == _MAGIC_V1:
        checksum = None
    else:
        return None
    try:
        expires_at, length = float(parts[1]), int(parts[2])
    except ValueError:
        return None
    if not math.isfinite(expires_at) or length < 0:
        return None
    offset = end + 1
    payload = data[offset : offset + length]
    if len(payload) != length:
        return None
    if checksum is None:  # a record of format 1 is exactly as long as it says
        return (payload, expires_at) if len(data) == offset + length else None
    head = data[: end - _CHECKSUM_DIGITS]
    if len(checksum) != _CHECKSUM_DIGITS or checksum != b"%08x" % zlib.crc32(
        payload, zlib.crc32(head)
    ):
        return None
    return payload, expires_at


def is_current(data: bytes) -> bool:
    """Whether a record file's bytes begin as this format's do: only such a
    file may be rewritten in place (format 1 has no checksum)."""
    return data[:5] == _MAGIC + b" "


def read_record(fd: int) -> tuple[bytes, float] | None:
    """The record of an open file; None if it does not check out."""
    return decode(read_whole(fd))


def read_whole(fd: int) -> bytes:
    """The bytes of an open file from its current offset to its end."""
    data = os.read(fd, _READ_SIZE)
    if len(data) < _READ_SIZE:  # a short read of a regular file: its end
        return data
    chunks = [data]
    while chunk := os.read(fd, _READ_SIZE):
        chunks.append(chunk)
    return b"".join(chunks)


def write_whole(fd: int, data: bytes) -> None:
    """Write all of ``data`` (``os.write`` may write less than asked)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
