"""Small readable facts for the demo page: fingerprints, countdowns, cookies, stores.

Pure functions, so the page and its tests agree on every wording.
"""

from __future__ import annotations

import datetime
import hashlib
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ..cookies import COOKIE_SIZE_LIMIT

if TYPE_CHECKING:
    from ..config import StoreSpec
    from ..stores.base import Store

__all__ = [
    "COOKIE_SIZE_LIMIT",
    "countdown",
    "describe_store",
    "expiry_moment",
    "fingerprint",
    "summarize_set_cookie",
]


def fingerprint(value: str) -> str:
    """A short hash of a session key: shows a change without showing the key."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:8]


def countdown(seconds: float) -> str:
    """``13 days 23 h``, ``5 h 12 min``, ``3 min 20 s``, ``42 s``: the two largest units."""
    left = max(0, int(seconds))
    days, rest = divmod(left, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        unit = "day" if days == 1 else "days"
        return f"{days} {unit} {hours} h" if hours else f"{days} {unit}"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    return f"{secs} s"


def expiry_moment(moment: datetime.datetime) -> str:
    """A UTC date and time to the second, as the page shows it."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def summarize_set_cookie(header: str, cookie_name: str) -> str:
    """A ``Set-Cookie`` header with the key replaced by its fingerprint and size.

    The page never shows a key itself: with ``HttpOnly``, script on the page
    must not be able to read it from the HTML either.
    """
    pair, _, attributes = header.partition(";")
    name, _, value = pair.partition("=")
    if name.strip() != cookie_name:
        return header
    value = value.strip().strip('"')
    if not value:
        shown = f'{name}=""'
    else:
        shown = f"{name}=«key {fingerprint(value)}, {len(value)} chars»"
    return shown + (";" + attributes if attributes else "")


def _redis_where(url: str | None) -> str:
    if not url:
        return "Redis"
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"Redis on the socket {parts.path}"
    if parts.scheme.endswith("+cluster"):  # one or more nodes, h1:7000,h2:7000
        nodes = parts.netloc.rpartition("@")[2].split(",")
        return f"a Redis Cluster through {' and '.join(nodes)}"
    database = parts.path.strip("/") or "0"
    return f"Redis at {parts.hostname}:{parts.port or 6379}, database {database}"


def describe_store(spec: StoreSpec, store: Store) -> str:
    """Where this demo's sessions live, in words (never a secret or a password)."""
    kind = spec.store
    if kind == "memory":
        return "this process's memory (MemoryStore): they end when the demo stops"
    if kind == "file":
        return f"files in {getattr(store, 'path', '?')}, one per session (FileStore)"
    if kind == "sqlite":
        return f"an SQLite database, {getattr(store, 'path', '?')} (SQLiteStore)"
    if kind == "memcached":
        servers = " and ".join(spec.memcached_servers)
        return f"memcached at {servers} (MemcachedStore)"
    if kind == "redis":
        return f"{_redis_where(spec.redis_url)} (RedisStore)"
    if kind == "cookie":
        sealed = "signed and encrypted" if spec.encrypt else "signed, readable by you"
        return (
            f"the cookie itself, {sealed} (SignedCookieStore): the server keeps nothing"
        )
    return f"{type(store).__name__} ({kind})"
