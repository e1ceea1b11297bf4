"""Values other libraries sign with the same secret are no session cookies.

An app may (against the advice of docs/secrets.rst) give wsgisession's
cookie store the key it also gives Flask, itsdangerous or Pyramid. Their
signatures use other salts, key derivations and digests, so none of their
values verifies as a session, though each is shaped like one (the store
derives its key as HMAC-SHA256(secret, "wsgisession.cookie")).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable

import pytest
from flask import Flask
from itsdangerous import Signer, URLSafeSerializer, URLSafeTimedSerializer
from webob.cookies import SignedSerializer

from wsgisession.stores import SignedCookieStore

SECRET = "foreign-signatures-secret-7d1e0b94c25a3f68"
#: What each would carry: a logged-in user, and the record's own fields.
CLAIM = {"v": 1, "data": {"user": "admin"}, "created": 0, "expiry": None}


def flask_session(secret: str) -> str:
    app = Flask(__name__)
    app.secret_key = secret
    serializer = app.session_interface.get_signing_serializer(app)
    assert serializer is not None
    return serializer.dumps(CLAIM)


def itsdangerous_default(secret: str) -> str:
    return URLSafeSerializer(secret).dumps(CLAIM)


def itsdangerous_timed_with_our_salt(secret: str) -> str:
    return URLSafeTimedSerializer(secret, salt="wsgisession.cookie").dumps(CLAIM)


def itsdangerous_unsalted_sha256(secret: str) -> str:
    """HMAC-SHA256 with the secret itself as the key (no derivation)."""
    signer = Signer(secret, key_derivation="none", digest_method=hashlib.sha256)
    return signer.sign(URLSafeSerializer(secret).dump_payload(CLAIM)).decode()


def pyramid_session(secret: str) -> str:
    """Pyramid's SignedCookieSessionFactory's value (webob's serializer)."""
    signer = SignedSerializer(secret, "pyramid.session.", "sha512")
    return signer.dumps([0, 0, CLAIM]).decode()


@pytest.mark.parametrize(
    "sign",
    [
        flask_session,
        itsdangerous_default,
        itsdangerous_timed_with_our_salt,
        itsdangerous_unsalted_sha256,
        pyramid_session,
    ],
)
def test_a_value_signed_elsewhere_with_the_same_secret_is_refused(
    sign: Callable[[str], str], caplog: pytest.LogCaptureFixture
) -> None:
    store = SignedCookieStore(SECRET)
    value = sign(SECRET)
    assert store.is_valid_key(value)  # shaped like a value: the signature decides
    with caplog.at_level(logging.DEBUG, logger="wsgisession.stores.cookie"):
        assert store.load(value) is None
    reasons = [record.getMessage() for record in caplog.records]
    assert len(reasons) == 1 and "bad signature" in reasons[0]
