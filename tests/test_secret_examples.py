"""Secret keys printed in the documentation are public: they are refused.

A reader who copies the key ``docs/secrets.rst`` shows as the output of
``secrets.token_urlsafe(32)``, or a placeholder an example passes to
``SignedCookieStore``, signs every session with a key that anyone can read,
and so forge a cookie for any user with any content.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import webtest

from wsgisession import SessionMiddleware, make_middleware
from wsgisession.errors import ConfigError
from wsgisession.stores import SignedCookieStore

DOCS = Path(__file__).resolve().parent.parent / "docs"
GOOD = "a2V5LW9mLW15LW93bi1tYWRlLXdpdGgtc2VjcmV0cw"
#: The keys the pages showed, each with the page that showed it.
SHOWN = {
    "3q0D0f7bVn2mX5Hc9kTzqL1rWc8yP4sA6eJtU0hZgGk": "secrets.rst",
    "a long random secret from your secret store": "stores.rst",
    "the previous secret, while rotating": "stores.rst",
    "a-long-random-secret-of-32-bytes-or-more": "configuration.rst",
}


def app(environ, start_response):
    environ["wsgisession"]["user"] = "ann"
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


@pytest.mark.parametrize("key", SHOWN)
def test_a_key_shown_in_the_docs_is_refused_as_the_key(key: str) -> None:
    with pytest.raises(ConfigError, match="documentation") as raised:
        SignedCookieStore(key)
    assert key not in str(raised.value)


@pytest.mark.parametrize("key", SHOWN)
def test_a_key_shown_in_the_docs_is_refused_as_a_fallback(key: str) -> None:
    with pytest.raises(ConfigError, match="fallbacks") as raised:
        SignedCookieStore(GOOD, fallbacks=[key])
    assert key not in str(raised.value)


@pytest.mark.parametrize("key", SHOWN)
def test_an_ini_section_with_a_key_shown_in_the_docs_fails_at_startup(
    key: str,
) -> None:
    for settings in (
        {"store": "cookie", "secret_key": key},
        {"store": "cookie", "secret_key": GOOD, "secret_key_fallbacks": key},
    ):
        with pytest.raises(ConfigError) as raised:
            make_middleware(app, settings, prefix="")
        assert key not in str(raised.value)


def test_the_docs_no_longer_pass_a_literal_key_to_the_store() -> None:
    """The examples that did now take the key from where it is kept; only
    the sample output of ``token_urlsafe(32)`` still shows one."""
    pages = {page: (DOCS / page).read_text(encoding="utf-8") for page in SHOWN.values()}
    for key, page in SHOWN.items():
        if key in pages[page]:
            assert page == "secrets.rst", f"docs/{page} still shows {key!r}"


def test_a_good_key_still_signs_sessions() -> None:
    client = webtest.TestApp(SessionMiddleware(app, store=SignedCookieStore(GOOD)))
    assert client.get("/").headers["Set-Cookie"].startswith("sessionid=")
