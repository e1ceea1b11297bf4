"""The SQL store's ini options and the checks of their values.

Kept apart from :mod:`.sql` so that the store's module holds what it does
with the database, not how its settings are read.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from .. import _coerce as c
from ..errors import ConfigError
from .base import IniOption

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

__all__ = [
    "DEFAULT_TABLE",
    "ENCODE_HINT",
    "SQL_OPTIONS",
    "database_url",
    "driver_options",
    "misread_password",
    "table_name",
]

#: A table name: letters, digits and underscores, short enough that
#: ``<name>_locks`` and its index names fit MySQL's 64-character limit.
_TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,47}")
DEFAULT_TABLE = "wsgisession_sessions"


def database_url(key: str, value: Any) -> str | None:
    """The check of ``sql_url``: a URL string, or None when unset.

    The value is never shown in the error: it may hold a password.
    """
    if value is None:
        return None
    if not isinstance(value, str) or "://" not in value:
        shown = (
            "a str without '://'" if isinstance(value, str) else type(value).__name__
        )
        raise ConfigError(
            f"invalid value for {key!r} ({shown}); expected a SQLAlchemy URL "
            "such as postgresql+psycopg://user:password@host/database"
        )
    return value


#: What a URL whose password holds an '@' (or another character URLs give a
#: meaning to) needs.
ENCODE_HINT = (
    "; percent-encode any @ / ? # : or % in the user name or password "
    "(write '@' as %40)"
)


def misread_password(url: str, parsed: URL) -> bool:
    """Whether SQLAlchemy, which ends the password at its first '@', ended
    ``url``'s at an '@' of the password itself (and took the rest for the
    host, shown in every message): what it read as the host, port, database
    or a query key, which never hold an '@', holds one (a query value may:
    ``?application_name=me@web1``). The host is checked on its own: a '='
    of the password after its '@' (``S3cr@t=42``) begins no query."""
    if parsed.password is None:
        return False
    if "@" in (parsed.host or ""):
        return True
    rest = url.partition("://")[2]
    after = rest[rest.index("@", rest.index(":")) + 1 :]
    return "@" in after.partition("=")[0]


def table_name(key: str, value: Any) -> str:
    """The check of ``sql_table`` (and of the ``table`` argument)."""
    if not isinstance(value, str) or not _TABLE_NAME.fullmatch(value):
        raise c.invalid(
            key,
            value,
            "a name of letters, digits and underscores "
            "(at most 48 characters, not starting with a digit)",
        )
    return value


#: psycopg's count of runs after which it prepares a statement on the server
#: (5); ``none`` never prepares, as a pooler in transaction mode (PgBouncer)
#: needs: a prepared statement stays on the server connection it was made on.
_PREPARE = "prepare_threshold"


#: libpq's client encoding, left to the database's by default: psycopg hands
#: the text of a ``SQL_ASCII`` database back as bytes, on which SQLAlchemy's
#: first connect fails (TypeError). The store's own text is hex.
_ENCODING = "client_encoding"


def driver_options(url: URL, driver: str) -> tuple[URL, dict[str, Any]]:
    """``url`` less the query options that are the driver's arguments rather
    than connection parameters, and those arguments: psycopg's
    ``?prepare_threshold=none`` (or a count), which SQLAlchemy would pass
    on as text; and for psycopg a UTF-8 client encoding unless the URL
    names one."""
    if driver != "psycopg":
        return url, {}
    arguments: dict[str, Any] = {}
    if _ENCODING not in url.query:
        arguments[_ENCODING] = "UTF8"
    if _PREPARE not in url.query:
        return url, arguments
    value = url.query[_PREPARE]
    text = value.strip().lower() if isinstance(value, str) else ""
    if text != "none" and not (text.isascii() and text.isdigit()):  # not "²"
        raise ConfigError(
            f"invalid value for {_PREPARE} in sql_url ({value!r}); expected "
            "none (never prepare statements: behind a pooler in transaction "
            "mode) or a whole number of runs"
        )
    arguments[_PREPARE] = None if text == "none" else int(text)
    return url.difference_update_query([_PREPARE]), arguments


#: ``sql_url`` and ``sql_table``, the ``ini_options`` of ``SQLStore``.
SQL_OPTIONS = (
    IniOption(
        "sql_url", "SQLAlchemy URL", None,
        "Database URL of the SQL store, e.g. "
        "postgresql+psycopg://app@db.internal/myapp (needs the sql extra "
        "and the database's driver); a password, in an ini file only, goes "
        "after the user name (app:PASSWORD@).",
        database_url, c.parse_optional_text,
        required=True, argument="url_or_engine",
    ),
    IniOption(
        "sql_table", "table name", DEFAULT_TABLE,
        "Table of the SQL store; its request locks go in <table>_locks.",
        table_name, c.parse_text, argument="table",
    ),
)  # fmt: skip


#: What to do when a driver module is missing, by its name, then by backend.
_DRIVER_HINTS = {
    "psycopg": "pip install 'psycopg[binary]'",
    "psycopg2": (
        "pip install psycopg2-binary, or write postgresql+psycopg:// to use "
        "psycopg 3 (pip install 'psycopg[binary]')"
    ),
    "pymysql": "pip install PyMySQL",
    "MySQLdb": (
        "write {backend}+pymysql:// to use PyMySQL (pip install PyMySQL), or "
        "pip install mysqlclient"
    ),
    "postgresql": "pip install 'psycopg[binary]' and write postgresql+psycopg://",
    "mysql": "pip install PyMySQL and write mysql+pymysql://",
    "mariadb": "pip install PyMySQL and write mariadb+pymysql://",
}


def driver_hint(backend: str, missing: str | None) -> str:
    """What installs the ``missing`` driver module of a ``backend`` URL."""
    hint = _DRIVER_HINTS.get(missing or "") or _DRIVER_HINTS.get(backend)
    return hint.format(backend=backend) if hint else "install its driver"


def dialect_hint(backend: str) -> str:
    """A fix for an unknown dialect that is a common misspelling, or ""."""
    if backend in ("postgres", "pgsql", "psql"):
        return "; SQLAlchemy calls it postgresql: write postgresql+psycopg://..."
    return ""
