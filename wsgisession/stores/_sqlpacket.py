"""The largest session a MySQL or MariaDB server takes from SQLStore.

A statement must fit in the server's ``max_allowed_packet``, and the
drivers send a payload as text: PyMySQL as hex, mysqlclient escaped, at
most two bytes a byte either way. A save sends two copies, the new payload
and the one it replaces (``UPDATE ... WHERE payload = <loaded>``), as does
a new session that takes over an expired key. A statement over the limit
makes the server close the connection ("MySQL server has gone away"): the
store would take that for a restart and let go of every pooled connection,
and a session created, or grown by a save, to just under half the limit
could never be saved again. So the store refuses such a session before
sending it, by name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from ._sqlrun import Cursor

__all__ = ["max_packet", "oversized", "packet_now"]

#: Room for the statement's text and its other parameters.
_STATEMENT = 1024
#: The global value, which a DBA may have raised (``SET GLOBAL``) since the
#: connection asked opened, and which every new connection gets.
_QUERY = "SELECT @@global.max_allowed_packet"


def max_packet(engine: Engine) -> int | None:
    """The server's ``max_allowed_packet``, or None on another database."""
    if engine.dialect.name not in ("mysql", "mariadb"):
        return None
    with engine.connect() as conn:
        value = conn.exec_driver_sql(_QUERY).scalar()
    return None if value is None else int(value)


def packet_now(cursor: Cursor) -> int | None:
    """:func:`max_packet` again, on one of the store's own connections."""
    cursor.raw.execute(_QUERY)
    row = cursor.raw.fetchone()
    return None if row is None or row[0] is None else int(row[0])


def oversized(limit: int | None, *copies: bytes | None) -> str | None:
    """Why a statement sending ``copies`` would be over ``limit``, or None."""
    if limit is None:
        return None
    sent = sum(len(copy) for copy in copies if copy is not None)
    if 2 * sent + _STATEMENT <= limit:
        return None
    largest = max(0, (limit - _STATEMENT) // 4)
    return (
        f"the session's {max(len(c) for c in copies if c is not None)} bytes are "
        f"more than max_allowed_packet ({limit} bytes) lets a save send (it "
        f"sends the session and the copy it replaces, as hex: at most {largest} "
        "bytes each); raise max_allowed_packet or keep less in the session"
    )
