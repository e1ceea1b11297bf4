"""Fresh stores on servers for the session model's state machines: one
per hypothesis example, its backing emptied first."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import _redis_clients, build_store, examples, store_argument
from hypothesis import settings
from session_machine import MACHINE_SETTINGS

from wsgisession.stores.base import Store

#: The server-backed kinds of tests/helpers.py that keep user sessions.
SERVER_KINDS = [
    "memcached",
    "memcached-pool",
    "redis",
    "redis-cluster",
    "sql-postgresql",
    "sql-mariadb",
]


#: Examples per store kind in the full run, each case under ~30 s on a busy
#: two-core machine (a memcached census waits for its crawler dumps).
FULL_EXAMPLES = {"memcached": 20, "memcached-pool": 8}


def machine_settings(kind: str) -> settings:
    """The state machine's settings for ``kind``: fewer examples where a
    census is slow; ``MODEL_EXAMPLES`` (in the environment) overrides all."""
    if os.environ.get("MODEL_EXAMPLES"):
        return MACHINE_SETTINGS
    return settings(
        MACHINE_SETTINGS, max_examples=examples(FULL_EXAMPLES.get(kind, 25))
    )


def empty_backing(kind: str, where: str) -> None:
    """Delete everything the servers behind ``where`` hold (the SQL kinds'
    tables are emptied by ``store_argument`` itself)."""
    from pymemcache.client.base import Client  # type: ignore[import-untyped]

    if kind.startswith("memcached"):
        for address in where.split():
            host, port = address.rsplit(":", 1)
            client = Client((host, int(port)), timeout=5)
            try:
                client.flush_all(noreply=False)
            finally:
                client.close()
    elif kind.startswith("redis"):
        for redis_client in _redis_clients(where):
            try:
                redis_client.flushall()  # type: ignore[attr-defined]
            finally:
                redis_client.close()  # type: ignore[attr-defined]


def server_store(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Callable[[], tuple[Store, str]]:
    """A maker of fresh stores of ``kind`` (see :func:`helpers.build_store`)
    and where each was built."""

    def make() -> tuple[Store, str]:
        where = store_argument(kind, request, tmp_path)
        empty_backing(kind, where)
        return build_store(kind, where), where

    return make
