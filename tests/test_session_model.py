"""The session API over many requests, against a model (tests/session_model.py).

A hypothesis state machine sends requests through SessionMiddleware, each
running a few session operations (get, set, del, pop, setdefault, update,
clear, flush, cycle_key, set_expiry, a change in place, ``accessed =
False``, reads) and ending in a 2xx, 3xx, 4xx or 5xx response or an
exception; a second tab shares the cookie jar and runs a whole request in
the middle of another one; time moves on a fake clock. After every step
what the store holds must be what the model holds (no orphan record, the
same data and expiry), every read must answer as the model does, and every
response must set or delete the cookie exactly when the model says, with
the model's Max-Age and Expires.

The machine is in session_machine.py, shared with test_session_model_stores.py
(the stores left out here) and test_session_model_users.py (users).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import fake_clock
from hypothesis.stateful import run_state_machine_as_test
from session_machine import (
    MACHINE_SETTINGS,
    POLICIES,
    START,
    SessionMachine,
    local_store,
)

from wsgisession import SessionMiddleware
from wsgisession.stores import RedisStore
from wsgisession.stores.base import Store

#: Every policy on the memory store; the file and SQLite stores run only
#: in the full run (``slow``).
MODEL_CASES = [
    pytest.param(
        kind,
        policy,
        marks=[pytest.mark.slow] if kind != "memory" else [],
    )
    for kind in ("memory", "file", "sqlite")
    for policy in POLICIES
]


@pytest.mark.parametrize(("kind", "policy"), MODEL_CASES)
def test_session_model(kind: str, policy: str, tmp_path: Path) -> None:
    machine = type(
        "Machine",
        (SessionMachine,),
        {
            "make_store": staticmethod(local_store(kind, tmp_path)),
            "policy": POLICIES[policy],
        },
    )
    run_state_machine_as_test(machine, settings=MACHINE_SETTINGS)


@pytest.mark.slow  # a hypothesis run against a server
def test_session_model_redis(clean_redis) -> None:
    import redis

    def make() -> tuple[Store, str]:
        client = redis.Redis.from_url(clean_redis.url)
        try:
            client.flushdb()
        finally:
            client.close()
        return RedisStore(clean_redis.url), clean_redis.url

    machine = type("Machine", (SessionMachine,), {"make_store": staticmethod(make)})

    run_state_machine_as_test(machine, settings=MACHINE_SETTINGS)


@pytest.mark.parametrize("kind", ["memory", "file", "sqlite"])
def test_cycle_key_of_a_session_expired_at_once_while_another_tab_saved(
    kind: str, tmp_path: Path
) -> None:
    """``set_expiry(-10)`` then ``cycle_key()`` while another request saved
    the session: the session ends, as without that save, and no
    SessionInterrupted reaches the app (found by the model above)."""
    store, _ = local_store(kind, tmp_path)()
    with fake_clock(START), SessionMiddleware(lambda e, s: [], store) as middleware:
        session = middleware.open_session()
        session["a"] = 1
        session.save()
        old_key = session.session_key
        first = middleware.open_session(old_key)
        first.set_expiry(-10)
        second = middleware.open_session(old_key)
        second["b"] = 2
        second.save()
        first.cycle_key()  # raised SessionInterrupted
        new_key = first.session_key
        assert new_key is not None and new_key != old_key
        assert not store.exists(old_key) and not store.exists(new_key)
        assert dict(first) == {"a": 1, "b": 2}
