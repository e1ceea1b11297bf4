"""A revocation whose listing ran out of rounds missed a session moving to a
new key (memcached and Redis user indexes; the servers are real).

The listing (``_userentries.read_live``) reads the user's index, then the
records, and reads the index again while a record was missing and entries
appeared or were confirmed meanwhile: a ``cycle_key()`` confirms its new
entry before it deletes the old record, so the new record is caught by the
next read. After ``_ROUNDS`` reads again it returned its last view as it
was, unchecked: when a session changed keys between that view's index read
and its record reads, the old record read as missing, the new one was in
no view, and "sign out everywhere" finished without it. Busy devices
changing keys now and then give the listing a change in every round on a
loaded machine (test_user_sessions.py's in-flight tests, about 1 run in 5).

Here one device changes its key right after each of the revocation's index
reads: the hook pauses the revoking thread on a ``threading.Event`` while
the device thread's ``cycle_key()`` runs to its end.
"""

from __future__ import annotations

import threading

import pytest
from helpers import user_app

from wsgisession import SessionInterrupted, SessionMiddleware
from wsgisession.stores import MemcachedStore, RedisStore
from wsgisession.stores._userentries import _ROUNDS

USER = "alice@example.org"
#: Enough key changes to keep the listing busy for its every read (and more).
CYCLES = _ROUNDS + 1


class _Hooked:
    """A store that calls ``after_index_read`` after each read of a user index."""

    after_index_read = None

    def _index_read(self, command: str, name: str) -> bool:
        raise NotImplementedError

    def _call(self, command, name, *args, **kwargs):
        result = super()._call(command, name, *args, **kwargs)
        hook = self.after_index_read
        if hook is not None and self._index_read(command, name):
            hook()
        return result


class HookedMemcached(_Hooked, MemcachedStore):
    def _index_read(self, command: str, name: str) -> bool:
        return command == "get" and name.endswith(":user")


class HookedRedis(_Hooked, RedisStore):
    def _index_read(self, command: str, name: str) -> bool:
        return command == "zrange"


def _stores(kind: str, request: pytest.FixtureRequest):
    if kind == "memcached":
        servers = [request.getfixturevalue("clean_memcached").address]
        return HookedMemcached(servers), MemcachedStore(servers)
    if kind == "memcached-pool":
        spec = request.getfixturevalue("clean_memcached_pool").spec
        return HookedMemcached(spec), MemcachedStore(spec)
    if kind == "redis":
        url = request.getfixturevalue("clean_redis").url
        return HookedRedis(url), RedisStore(url)
    url = request.getfixturevalue("clean_redis_cluster").url
    return HookedRedis(url), RedisStore(url)


def _login(middleware: SessionMiddleware) -> str:
    session = middleware.open_session(None)
    session["n"] = 0
    session.bind_user(USER)
    assert session.session_key is not None
    return session.session_key


@pytest.mark.parametrize(
    "kind", ["memcached", "memcached-pool", "redis", "redis-cluster"]
)
def test_a_session_changing_keys_through_every_listing_round_is_revoked(
    kind: str, request: pytest.FixtureRequest
) -> None:
    hooked, plain = _stores(kind, request)
    with (
        SessionMiddleware(user_app, hooked) as site,
        SessionMiddleware(user_app, plain) as device_site,
    ):
        idle = _login(device_site)  # a second device, revoked as it should be
        keys = [_login(device_site)]  # the busy device: every key it had
        go, done, stop = threading.Event(), threading.Event(), threading.Event()
        cycles = 0

        def busy_device() -> None:
            while go.wait(10) and not stop.is_set():
                go.clear()
                try:
                    session = device_site.open_session(keys[-1])
                    if session.user_id is not None:  # not revoked (yet)
                        session.cycle_key()
                        assert session.session_key is not None
                        keys.append(session.session_key)
                except SessionInterrupted:
                    pass
                finally:
                    done.set()

        def after_index_read() -> None:
            nonlocal cycles
            if cycles < CYCLES:  # the device changes keys right now
                cycles += 1
                go.set()
                assert done.wait(10)
                done.clear()

        device = threading.Thread(target=busy_device, daemon=True)
        device.start()
        hooked.after_index_read = after_index_read
        try:
            revoked = site.revoke_user_sessions(USER)
        finally:
            hooked.after_index_read = None
            stop.set()
            go.set()
            device.join(timeout=30)
        assert revoked >= 1  # the idle device's session at least
        assert cycles >= 2  # the busy device changed keys during the listing
        assert site.user_sessions(USER) == []
        alive = [key for key in [idle, *keys] if plain.load(key) is not None]
        assert alive == []
