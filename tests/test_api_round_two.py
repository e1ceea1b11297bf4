"""Section 8 of the public contract (API.md, "Added in the second round"),
read word for word: the statements no other test checked as written."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import webtest
from helpers import FakeClock, build_store, store_argument, user_app
from servers import RedisCluster

from wsgisession import SessionMiddleware, UserSession
from wsgisession.stores import (
    FileStore,
    MemcachedStore,
    MemoryStore,
    RedisStore,
    SignedCookieStore,
    SQLiteStore,
    SQLStore,
)
from wsgisession.stores.base import Store

USER = "alice@example.org"


@pytest.fixture
def cluster_client(clean_redis_cluster: RedisCluster) -> Iterator[object]:
    from redis.cluster import RedisCluster as ClusterClient

    node = clean_redis_cluster.nodes[0]
    client = ClusterClient(host=node.host, port=node.port)
    yield client
    client.close()


@pytest.mark.parametrize("passed", ["client=", "positional"])
def test_redis_store_takes_a_redis_cluster_client(
    cluster_client: object, passed: str
) -> None:
    """ "RedisStore also takes a redis.cluster.RedisCluster client": in the
    place of its url (API.md: ``RedisStore(url, ...)``) or as ``client=``."""
    store = (
        RedisStore(client=cluster_client)  # type: ignore[arg-type]
        if passed == "client="
        else RedisStore(cluster_client)  # type: ignore[arg-type]
    )
    with SessionMiddleware(user_app, store) as middleware:
        devices = [webtest.TestApp(middleware) for _ in range(3)]
        for device in devices:
            device.get("/", {"login": USER})
        listed = middleware.user_sessions(USER)
        assert len(listed) == 3 and all(isinstance(s, UserSession) for s in listed)
        assert middleware.revoke_user_sessions(USER) == 3
        assert devices[0].get("/").text == "None None None"
        assert middleware.user_sessions(USER) == []


# -- session_key: "returns only a key whose record exists" ----------------------


def test_session_key_of_a_streamed_new_session_waits_for_its_save() -> None:
    """A streamed body's headers go out first, with the cookie of a key the
    new session reserved; its record is written after the last chunk. Read
    in between, session_key named a key the store did not know."""
    store = MemoryStore()
    seen: list[tuple[str | None, str | None]] = []

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        session = environ["wsgisession"]
        session["cart"] = "socks"
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"first chunk"
        key = session.session_key
        assert key is None or store.exists(key), "a key of no record"
        seen.append((key, session.handle))
        yield b"last chunk"

    client = webtest.TestApp(SessionMiddleware(app, store))
    client.get("/")
    assert seen == [(None, None)]
    key = client.cookies["sessionid"]
    assert store.exists(key), "the record is saved once the body ends"


# -- revoke_user_sessions: "every live session ..., returns how many" -----------


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_revocation_counts_live_sessions_only(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, frozen_clock: FakeClock
) -> None:
    """A session past absolute_timeout is no live session: not listed, and
    not in the count (the "signed out N devices" a page shows), though
    revoking still deletes its record. Its record outlives the timeout when
    the site set absolute_timeout after the session was saved."""
    store = build_store(kind, store_argument(kind, request, tmp_path))
    before = SessionMiddleware(user_app, store)  # no absolute_timeout yet
    old = before.open_session()
    old.bind_user(USER)
    frozen_clock.advance(3601)
    with SessionMiddleware(user_app, store, absolute_timeout=3600) as middleware:
        live = middleware.open_session()
        live.bind_user(USER)
        assert [s.handle for s in middleware.user_sessions(USER)] == [live.handle]
        assert middleware.revoke_user_sessions(USER) == 1
        assert middleware.user_sessions(USER) == []
        assert old.session_key is not None and not store.exists(old.session_key)


# -- names and signatures ------------------------------------------------------


def test_the_names_and_signatures_of_the_second_round() -> None:
    sql = inspect.signature(SQLStore).parameters
    assert next(iter(sql)) == "url_or_engine"
    assert sql["table"].kind is inspect.Parameter.KEYWORD_ONLY
    assert sql["table"].default == "wsgisession_sessions"
    keep = inspect.signature(SessionMiddleware.revoke_user_sessions).parameters["keep"]
    assert keep.kind is inspect.Parameter.KEYWORD_ONLY and keep.default is None
    one = inspect.signature(SessionMiddleware.revoke_user_session).parameters
    assert list(one) == ["self", "user_id", "handle"]
    names = [field.name for field in dataclasses.fields(UserSession)]
    assert names == ["handle", "created", "saved_at", "expires_at", "data"]


# -- close() and the context managers -------------------------------------------


class ClosingStore(MemoryStore):
    """A memory store that notes whether it was closed."""

    closed = False

    def close(self) -> None:
        self.closed = True
        super().close()


def test_the_middleware_is_a_context_manager_that_closes_its_store() -> None:
    store = ClosingStore()
    with SessionMiddleware(user_app, store) as middleware:
        assert isinstance(middleware, SessionMiddleware)
        assert not store.closed
    assert store.closed
    other = ClosingStore()
    SessionMiddleware(user_app, other).close()
    assert other.closed


def every_store(tmp_path: Path) -> list[Store]:
    """One store of each kind; none connects, so no server is needed."""
    return [
        MemoryStore(),
        FileStore(tmp_path / "files"),
        SQLiteStore(tmp_path / "db.sqlite3"),
        SQLStore(f"sqlite:///{tmp_path / 'sql.sqlite3'}"),
        MemcachedStore(["127.0.0.1:1"]),
        RedisStore("redis://127.0.0.1:1/0"),
        RedisStore("redis+cluster://127.0.0.1:1"),
        SignedCookieStore("k4d4de0a5c72713ef5fa0a488ce3d3f4"),
    ]


def test_every_store_has_close_and_is_a_context_manager(tmp_path: Path) -> None:
    for store in every_store(tmp_path):
        with store as entered:
            assert entered is store
        store.close()  # closing twice is no error


# -- SignedCookieStore and user sessions ------------------------------------------


def test_the_cookie_store_refuses_every_user_session_operation() -> None:
    middleware = SessionMiddleware(
        user_app, SignedCookieStore("seaf5bf2337958ea5df1b7e2da9d9a9e")
    )
    session = middleware.open_session()
    session["x"] = 1
    reason = "client-side session cannot be revoked without server-side state"
    calls = [
        lambda: session.bind_user(USER),
        lambda: middleware.user_sessions(USER),
        lambda: middleware.revoke_user_sessions(USER),
        lambda: middleware.revoke_user_session(USER, "a-handle"),
    ]
    for call in calls:
        with pytest.raises(NotImplementedError, match=reason):
            call()
