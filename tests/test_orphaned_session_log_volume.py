"""memcached: the cookie of a session its user's index lost, sent again and
again, logs one INFO line, not one per request.

memcached may evict a user's index item, or lose it with a restart of the
server that held it while the sessions' records live on other servers of
the pool. The store then fails closed: each bound session the index no
longer lists is treated as revoked, and its record is kept (an older
server list, as in a rolling deploy, may still list it; deleting it on load
would end it there too). Whoever holds such a cookie can send it at will,
and each request logged an INFO line (200 requests, 200 lines). Now the
first request of each such session logs it at INFO, the rest at DEBUG, as
a damaged record's cookie does.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import webtest
from helpers import build_store, evict_user_index, store_argument, user_app

from wsgisession import SessionMiddleware
from wsgisession.stores import MemcachedStore

USER = "alice@example.org"
PREFIX = "wsgisession:"
RESENT = 200
ORPHANED = "session missing from its user's index"


def orphan_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.levelname for r in caplog.records if ORPHANED in r.getMessage()]


@pytest.mark.parametrize("kind", ["memcached", "memcached-pool"])
def test_an_orphaned_sessions_cookie_sent_again_logs_one_info_line(
    kind: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = build_store(kind, store_argument(kind, request, tmp_path))
    assert isinstance(store, MemcachedStore)
    with SessionMiddleware(user_app, store) as middleware:
        client = webtest.TestApp(middleware)
        client.get("/", "login=" + USER)
        cookie = "sessionid=" + client.cookies["sessionid"]
        client.reset()  # the header below alone names it
        evict_user_index(store, USER)
        caplog.set_level(logging.DEBUG, logger="wsgisession")
        for _ in range(RESENT):
            response = client.get("/", headers={"Cookie": cookie})
            assert response.text == "None None None"  # treated as revoked
        assert orphan_lines(caplog) == ["INFO"] + ["DEBUG"] * (RESENT - 1)


def test_each_orphaned_session_is_logged_once(
    request: pytest.FixtureRequest, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = build_store("memcached", store_argument("memcached", request, tmp_path))
    assert isinstance(store, MemcachedStore)
    with SessionMiddleware(user_app, store) as middleware:
        client = webtest.TestApp(middleware)
        cookies = []
        for _ in range(3):
            client.reset()
            client.get("/", "login=" + USER)
            cookies.append("sessionid=" + client.cookies["sessionid"])
        client.reset()
        evict_user_index(store, USER)
        caplog.set_level(logging.DEBUG, logger="wsgisession")
        for cookie in cookies * 2:
            client.get("/", headers={"Cookie": cookie})
        assert orphan_lines(caplog) == ["INFO"] * 3 + ["DEBUG"] * 3
