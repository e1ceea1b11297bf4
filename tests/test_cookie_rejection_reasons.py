"""The signed cookie store's rejection warnings, as an operator reads them.

A flood of one kind of bad cookie (forged, garbled: any client can send
them at will) must not hide for a minute or more the first WARNING of
another kind, which may be the operator's own problem: a secret key
rotated without the old one in the fallbacks (every user logged out), or a
clock that jumped ahead (every cookie expired). A value of the store's
own format whose signature fails is told apart from garbage.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Any

import pytest
import webtest
from helpers import FakeClock

from wsgisession import SessionMiddleware
from wsgisession.stores.base import now
from wsgisession.stores.cookie import SignedCookieStore

LOGGER = "wsgisession.stores.cookie"
SECRET = "current-secret-key-0123456789abcdef"
OLD_SECRET = "old-secret-key-fedcba9876543210-0123"
SIGNED_ELSEWHERE = "signed with a key this store does not have"
#: Forged cookies a client sends before the real problem shows (about 1 s
#: of a flood at 1,000 requests per second would be 1,000: 200 show it).
FLOOD = 200


def forged(rng: random.Random) -> str:
    """A cookie value shaped like the store's (base64, '.', base64), not signed."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    body = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 80)))
    signature = "".join(rng.choice(alphabet) for _ in range(43))
    return f"{body}.{signature}"


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == LOGGER and record.levelno == logging.WARNING
    ]


def flood(store: SignedCookieStore, count: int = FLOOD) -> None:
    rng = random.Random(0)
    for _ in range(count):
        assert store.load(forged(rng)) is None


def test_a_rotated_key_warns_during_a_flood_of_forged_cookies(
    caplog: pytest.LogCaptureFixture,
) -> None:
    old_value = SignedCookieStore(OLD_SECRET).create("", b"{}", now() + 3600)
    rotated = SignedCookieStore(SECRET)  # OLD_SECRET left out of the fallbacks
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        flood(rotated)
        assert rotated.load(old_value) is None
        assert rotated.load(old_value) is None
    warnings = warnings_of(caplog)
    assert len(warnings) == 2, warnings  # one for the flood, one for the key
    assert SIGNED_ELSEWHERE not in warnings[0]
    assert SIGNED_ELSEWHERE in warnings[1]
    assert "secret_key_fallbacks" in warnings[1]
    assert SECRET not in warnings[1] and OLD_SECRET not in warnings[1]


def test_a_clock_jump_warns_during_a_flood_of_forged_cookies(
    frozen_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    store = SignedCookieStore(SECRET)
    value = store.create("", b"{}", now() + 600)
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        flood(store)
        frozen_clock.advance(3600)  # the host's clock set an hour ahead
        assert store.load(value) is None
    warnings = warnings_of(caplog)
    assert len(warnings) == 2, warnings
    assert warnings[1].endswith("rejected a session cookie: expired")


def test_forged_values_are_not_taken_for_a_rotated_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = SignedCookieStore(SECRET)
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        flood(store, 2000)
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2000
    assert not [message for message in messages if SIGNED_ELSEWHERE in message]


def test_one_warning_a_minute_per_reason_through_the_middleware(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [repr(environ["wsgisession"].get("n")).encode()]

    old_value = SignedCookieStore(OLD_SECRET).create("", b"{}", now() + 3600)
    client = webtest.TestApp(SessionMiddleware(app, store=SignedCookieStore(SECRET)))
    rng = random.Random(1)
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        for turn in range(100):
            value = old_value if turn % 10 == 5 else forged(rng)
            client.set_cookie("sessionid", value)
            assert client.get("/").text == "None"
    warnings = warnings_of(caplog)
    assert len(warnings) == 2, warnings
    assert sum(SIGNED_ELSEWHERE in warning for warning in warnings) == 1
    rejected = [r for r in caplog.records if "rejected a session cookie" in r.message]
    assert len(rejected) == 100
