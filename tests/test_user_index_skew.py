"""A login's index entry pruned by an app server whose clock is ahead (by
PENDING_GRACE or more) is put back by the login's confirmation: a live
bound session is never missing from its user's index.

A login writes its entry with the writer's clock (pending since T), then
the record, then confirms the entry. A listing on another host, whose clock
reads T + 61 s, takes the entry for an abandoned login and prunes it while
the record is on its way. Redis confirmed with ``ZADD XX`` and memcached's
``_confirm`` skipped a missing entry, so the session stayed out of the
index: on Redis "sign out everywhere" missed it; on memcached the user's
fresh login loaded as revoked. The confirmation now writes the entry again. Time is moved with wsgisession.clock.use (the
library's own test hook); the servers are real.
"""

from __future__ import annotations

import threading
import time

import pytest

from wsgisession import clock
from wsgisession.keys import storage_key
from wsgisession.stores import MemcachedStore, RedisStore
from wsgisession.stores.base import PENDING_GRACE, generate_key

USER = "alice@example.org"
SKEW = PENDING_GRACE + 1  # host B's clock is this far ahead of host A's


def _store(kind, request):
    if kind == "redis":
        return RedisStore(request.getfixturevalue("clean_redis").url)
    if kind == "redis-cluster":
        return RedisStore(request.getfixturevalue("clean_redis_cluster").url)
    if kind == "memcached":
        return MemcachedStore([request.getfixturevalue("clean_memcached").address])
    return MemcachedStore(request.getfixturevalue("clean_memcached_pool").spec)


def _pending(store, user: str, member: str) -> bool:
    """Whether the user's index holds ``member`` as pending (login in progress)."""
    if isinstance(store, RedisStore):
        score = store._call("zscore", store._users.key(user), member)
        return bool(score)
    from wsgisession.stores._memcached_users import parse

    return bool(parse(store._call("get", store._users.key(user))).get(member))


@pytest.mark.parametrize(
    "kind", ["redis", "redis-cluster", "memcached", "memcached-pool"]
)
def test_a_login_listed_by_a_host_with_a_later_clock_stays_indexed(
    kind: str, request: pytest.FixtureRequest
) -> None:
    host_a, host_b = _store(kind, request), _store(kind, request)
    key = generate_key()
    member = storage_key(key)
    state = threading.local()
    listed: list[object] = []

    def two_hosts() -> float:
        if getattr(state, "on_b", False):
            return time.time()  # host B
        if not listed and _pending(host_a, USER, member):
            # Host A has written its pending entry, not yet the record:
            # host B lists the user's sessions now.
            state.on_b = True
            try:
                listed.append(host_b.user_session_records(USER))
            finally:
                state.on_b = False
        return time.time() - SKEW  # host A

    with clock.use(two_hosts):
        expires = clock.now() + 3600
        assert host_a.create_user_session(USER, key, b"payload", expires) == key
    assert listed == [{}]  # B listed while the login was in progress
    assert host_a.load(key) is not None  # the session is live
    assert member in host_a.user_session_records(USER)  # and revocable
    assert host_a.user_index_intact(USER, key)
