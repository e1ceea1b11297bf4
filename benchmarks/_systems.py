"""The systems under test: wsgisession and Beaker 1.14, one app per store kind.

Both wrap the same :func:`_wsgi.session_app`. wsgisession saves modified
sessions by itself; Beaker is used the documented way (``session.save()``
after a change, ``session.secret`` so that its id cookie is signed).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _servers import Services
from _wsgi import WSGIApp, session_app

KINDS = ("memory", "file", "sqlite", "memcached", "redis", "cookie", "postgresql")
#: Store kinds that need a server this run starts.
SERVERS = ("memcached", "redis", "postgresql")
SYSTEMS = ("wsgisession", "beaker")
COOKIE_NAMES = {"wsgisession": "sessionid", "beaker": "beaker.session.id"}

#: How each Beaker store is configured (shown in the report).
BEAKER_NOTES = {
    "memory": "session.type=memory",
    "file": "session.type=file (data_dir, lock_dir)",
    "sqlite": "session.type=ext:database, sqlite:/// via SQLAlchemy",
    "memcached": "session.type=ext:memcached (python-memcached client)",
    "redis": "session.type=ext:redis (redis-py)",
    "cookie": "session.type=cookie, validate_key (HMAC)",
    "postgresql": "session.type=ext:database on the same PostgreSQL (psycopg 3)",
}


class Skip(Exception):
    """A system/store pair that cannot run here (missing library or server)."""


@dataclass
class Ctx:
    """What every builder needs: a private directory per case, servers, a secret."""

    root: Path
    services: Services
    secret: str = "benchmark-secret-0123456789abcdef0123456789abcdef"
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        """Close the floors' client connections."""
        for closer in self.closers:
            closer()
        self.closers.clear()

    def directory(self, *parts: str) -> Path:
        path = self.root.joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
        return path


def _need(*modules: str) -> None:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise Skip("not installed: " + ", ".join(missing))


def _need_server(ctx: Ctx, kind: str) -> None:
    if kind in SERVERS and getattr(ctx.services, kind) is None:
        reason = ctx.services.skipped.get(kind, "not started (--only)")
        raise Skip(f"{kind} server: {reason}")


def wsgisession_store(kind: str, ctx: Ctx, where: Path | None = None) -> Any:
    """A wsgisession store of ``kind``; file/SQLite data goes under ``where``."""
    from wsgisession import stores

    _need_server(ctx, kind)
    where = where or ctx.directory("wsgisession", kind)
    makers: dict[str, Callable[[], Any]] = {
        "memory": stores.MemoryStore,
        "file": lambda: stores.FileStore(where),
        "sqlite": lambda: stores.SQLiteStore(where / "sessions.sqlite3"),
        "memcached": lambda: stores.MemcachedStore([ctx.services.memcached_address]),
        "redis": lambda: stores.RedisStore(ctx.services.redis_url),
        "cookie": lambda: stores.SignedCookieStore(ctx.secret),
        "postgresql": lambda: stores.SQLStore(ctx.services.postgresql_url),
    }
    if kind == "memcached":
        _need("pymemcache")
    if kind == "redis":
        _need("redis")
    if kind == "postgresql":
        _need("sqlalchemy", "psycopg")
    return makers[kind]()


@contextlib.contextmanager
def scratch(kinds: list[str], prefix: str) -> Iterator[Ctx]:
    """A temporary directory and the servers ``kinds`` need, for one script run."""
    with (
        tempfile.TemporaryDirectory(prefix=prefix) as tmp,
        Services(Path(tmp), set(kinds)) as services,
    ):
        ctx = Ctx(Path(tmp), services)
        try:
            yield ctx
        finally:
            ctx.close()


def wsgisession_app(kind: str, ctx: Ctx) -> tuple[WSGIApp, Any]:
    """The app behind wsgisession's middleware, and its store."""
    from wsgisession import SessionMiddleware

    store = wsgisession_store(kind, ctx)
    app = session_app(lambda environ: environ["wsgisession"])
    return SessionMiddleware(app, store=store), store


def wsgisession_locked_app(kind: str, ctx: Ctx) -> tuple[WSGIApp, Any]:
    """:func:`wsgisession_app` with ``lock = true``: a session's requests run
    one at a time (the concurrency run's *one counter, lock = true*)."""
    from wsgisession import SessionMiddleware

    store = wsgisession_store(kind, ctx)
    app = session_app(lambda environ: environ["wsgisession"])
    return SessionMiddleware(app, store=store, lock=True), store


def beaker_app(kind: str, ctx: Ctx) -> tuple[WSGIApp, None]:
    """The app behind Beaker's SessionMiddleware on the matching store."""
    _need("beaker")
    _need_server(ctx, kind)
    extra = {"sqlite": "sqlalchemy", "memcached": "memcache", "redis": "redis"}
    extra["postgresql"] = "psycopg"
    if kind in extra:
        _need(extra[kind])
    from beaker.middleware import SessionMiddleware

    where = ctx.directory("beaker", kind)
    options: dict[str, Any] = {"session.key": COOKIE_NAMES["beaker"]}
    if kind == "cookie":
        options |= {"session.type": "cookie", "session.validate_key": ctx.secret}
    else:
        options["session.secret"] = ctx.secret
    if kind == "memory":
        options["session.type"] = "memory"
    elif kind == "file":
        options |= {
            "session.type": "file",
            "session.data_dir": os.fspath(where / "data"),
            "session.lock_dir": os.fspath(where / "lock"),
        }
    elif kind == "sqlite":
        options |= {
            "session.type": "ext:database",
            "session.url": "sqlite:///" + os.fspath(where / "beaker.sqlite3"),
            "session.lock_dir": os.fspath(where / "lock"),
        }
    elif kind == "memcached":
        options |= {
            "session.type": "ext:memcached",
            "session.url": ctx.services.memcached_address,
        }
    elif kind == "redis":
        options |= {"session.type": "ext:redis", "session.url": ctx.services.redis_url}
    elif kind == "postgresql":
        options |= {
            "session.type": "ext:database",
            "session.url": ctx.services.postgresql_url,
            "session.lock_dir": os.fspath(where / "lock"),
        }
    app = session_app(
        lambda environ: environ["beaker.session"], save=lambda s: s.save()
    )
    return SessionMiddleware(app, options), None


BUILDERS = {"wsgisession": wsgisession_app, "beaker": beaker_app}


def store_dir(system: str, kind: str, ctx: Ctx) -> Path | None:
    """Where ``system`` keeps ``kind``'s data on disk (watched by the probes)."""
    return ctx.root / system / kind if kind in ("file", "sqlite") else None
