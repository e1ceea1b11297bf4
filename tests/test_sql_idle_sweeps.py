"""SQLStore.clear_expired() after the database dropped its idle connection
(the automatic sweep's case is in test_store_sql_deployments.py).

Requests run on the store's own connections, which they keep busy; the
sweep of expired rows (at most once per ``cleanup_interval``, 300 s by
default) and ``clear_expired()`` run on a connection of the engine's pool,
which sits idle in between. A server that drops idle clients (PostgreSQL's
``idle_session_timeout``, MySQL's and MariaDB's ``wait_timeout``, a proxy or
firewall timeout shorter than the interval) closes that one and not the
others: the docs promise that such a connection is replaced and the
statement run again, not that the sweep fails (a WARNING with a traceback
every other interval, expired rows and lock rows left behind).

Real servers, each told to drop this store's idle connections after a
second (an option of the test's URL: the shared server is left alone).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sql_support import sql_url

from wsgisession.clock import now
from wsgisession.keys import generate_key
from wsgisession.stores import SQLStore

# Every test reaches PostgreSQL or MariaDB.
pytestmark = pytest.mark.slow

#: A URL option that makes the server drop the store's connections once
#: idle for a second.
IDLE_DROP = {
    "sql-postgresql": "options=-c%20idle_session_timeout%3D1000",
    "sql-mariadb": "init_command=SET%20SESSION%20wait_timeout%3D1",
}


@pytest.fixture(params=sorted(IDLE_DROP))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> SQLStore:
    url = f"{sql_url(request.param, request, tmp_path)}?{IDLE_DROP[request.param]}"
    made = SQLStore(url)
    request.addfinalizer(made.close)
    return made


def _busy_past_the_idle_timeout(store: SQLStore, key: str) -> None:
    """Requests every 0.2 s for 2.5 s: the store's own connection never
    idles for a second, the engine's pooled one does."""
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:
        store.load(key)
        time.sleep(0.2)


def test_clear_expired_whose_pooled_connection_idled_out_runs_again(
    store: SQLStore,
) -> None:
    live, dead = generate_key(), generate_key()
    assert store.create(live, b"live", now() + 600) == live
    assert store.clear_expired() == 0  # the engine's connection, now pooled
    assert store.create(dead, b"dead", now() + 0.5) == dead
    _busy_past_the_idle_timeout(store, live)
    assert store.clear_expired() == 1
    assert store.load(live) is not None
