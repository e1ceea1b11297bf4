"""Whether the database refused a schema change, or merely failed it now.

A ``CREATE TABLE``, ``ALTER TABLE`` or ``CREATE INDEX`` the app's user may
not run (or a read-only replica refuses) fails the same way every time:
:mod:`._sqlschema` says what an administrator runs instead. One that failed
for the moment (another transaction's lock past ``lock_timeout``, a
statement timeout, a dropped connection) is no such refusal: reported as
one, the store never tried again and pointed at grants that were fine.
"""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError

__all__ = ["refused"]

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
