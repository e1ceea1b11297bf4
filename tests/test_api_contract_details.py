"""API.md read as an acceptance checker reads it, for the claims other tests
pinned only loosely: each option's default by what a request shows (other
tests read ``Settings``' field defaults, or pass the default explicitly), the
CLI's lookup of a bare section name, ``save()``'s SessionCookieTooLarge on a
server-side store, and the section 8 names as a user meets them.

Only the public API: ``wsgisession``, ``wsgisession.stores``, WebTest
requests and the CLI's ``main``.
"""

from __future__ import annotations

import inspect
import textwrap
import typing
from pathlib import Path
from typing import Any

import pytest
import webtest
from helpers import FakeClock, run_cli

import wsgisession
import wsgisession.stores
from wsgisession import SessionMiddleware, UserSession
from wsgisession.errors import SessionCookieTooLarge
from wsgisession.serializers import Serializer
from wsgisession.stores import FileStore, MemoryStore, SQLiteStore, SQLStore
from wsgisession.stores.base import Store

DAY = 86400


def session_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """``?write`` counts a visit, ``?read`` reads, ``?fail`` writes and
    renders a 500 itself; the body is the session's data."""
    session = environ["wsgisession"]
    action = environ.get("QUERY_STRING", "")
    if action in ("write", "fail"):
        session["visits"] = session.get("visits", 0) + 1
    elif action == "read":
        session.get("visits")
    status = "500 Internal Server Error" if action == "fail" else "200 OK"
    start_response(status, [("Content-Type", "text/plain")])
    return [repr(dict(session)).encode()]


def set_cookies(response: webtest.TestResponse) -> list[str]:
    return list(response.headers.getall("Set-Cookie"))


def attributes(header: str) -> dict[str, str]:
    """A Set-Cookie header's attributes, names lowered: {"path": "/", ...}."""
    pairs = (part.strip().partition("=") for part in header.split(";")[1:])
    return {name.lower(): value for name, _, value in pairs}


# -- section 1's defaults, as a response shows them ----------------------------


def test_a_new_sessions_cookie_shows_every_cookie_default() -> None:
    """cookie_name "sessionid", cookie_age 1209600, cookie_domain None
    (host-only), cookie_path "/", cookie_secure False (even over https),
    cookie_httponly True, cookie_samesite "Lax", cookie_partitioned False,
    expire_at_browser_close False, private_responses True, environ_key
    "wsgisession" (session_app reads it)."""
    browser = webtest.TestApp(SessionMiddleware(session_app, MemoryStore()))
    response = browser.get(
        "/?write", extra_environ={"wsgi.url_scheme": "https", "HTTP_HOST": "a.test"}
    )
    [header] = set_cookies(response)
    assert header.startswith("sessionid=")
    assert attributes(header) == {
        "expires": attributes(header)["expires"],
        "max-age": "1209600",
        "httponly": "",
        "path": "/",
        "samesite": "Lax",
    }
    assert response.headers["Cache-Control"] == "private"


def test_by_default_an_unchanged_session_is_never_saved_again(
    frozen_clock: FakeClock,
) -> None:
    """save_every_request False and reissue_time None: reading a non-empty
    session sends no cookie, however long after its save."""
    browser = webtest.TestApp(SessionMiddleware(session_app, MemoryStore()))
    browser.get("/?write")
    for _ in range(3):
        frozen_clock.advance(DAY)
        response = browser.get("/?read")
        assert response.text == "{'visits': 1}"
        assert set_cookies(response) == []


def test_by_default_an_active_session_lives_on_past_any_age(
    frozen_clock: FakeClock,
) -> None:
    """absolute_timeout None: a session written every 10 days lives for a
    year, each save moving its two-week expiry on."""
    browser = webtest.TestApp(SessionMiddleware(session_app, MemoryStore()))
    browser.get("/?write")
    for _ in range(36):
        frozen_clock.advance(10 * DAY)
        browser.get("/?write")
    assert browser.get("/?read").text == "{'visits': 37}"


def test_by_default_a_rendered_5xx_saves_nothing() -> None:
    """save_on_error False: the app's own 500 neither saves nor sets a cookie."""
    store = MemoryStore()
    browser = webtest.TestApp(SessionMiddleware(session_app, store))
    browser.get("/?write")
    assert set_cookies(browser.get("/?fail", status=500)) == []
    assert browser.get("/?read").text == "{'visits': 1}"


@pytest.mark.parametrize("kind", ["memory", "file", "sqlite"])
def test_by_default_sweeps_come_300_seconds_apart(
    kind: str, tmp_path: Path, frozen_clock: FakeClock
) -> None:
    """cleanup_interval 300: a save 299 s after the first sweep leaves the
    expired records (clear_expired still finds them), one 300 s after
    removes them."""
    for waited in (299, 300):
        store = make_store(kind, tmp_path / str(waited))
        wrapped = SessionMiddleware(session_app, store, cookie_age=1)
        for _ in range(3):  # the first save's sweep finds nothing yet
            webtest.TestApp(wrapped).get("/?write")
        frozen_clock.advance(waited)
        webtest.TestApp(wrapped).get("/?write")
        assert store.clear_expired() == (3 if waited == 299 else 0), waited


def make_store(kind: str, path: Path) -> Store:
    if kind == "memory":
        return MemoryStore()
    if kind == "file":
        return FileStore(path)
    path.mkdir()
    return SQLiteStore(path / "sessions.sqlite3")


