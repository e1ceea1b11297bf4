"""SignedCookieStore: a value of 4 KB cannot make a request inflate megabytes.

A deflated value of 4 KB can hold some 2.8 million characters of repeated
text. An app that keeps a client's text in the session (a draft, a search)
would sign such a value for a client that sends it once, and every later
request carrying that cookie would inflate and decode it (about 800 times
the work of an ordinary cookie). So a payload over ``MAX_PAYLOAD_SIZE`` is
never signed, and a value that inflates past it never loads.
"""

from __future__ import annotations

import base64
import logging
import struct
import zlib

import pytest
import webtest

from wsgisession import SessionMiddleware
from wsgisession.errors import SessionCookieTooLarge
from wsgisession.stores.base import now
from wsgisession.stores.cookie import MAX_PAYLOAD_SIZE, SignedCookieStore

SECRET = "current-secret-key-0123456789abcdef"


def deflated_value(store: SignedCookieStore, payload: bytes) -> str:
    """A value of ``payload`` deflated, signed by ``store``'s own key: what the
    store signed before it bounded payloads (or what a leaked key makes)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, -12)
    data = packer.compress(payload) + packer.flush()
    blob = struct.pack(">Bd", 2, now() + 3600) + data
    body = base64.urlsafe_b64encode(blob).rstrip(b"=")
    return store._signer.sign(body).decode("ascii")


def test_a_value_inflating_past_the_bound_is_refused(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = SignedCookieStore(SECRET)
    value = deflated_value(store, b"a" * (MAX_PAYLOAD_SIZE + 1))
    assert len(value) < 1000  # a small cookie
    with caplog.at_level(logging.DEBUG, logger="wsgisession.stores.cookie"):
        assert store.load(value) is None
    assert "inflates past" in caplog.text


def test_a_value_inflating_to_the_bound_loads() -> None:
    store = SignedCookieStore(SECRET)
    payload = b"a" * MAX_PAYLOAD_SIZE
    record = store.load(deflated_value(store, payload))
    assert record is not None and record.payload == payload


def test_a_payload_over_the_bound_is_never_signed() -> None:
    store = SignedCookieStore(SECRET)
    with pytest.raises(SessionCookieTooLarge) as info:
        store.create("", b"a" * (MAX_PAYLOAD_SIZE + 1), now() + 3600)
    assert info.value.limit == MAX_PAYLOAD_SIZE
    assert "before compression" in str(info.value)
    assert store.load(store.create("", b"a" * 60_000, now() + 3600)) is not None


def test_a_client_cannot_have_a_bomb_signed_through_the_app() -> None:
    def keeps_the_draft(environ, start_response):
        environ["wsgisession"]["draft"] = "a" * int(environ["QUERY_STRING"])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"kept"]

    app = webtest.TestApp(
        SessionMiddleware(keeps_the_draft, store=SignedCookieStore(SECRET))
    )
    assert app.get("/?1000").status_int == 200
    with pytest.raises(SessionCookieTooLarge):
        app.get("/?2000000")  # 2 MB of text: deflated, some 2.9 KB of cookie
