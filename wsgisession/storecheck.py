"""Building a command's store and reaching it once, with errors a user can act on."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .errors import SessionError, StoreUnavailable
from .keys import generate_key
from .stores._shared import sqlite_busy
from .storespec import sqlite_database

if TYPE_CHECKING:
    from .config import StoreSpec
    from .stores.base import Store

__all__ = [
    "build_existing_store",
    "build_store",
    "reach_store",
    "refuse_missing_store",
    "refuse_missing_tables",
    "store_hint",
    "unreachable",
]

STORE_HINT = (
    "start the store's server, or correct its address (--config's store keys, "
    "--redis-url, --memcached-servers or --sql-url)"
)
LOCAL_HINT = (
    "check the path and its permissions (--config's store keys, --file-path, "
    "--sqlite-path or --sql-url)"
)


def store_hint(spec: StoreSpec) -> str:
    """What to do about a store that cannot be reached: a server's, or a path's."""
    url = str(getattr(spec, "sql_url", "")) if spec.store == "sql" else ""
    local = spec.store in ("file", "sqlite") or url.startswith("sqlite")
    return LOCAL_HINT if local else STORE_HINT


def build_store(spec: StoreSpec) -> Store:
    """The store; a missing extra becomes a SessionError naming the pip command."""
    try:
        return spec.build()
    except ImportError as exc:
        raise SessionError(str(exc)) from None


def unreachable(exc: StoreUnavailable, hint: str) -> SessionError:
    """One line: what failed, then how to fix it."""
    return SessionError(f"cannot reach the store: {str(exc).rstrip('.')}; {hint}")


def reach_store(store: Store, hint: str) -> None:
    """Ask the store about a made-up key once; SessionError with ``hint`` if it
    fails. SQLite's "database is locked" (writers holding the file past the
    busy timeout) is an answer: the store was reached, and is busy."""
    try:
        store.exists(generate_key())
    except StoreUnavailable as exc:
        if not sqlite_busy(exc):
            raise unreachable(exc, hint) from None


#: The key naming where each store that makes itself on first use keeps
#: its sessions.
_PATH_KEYS = {"file": "file_path", "sqlite": "sqlite_path"}


def _stored_at(spec: StoreSpec) -> tuple[str, str | None] | None:
    """The key and path of a store that a command would make if missing:
    a file or SQLite store, or a SQL store on SQLite; None for others."""
    key = _PATH_KEYS.get(spec.store)
    if key is not None:
        return key, getattr(spec, key)
    database = sqlite_database(spec.sql_url) if spec.store == "sql" else None
    if database is not None:
        return "sql_url", database or None  # "": in memory
    return None


def refuse_missing_store(spec: StoreSpec, action: str) -> None:
    """SessionError if ``spec`` names a file or SQLite store that does not
    exist yet, or a private one (no path, or a memory store): the command
    would make an empty store there and report nothing to ``action`` (``revoke``: 0 sessions)
    as if it had done its work. A mistyped path must not look like success.
    """
    if spec.store == "memory":
        raise SessionError(
            "store = memory keeps the sessions in the app's own process: this "
            f"command would {action} those of a new, empty store of its own"
        )
    stored_at = _stored_at(spec)
    if stored_at is None:
        return
    key, path = stored_at
    option = "--" + key.replace("_", "-")
    if path is None:
        raise SessionError(
            f"store = {spec.store} without a path is a new, private store that "
            f"holds no sessions: give {option} (or --config) to {action} the "
            "app's sessions"
        )
    if _missing(path):
        raise SessionError(
            f"no session store at {path!r} ({key}): nothing to {action} there. "
            "The app makes it when it starts (a directory) or at its first "
            "request (an SQLite file); check the path"
        )


def _missing(path: str) -> bool:
    """Whether nothing is at ``path``. A path this user may not look into
    (another user's directory) is not missing: the store's own checks then
    name its owner, where "check the path" would send the operator astray."""
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return True
    except OSError:
        return False
    return False


def refuse_missing_tables(store: Store, action: str, hint: str = "") -> None:
    """SessionError if ``store`` is an SQL store without its sessions table
    (a mistyped ``sql_table``, or a database the app never used): the first
    use would create it empty, and report nothing to ``action`` as success,
    as :func:`refuse_missing_store` explains. Call it before any other use;
    ``hint`` is added to the error if the database cannot be reached.
    """
    has_tables = getattr(store, "has_tables", None)  # only SQLStore has it
    if has_tables is None:
        return
    try:
        found = has_tables()
    except StoreUnavailable as exc:
        if not hint:
            raise
        raise unreachable(exc, hint) from None
    if not found:
        raise SessionError(
            f"no session tables in {store!r}: nothing to {action} there. The "
            "app makes them on its first use; check sql_url and sql_table"
        )


def build_existing_store(spec: StoreSpec, action: str, hint: str = "") -> Store:
    """The store of ``spec`` for a command that reads or removes sessions:
    refused (SessionError) if it would be made empty, as
    :func:`refuse_missing_store` and :func:`refuse_missing_tables` explain."""
    refuse_missing_store(spec, action)
    store = build_store(spec)
    try:
        refuse_missing_tables(store, action, hint)
    except BaseException:
        store.close()
        raise
    return store