def test_the_default_serializer_is_json_and_pickle_an_opt_in() -> None:
    """serializer "json": a value JSON cannot tag (a complex number) is
    refused at the save, which "pickle" stores."""
    by_default = SessionMiddleware(session_app, MemoryStore()).open_session()
    by_default["z"] = 1 + 2j
    with pytest.raises(TypeError, match="complex"):
        by_default.save()
    pickling = SessionMiddleware(session_app, MemoryStore(), serializer="pickle")
    session = pickling.open_session()
    session["z"] = 1 + 2j
    session.save()
    assert pickling.open_session(session.session_key)["z"] == 1 + 2j


# -- section 7: SessionCookieTooLarge from save() --------------------------------


def test_save_refuses_a_cookie_too_large_on_a_server_side_store() -> None:
    """ "SessionCookieTooLarge is raised by save() ... when the cookie would
    exceed 4093 bytes": with a server-side store too, whose cookie a long
    cookie_name makes too large (the app's save() returned, the record was
    written, and only the response raised)."""
    raised: list[BaseException] = []

    def saving_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        session = environ["wsgisession"]
        session["visits"] = 1
        try:
            session.save()
        except SessionCookieTooLarge as exc:
            raised.append(exc)
            session.clear()
        start_response("200 OK", [])
        return [b""]

    store = MemoryStore()
    wrapped = SessionMiddleware(saving_app, store, cookie_name="c" * 4040)
    webtest.TestApp(wrapped).get("/")
    assert len(raised) == 1 and raised[0].limit == 4093  # type: ignore[attr-defined]
    assert repr(store) == "MemoryStore(<0 records>)"
    session = wrapped.open_session()
    session["visits"] = 1
    with pytest.raises(SessionCookieTooLarge):
        session.save()


def test_the_middlewares_save_refuses_it_before_writing_too() -> None:
    """ "... (so by the middleware's save)": the save the middleware makes
    for an app that changed the session, without save(), must not write a
    record the response then cannot name (each such request left one for
    cookie_age, two weeks)."""

    def changing_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        environ["wsgisession"]["visits"] = 1
        start_response("200 OK", [])
        return [b""]

    store = MemoryStore()
    wrapped = SessionMiddleware(changing_app, store, cookie_name="c" * 4040)
    for _ in range(2):  # the first request's path, and the usual one
        with pytest.raises(SessionCookieTooLarge):
            webtest.TestApp(wrapped).get("/")
    assert repr(store) == "MemoryStore(<0 records>)"


# -- section 6: a bare section name ------------------------------------------------


def test_a_bare_section_name_is_a_filter_section_before_an_app_section(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """``app.ini#session`` is ``filter:session`` when both exist, else
    ``app:session``."""
    path = tmp_path / "app.ini"
    app_section = """
        [app:session]
        use = egg:myapp
        wsgisession.store = memory
        wsgisession.cookie_age = 61
    """
    filter_section = """
        [filter:session]
        use = egg:wsgisession#session
        store = memory
        cookie_age = 62
    """
    path.write_text(textwrap.dedent(app_section + filter_section))
    status, out, _ = run_cli(capsys, "check", "--config", f"{path}#session")
    assert status == 0 and "cookie_age=62," in out
    path.write_text(textwrap.dedent(app_section))
    status, out, _ = run_cli(capsys, "check", "--config", f"{path}#session")
    assert status == 0 and "cookie_age=61," in out


# -- section 8's names as a user meets them ------------------------------------------


SECTION_8_METHODS = [
    SessionMiddleware.user_sessions,
    SessionMiddleware.revoke_user_sessions,
    SessionMiddleware.revoke_user_session,
    SessionMiddleware.close,
    wsgisession.Session.bind_user,
    SQLStore.close,
    MemoryStore.close,
]


def test_section_8_names_are_exported_documented_and_typed() -> None:
    assert "UserSession" in wsgisession.__all__
    assert "SQLStore" in wsgisession.stores.__all__
    for method in SECTION_8_METHODS:
        assert inspect.getdoc(method), method
        assert "return" in typing.get_type_hints(method), method
    for name in ("user_id", "handle", "session_key"):
        prop = getattr(wsgisession.Session, name)
        assert isinstance(prop, property) and prop.fget.__doc__, name
        assert "return" in typing.get_type_hints(prop.fget), name
    for cls in (UserSession, SQLStore, SessionMiddleware):
        assert cls.__doc__ and cls.__repr__ is not object.__repr__, cls


def test_section_8_objects_show_what_they_are_in_their_repr(tmp_path: Path) -> None:
    with SQLStore(f"sqlite:///{tmp_path}/s.sqlite3") as store:
        assert repr(store).startswith("SQLStore(sqlite:///")
        with SessionMiddleware(session_app, MemoryStore()) as wrapped:
            session = wrapped.open_session()
            session["visits"] = 1
            session.bind_user(7)
            [listed] = wrapped.user_sessions(7)
            assert repr(listed).startswith(f"UserSession(handle={session.handle!r}")
            assert session.session_key not in repr(listed)


def test_a_serializer_may_name_its_parameters_as_it_likes() -> None:
    """pyright matches a protocol's parameter names: ``loads(self, raw)``,
    or the ``pickle`` module (positional-only), only satisfy ``Serializer``
    if its parameters are positional-only (wsgisession never passes them
    by name)."""
    for method in (Serializer.dumps, Serializer.loads):
        kinds = [
            parameter.kind
            for name, parameter in inspect.signature(method).parameters.items()
            if name != "self"
        ]
        assert kinds == [inspect.Parameter.POSITIONAL_ONLY], method
