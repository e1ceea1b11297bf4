"""Whether the database refused a schema change, or merely failed it now.

A ``CREATE TABLE``, ``ALTER TABLE`` or ``CREATE INDEX`` the app's user may
not run (or a read-only replica refuses) fails the same way every time:
:mod:`._sqlschema` says what an administrator runs instead. One that failed
for the moment (another transaction's lock past ``lock_timeout``, a
statement timeout, a dropped connection) is no such refusal: reported as
one, the store never tried again and pointed at grants that were fine.
Both kinds of message quote the database's reason: :func:`reason_of`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.exc import DBAPIError

__all__ = ["reason_of", "refused"]


def reason_of(exc: BaseException) -> str:
    """The first line of the driver's message for ``exc`` (a SQLAlchemy
    error's, without the statement it appends), or the error's type."""
    detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return detail[0] if detail else type(exc).__name__


#: MySQL's and MariaDB's errors of a statement the user may not run, or
#: a read-only server will not: ER_DBACCESS_DENIED_ERROR,
#: ER_TABLEACCESS_DENIED_ERROR, ER_COLUMNACCESS_DENIED_ERROR,
#: ER_SPECIFIC_ACCESS_DENIED_ERROR, ER_OPTION_PREVENTS_STATEMENT,
#: ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION, ER_READ_ONLY_MODE.
_MYSQL_REFUSALS = frozenset({1044, 1142, 1143, 1227, 1290, 1792, 1836})
#: SQLite's result codes of a database it may not write.
_SQLITE_REFUSALS = ("SQLITE_READONLY", "SQLITE_AUTH", "SQLITE_PERM", "SQLITE_CANTOPEN")


def refused(exc: DBAPIError) -> bool:
    """Whether ``exc`` refuses the statement for good: an access rule or a
    read-only database (PostgreSQL's SQLSTATE class 42 and 25006, MySQL's
    and MariaDB's access and read-only errors, SQLite's read-only codes).
    Another driver's error is taken as a refusal: it cannot be told apart."""
    cause = exc.orig
    arguments = getattr(cause, "args", ())
    # First: PyMySQL also gives a SQLSTATE, HY000 for a read-only server.
    if arguments and type(arguments[0]) is int:  # PyMySQL, mysqlclient
        return arguments[0] in _MYSQL_REFUSALS
    sqlstate = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
    if isinstance(sqlstate, str):  # psycopg, psycopg2
        return sqlstate.startswith("42") or sqlstate == "25006"
    sqlite_error = getattr(cause, "sqlite_errorname", None)
    if isinstance(sqlite_error, str):
        return sqlite_error.startswith(_SQLITE_REFUSALS)
    return not exc.connection_invalidated
