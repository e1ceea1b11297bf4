"""``wsgisession init-db``: create the SQL store's tables, or print their DDL.

For deployments where the app's database user may not create tables: an
administrator runs ``wsgisession init-db --config FILE`` once (or pipes
``--sql`` into the database's shell), and the store then finds its tables
in place on first use. The command line wires :func:`init_db` in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TextIO

from .errors import ConfigError
from .stores.base import Store

if TYPE_CHECKING:
    from .stores.sql import SQLStore

__all__ = ["create_table", "ddl", "init_db"]


def _sql_store(store: Store) -> SQLStore:
    """``store`` if it is an SQLStore; ConfigError naming the store otherwise.

    The SQL store's module is imported only here: it needs SQLAlchemy.
    """
    from .stores.sql import SQLStore

    if not isinstance(store, SQLStore):
        name = f"store = {store.ini_name}" if store.ini_name else repr(store)
        raise ConfigError(
            f"init-db is for store = sql; this configuration has {name}, "
            "which needs no tables created beforehand"
        )
    return store


def ddl(store: Store) -> str:
    """The CREATE TABLE / CREATE INDEX statements of ``store``'s database."""
    return _sql_store(store).ddl()


def create_table(store: Store) -> None:
    """Create ``store``'s tables if missing (StoreUnavailable if it cannot)."""
    _sql_store(store).create_tables()


def init_db(store: Store, out: TextIO, *, print_sql: bool = False) -> int:
    """What ``init-db`` does: print the DDL (``--sql``) or create the tables.

    Returns the command's exit status.
    """
    if print_sql:
        out.write(ddl(store))
        return 0
    create_table(store)
    out.write(f"tables of {store!r} are in place\n")
    return 0
