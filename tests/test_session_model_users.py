"""The session model (test_session_model.py) with users: ``bind_user()`` among
a request's operations (so ``cycle_key()``, ``clear()`` and ``flush()`` of a
bound session too), and between requests the middleware's
``user_sessions()``, ``revoke_user_session()`` and
``revoke_user_sessions(keep=)``, on every store that keeps user sessions.

The model tracks each stored session's owner (docs/user_sessions.rst): a
listing holds the user's live sessions, the most recently saved first; a
revocation deletes them (all but ``keep``) and says how many; a revoked
session's next request finds an empty session and its cookie deleted, and
a request of it in flight cannot bring it back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import rule, run_state_machine_as_test
from model_stores import SERVER_KINDS, machine_settings, server_store
from session_machine import (
    ENDINGS,
    OPS,
    SessionMachine,
    local_store,
)
from session_model import Jar, ModelRequest, Stored

from wsgisession.errors import SessionInterrupted
from wsgisession.stores.base import storage_key
from wsgisession.usersessions import handle_of, user_key

USERS = st.sampled_from(["alice", "bob", 7])
USER_SCRIPTS = st.lists(OPS | st.tuples(st.just("bind"), USERS), max_size=4)
#: Whom a revocation keeps: no one, the browser's session, or the first
#: listed session of the user (by handle).
KEEPS = st.sampled_from([None, "browser", "handle"])


def handle_of_key(session_key: str) -> str:
    """The handle a listing gives the session of ``session_key``."""
    return handle_of(storage_key(session_key))


class UserSessionMachine(SessionMachine):
    """The session model with owners, logins, listings and revocations, and
    three browsers, so that a user has several sessions."""

    def __init__(self) -> None:
        super().__init__()
        self.jars, self.browser = [self.jar, Jar(), Jar()], 0

    def run_op(self, op: tuple, session: Any, model: ModelRequest) -> None:
        if op[0] != "bind":
            super().run_op(op, session, model)
            return
        user = user_key(op[1])
        try:
            session.bind_user(op[1])
        except SessionInterrupted:
            with pytest.raises(SessionInterrupted):
                model.bind_user(user, None)
            raise
        model.bind_user(user, session.session_key)
        assert session.user_id == user
        self.census.seen.add(session.session_key)

    def live_sessions(self, user: str | None = None) -> dict[str, Stored]:
        """handle -> stored session, of every live session of ``user`` (or of
        everyone, ``user`` None), as the model has them."""
        probe = ModelRequest(self.model, None, self.clock.now, self.policy)
        return {
            handle_of_key(key): stored
            for key in sorted(self.model)
            if (stored := probe.live(key)) is not None
            and (user is None or stored.owner == user)
        }

    def revoke_in_model(self, user: str, keep: str | None) -> int:
        """Delete the model's records of ``user`` but ``keep`` (a handle)."""
        gone = [
            key
            for key, stored in self.model.items()
            if stored.owner == user and handle_of_key(key) != keep
        ]
        live = self.live_sessions(user)
        for key in gone:
            del self.model[key]
        return sum(handle_of_key(key) in live for key in gone)

    @rule(ops=USER_SCRIPTS, status=ENDINGS)
    def request_with_logins(self, ops: list[tuple], status: str | None) -> None:
        self.request(ops, status)

    @rule(
        before=USER_SCRIPTS.filter(bool),
        other=USER_SCRIPTS,
        other_status=ENDINGS,
        after=USER_SCRIPTS,
        status=ENDINGS,
    )
    def two_tabs_with_logins(self, before, other, other_status, after, status) -> None:
        self.request([*before, ("tab2", other, other_status), *after], status)

    @rule(user=USERS)
    def login(self, user: str | int) -> None:
        self.request([("bind", user)], "302 Found")

    @rule(browser=st.integers(0, 2))
    def switch_browser(self, browser: int) -> None:
        """Another browser (its own cookie jar) makes the next requests."""
        self.jars[self.browser] = self.jar
        self.browser, self.jar = browser, self.jars[browser]

    @rule(user=USERS)
    def list_sessions(self, user: str | int) -> None:
        expected = self.live_sessions(user_key(user))
        listed = self.middleware.user_sessions(user)
        assert {s.handle for s in listed} == set(expected), (listed, expected)
        saved = [s.saved_at for s in listed]
        assert saved == sorted(saved, reverse=True), listed
        for entry in listed:
            stored = expected[entry.handle]
            assert dict(entry.data) == stored.data, (entry, stored)
            assert abs(entry.created - stored.created) < 1e-3, (entry, stored)
            assert abs(entry.saved_at - stored.saved_at) < 1e-3, (entry, stored)
            assert abs(entry.expires_at - stored.expires_at) < 1e-3, (entry, stored)

    @rule(user=USERS, pick=st.integers(0, 7))
    def revoke_one(self, user: str | int, pick: int) -> None:
        """One session by handle: the user's, another user's, an unbound one,
        or a handle that names nothing."""
        handles = [*self.live_sessions(), handle_of_key("x" * 32)]
        handle = handles[pick % len(handles)]
        owned = handle in self.live_sessions(user_key(user))
        assert self.middleware.revoke_user_session(user, handle) == owned
        if owned:
            key = next(k for k in self.model if handle_of_key(k) == handle)
            del self.model[key]

    @rule(user=USERS, keep=KEEPS)
    def revoke_all(self, user: str | int, keep: str | None) -> None:
        kept: Any = None
        kept_handle = None
        if keep == "handle" and (mine := self.live_sessions(user_key(user))):
            kept = kept_handle = next(iter(mine))
        elif keep == "browser" and self.jar.value is not None:
            kept = self.middleware.open_session(self.jar.value)
            kept_handle = kept.handle
        count = self.middleware.revoke_user_sessions(user, keep=kept)
        assert count == self.revoke_in_model(user_key(user), kept_handle)


def run_user_machine(kind: str, make: Any) -> None:
    machine = type("Machine", (UserSessionMachine,), {"make_store": staticmethod(make)})
    run_state_machine_as_test(machine, settings=machine_settings(kind))


@pytest.mark.parametrize(
    "kind",
    ["memory", pytest.param("file", marks=pytest.mark.slow)]
    + [pytest.param("sqlite", marks=pytest.mark.slow)],
)
def test_user_session_model_local(kind: str, tmp_path: Path) -> None:
    run_user_machine(kind, local_store(kind, tmp_path))


@pytest.mark.slow  # a hypothesis run against servers
@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_user_session_model_servers(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    run_user_machine(kind, server_store(kind, request, tmp_path))
