"""What the middleware refuses at startup: the pickle module as the
serializer of a client-side store, something other than a Settings in
``use_settings()``, and an app that is not callable (a store passed in the
app's place)."""

from __future__ import annotations

import pickle

import pytest

from wsgisession import SessionMiddleware
from wsgisession.config import Settings
from wsgisession.errors import ConfigError
from wsgisession.stores import MemoryStore, SignedCookieStore

SECRET = "sd091f2afe988afd4cea4181b84eaaf780749aed"


def hello(environ, start_response):
    environ["wsgisession"]["user"] = "ann"
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


# -- the pickle module is refused with a client-side store, as 'pickle' is


def test_pickle_module_as_serializer_is_refused_with_the_cookie_store():
    # serializer="pickle" is refused with SignedCookieStore (API.md section 7);
    # the stdlib module itself is an object with dumps() -> bytes and
    # loads(bytes): it was taken as a custom serializer, and the server
    # unpickled what clients sent.
    with pytest.raises(ConfigError, match="pickle"):
        SessionMiddleware(hello, store=SignedCookieStore(SECRET), serializer=pickle)


def test_pickle_module_refused_by_use_settings_too():
    middleware = SessionMiddleware(hello, store=SignedCookieStore(SECRET))
    before = middleware.settings
    with pytest.raises(ConfigError, match="pickle"):
        middleware.use_settings(Settings(serializer=pickle))
    assert middleware.settings is before


def test_pickle_module_still_allowed_on_a_server_side_store():
    middleware = SessionMiddleware(hello, store=MemoryStore(), serializer=pickle)
    session = middleware.open_session()
    session["a"] = {1, 2}
    session.save()
    assert middleware.open_session(session.session_key)["a"] == {1, 2}


# -- use_settings() with something that is not a Settings


@pytest.mark.parametrize("bad", [None, {"cookie_age": 60}])
def test_use_settings_refuses_a_non_settings_with_config_error(bad):
    middleware = SessionMiddleware(hello, store=MemoryStore())
    before = middleware.settings
    with pytest.raises(ConfigError, match="Settings"):
        middleware.use_settings(bad)
    assert middleware.settings is before


# -- an app that is not callable


def test_a_store_passed_as_the_app_is_refused(tmp_path):
    # SessionMiddleware(MemoryStore()) silently used the store as the app and
    # opened the default SQLite store instead; the first request then failed
    # with "TypeError: 'MemoryStore' object is not callable".
    with pytest.raises(ConfigError, match="app"):
        SessionMiddleware(MemoryStore())


def test_a_non_callable_app_is_refused():
    with pytest.raises(ConfigError, match="app"):
        SessionMiddleware(None, store=MemoryStore())
