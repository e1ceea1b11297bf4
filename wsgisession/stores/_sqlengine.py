"""The SQL store's engine: a database URL checked, its driver's timeouts set.

:func:`build_engine` turns the URL a user configured into an SQLAlchemy
engine that has not connected yet, or a :class:`~wsgisession.errors.ConfigError`
saying what is wrong with it, with any password hidden (:func:`redacted`).
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from ..errors import ConfigError
from ..redaction import is_secret_parameter, redact_url
from ._shared import MAX_SQLITE_WAIT
from ._sqlitefiles import (
    create_private_database,
    database_file,
    refuse_shared_database,
)
from ._sqloptions import (
    ENCODE_HINT,
    dialect_hint,
    driver_hint,
    driver_options,
    misread_password,
)

__all__ = ["build_engine", "redacted", "url_secrets"]

#: Drivers whose connect timeouts the store sets on the URLs it builds.
_DRIVER_TIMEOUTS = {
    "psycopg": ("connect_timeout",),
    "psycopg2": ("connect_timeout",),
    "pymysql": ("connect_timeout", "read_timeout", "write_timeout"),
    "mysqldb": ("connect_timeout", "read_timeout", "write_timeout"),
    "pysqlite": ("timeout",),
}
#: The most whole seconds a driver takes as a timeout (PyMySQL: a year).
_MAX_WHOLE_SECONDS = 365 * 86400
#: The longest keepalive idle time Linux takes (``TCP_KEEPIDLE``): libpq
#: fails every connection given more.
_MAX_KEEPIDLE = 32767
#: libpq reads its options as C ints (``tcp_user_timeout`` in ms).
_MAX_INT = 2**31 - 1


def redacted(url: URL) -> str:
    """``url`` as text with its password hidden, in its user part or its query
    (``?password=``, which libpq and PyMySQL take too, or ``?sslpassword=``)."""
    hidden = {name: "***" for name in url.query if is_secret_parameter(name)}
    text = url.update_query_dict(hidden).render_as_string(hide_password=True)
    return text.replace("=%2A%2A%2A", "=***")  # the query is percent-encoded


def url_secrets(url: URL) -> list[str]:
    """The credentials in ``url``, to take out of driver messages."""
    found = [] if url.password is None else [str(url.password)]
    for name, value in url.query.items():
        if is_secret_parameter(name):
            found += [value] if isinstance(value, str) else list(value)
    return [secret for secret in found if secret]


def _parse(url: object) -> URL:
    if not isinstance(url, str):
        raise ConfigError(
            f"SQLStore needs a database URL or an Engine, not {type(url).__name__}"
        )
    try:
        url.encode("utf-8")  # SQLAlchemy quotes its parts as UTF-8 text
    except UnicodeEncodeError:  # a byte of an environment variable or %(here)s
        raise ConfigError(
            "SQLStore url is not valid text: it holds a byte that is not UTF-8 "
            "(from an environment variable or a directory name?)"
        ) from None
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:  # ValueError: a port not a number
        # Not chained when the URL has credentials: the ValueError quotes
        # the "port", which is the rest of a password holding '@'.
        raise ConfigError(
            "SQLStore url is not a database URL (dialect+driver://user:password"
            f"@host:port/database){ENCODE_HINT if '@' in url else ''}"
        ) from (None if "@" in url else exc)
    if misread_password(url, parsed):
        raise ConfigError(
            f"SQLStore url {redact_url(url)}: its password holds an '@'{ENCODE_HINT}"
        )
    return parsed


def _timeouts(url: URL, driver: str, timeout: float) -> dict[str, Any]:
    """Connect (and read) timeouts for the driver, unless the URL sets them.

    libpq has no read timeout: a server host that dies or a network that
    drops everything while a statement waits for its reply is noticed by
    TCP instead, through keepalive probes and ``tcp_user_timeout``.
    """
    names = _DRIVER_TIMEOUTS.get(driver, ())
    # libpq and MySQL take whole seconds, and refuse too many of them.
    whole = min(max(1, math.ceil(timeout)), _MAX_WHOLE_SECONDS)
    value: float = min(timeout, MAX_SQLITE_WAIT) if driver == "pysqlite" else whole
    arguments: dict[str, Any] = {name: value for name in names}
    if driver in ("psycopg", "psycopg2"):
        arguments |= {
            "keepalives": 1,
            "keepalives_idle": min(whole, _MAX_KEEPIDLE),
            "keepalives_interval": 1,
            "keepalives_count": 3,
            "tcp_user_timeout": min(int(timeout * 1000), _MAX_INT),
        }
    return {name: v for name, v in arguments.items() if name not in url.query}


def build_engine(url_text: object, timeout: float) -> tuple[Engine, URL]:
    """An engine for ``url_text`` that has not connected yet.

    Connections run in autocommit mode (each statement of the store is its
    own transaction), are checked for a dead server by a retry rather than
    a ping, and time out after ``timeout`` seconds when connecting or
    waiting for the pool.
    """
    url = _parse(url_text)
    if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
        raise ConfigError(
            "SQLStore needs a database file for SQLite (sqlite:///path); "
            "use MemoryStore in memory"
        )
    try:
        driver = url.get_dialect().driver
    except NoSuchModuleError as exc:
        raise ConfigError(
            f"SQLStore url {redacted(url)}: unknown database dialect"
            f"{dialect_hint(url.get_backend_name())}"
        ) from exc
    url, arguments = driver_options(url, driver)
    try:
        engine = create_engine(
            url,
            isolation_level="AUTOCOMMIT",
            # Autocommit leaves no transaction to roll back when a connection
            # goes back to the pool: skip the ROLLBACK (a round trip on MySQL).
            pool_reset_on_return=None,
            pool_timeout=timeout,
            hide_parameters=True,
            connect_args=_timeouts(url, driver, timeout) | arguments,
        )
    except ImportError as exc:
        hint = driver_hint(url.get_backend_name(), exc.name)
        raise ConfigError(
            f"SQLStore url {redacted(url)} needs a driver that is not installed: "
            f"{exc.name or exc}; {hint}"
        ) from exc
    except (ArgumentError, TypeError, ValueError) as exc:
        # ValueError: a query option SQLAlchemy converts (?connect_timeout=5s).
        detail = str(exc)
        for secret in url_secrets(url):
            detail = detail.replace(secret, "***")
        raise ConfigError(f"SQLStore url {redacted(url)}: {detail}") from exc
    _refuse_shared_sqlite(engine, url)
    return engine, url


def _refuse_shared_sqlite(engine: Engine, url: URL) -> None:
    """Before each new connection to a SQLite file, refuse (ConfigError) a
    file or directory that other users can write, as SQLiteStore does:
    a ``-wal`` file planted beside the database is replayed into it; and
    create a missing file with mode 0600, as SQLiteStore does. The file is
    the one the driver is given (a ``file:`` URI with ``uri=true``)."""
    if url.get_backend_name() != "sqlite":
        return

    @event.listens_for(engine, "do_connect")
    def check(_: Any, __: Any, cargs: list[Any], cparams: dict[str, Any]) -> None:
        name = cargs[0] if cargs else cparams.get("database", "")
        uri = bool(cparams.get("uri"))
        path = database_file(str(name), uri)
        if path is not None:
            refuse_shared_database(path)
            create_private_database(str(name), uri)
