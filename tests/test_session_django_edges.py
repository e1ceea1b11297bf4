"""Django's session semantics at their edges: a value changed in place into
one the serializer refuses, a ``cycle_key()`` racing a logout, the expiry
getters' ``expiry=``, ``has_key()`` and Django's methods on the Flask and
Pyramid sessions."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from pathlib import Path
from typing import Any

import flask
import pytest
import webtest
from helpers import make_store
from pyramid.config import Configurator
from pyramid.response import Response

from wsgisession import SessionMiddleware
from wsgisession.contrib.flask import init_app
from wsgisession.contrib.pyramid import make_wsgi_app
from wsgisession.errors import SessionInterrupted, UnserializableValue
from wsgisession.session import Session
from wsgisession.stores import MemoryStore


def _app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


@pytest.fixture(params=["memory", "file", "sqlite"])
def middleware(request, tmp_path: Path) -> SessionMiddleware:
    return SessionMiddleware(_app, store=make_store(request.param, tmp_path))


def stored(middleware: SessionMiddleware, **data: object) -> str:
    session = middleware.open_session()
    session.update(data)
    session.save()
    assert session.session_key is not None
    return session.session_key


# -- a change in place the serializer refuses names its key, as an assignment does

REFUSED = {
    "object": object(),
    "lone surrogate": "\ud800",
    "int over 4300 digits": 10**5000,
}

SAVES: dict[str, Callable[[Session], None]] = {
    "save": Session.save,
    "cycle_key": Session.cycle_key,
}


@pytest.mark.parametrize("value", REFUSED.values(), ids=REFUSED.keys())
@pytest.mark.parametrize("save", SAVES.values(), ids=SAVES.keys())
def test_a_value_changed_in_place_into_a_refused_one_raises_unserializable_value(
    middleware: SessionMiddleware, value: object, save: Callable[[Session], None]
) -> None:
    """docs/session.rst: a value the serializer refuses makes the save raise
    UnserializableValue naming its key. ``session["notes"].append(x)`` with x
    from a request (a JSON body may hold "\\ud800") raised a bare TypeError,
    UnicodeEncodeError or ValueError from the change detection instead."""
    key = stored(middleware, notes=["first"], user="ann")
    session = middleware.open_session(key)
    session["notes"].append(value)
    with pytest.raises(UnserializableValue) as info:
        save(session)
    assert info.value.key == "notes"
    assert dict(middleware.open_session(key)) == {"notes": ["first"], "user": "ann"}


# -- a cycle_key() in flight cannot bring back a session logged out meanwhile


def test_cycle_key_in_flight_cannot_resurrect_a_session_deleted_meanwhile(
    middleware: SessionMiddleware,
) -> None:
    """docs/session.rst: a session deleted by another request (a logout in
    another tab) is not brought back by this request's save. A cycle_key()
    (a login, a step-up) stored the logged-out data under a new key and
    sent its cookie: the user stayed logged in after logging out."""
    key = stored(middleware, user_id=42)
    in_flight = middleware.open_session(key)
    in_flight.load()
    middleware.open_session(key).flush()  # the user logs out in another tab
    with pytest.raises(SessionInterrupted):
        in_flight.cycle_key()
    assert in_flight.session_key is None
    assert dict(in_flight) == {}
    store = middleware.store
    if isinstance(store, MemoryStore):
        assert store._records == {}, "the data was stored under a new key"


def test_cycle_key_still_moves_a_live_session(middleware: SessionMiddleware) -> None:
    key = stored(middleware, user_id=42)
    session = middleware.open_session(key)
    session.cycle_key()
    assert session.session_key not in (None, key)
    assert not middleware.store.exists(key)
    assert dict(middleware.open_session(session.session_key)) == {"user_id": 42}


# -- expiry=: any value set_expiry() takes, read alike by both getters

MOMENT = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
HOUR = datetime.timedelta(hours=1)


def test_the_expiry_getters_read_a_timedelta_as_set_expiry_does(
    middleware: SessionMiddleware,
) -> None:
    """docs/session.rst: ``expiry=`` asks about another setting, and
    set_expiry() takes a timedelta. get_expiry_date(expiry=timedelta(hours=1))
    answered the default two weeks, and get_expiry_age() raised TypeError."""
    session = middleware.open_session()
    assert session.get_expiry_date(modification=MOMENT, expiry=HOUR) == MOMENT + HOUR
    assert session.get_expiry_age(modification=MOMENT, expiry=HOUR) == 3600
    assert session.get_expiry_age(modification=MOMENT, expiry=-HOUR) == -3600
    assert not session.accessed, "expiry= must not load the session"


@pytest.mark.parametrize(
    "value", [3600.0, b"3600", object()], ids=["float", "bytes", "object"]
)
def test_the_expiry_getters_refuse_what_no_setting_is(
    middleware: SessionMiddleware, value: object
) -> None:
    """get_expiry_date(expiry=3600.0) answered ``modification`` plus the
    default two weeks, silently, where get_expiry_age() raised TypeError."""
    session = middleware.open_session()
    for getter in (session.get_expiry_age, session.get_expiry_date):
        with pytest.raises(TypeError, match="unusable expiry"):
            getter(modification=MOMENT, expiry=value)


# -- has_key(), which Django's sessions still have


def test_has_key_answers_as_in_does(middleware: SessionMiddleware) -> None:
    """Django 5.2's SessionBase.has_key(k) is ``k in session``; recorded on
    a saved session: has_key("cart") True, has_key("user") False, then
    accessed True, modified False. It raised AttributeError."""
    session = middleware.open_session(stored(middleware, cart=["book"]))
    assert session.has_key("cart") is True
    assert session.has_key("user") is False
    assert (session.accessed, session.modified) == (True, False)


# -- the Flask and Pyramid sessions pass Django's methods through


def django_methods(session: Any) -> str:
    """One request: the test cookie of the previous one, then Django's getters."""
    worked = session.test_cookie_worked()
    if worked:
        session.delete_test_cookie()
    else:
        session.set_test_cookie()
    return " ".join(
        str(answer)
        for answer in (
            worked,
            session.get_session_cookie_age(),
            session.get_expiry_age(expiry=60),
            session.get_expiry_date(modification=MOMENT, expiry=HOUR) == MOMENT + HOUR,
        )
    )


def flask_client(tmp_path: Path) -> webtest.TestApp:
    app = flask.Flask(__name__)
    init_app(app, store=make_store("memory", tmp_path), cookie_age=3600)

    @app.get("/")
    def view() -> str:
        return django_methods(flask.session)

    return webtest.TestApp(app)


def pyramid_client(tmp_path: Path) -> webtest.TestApp:
    settings = {"wsgisession.store": "memory", "wsgisession.cookie_age": "3600"}
    with Configurator(settings=settings) as config:
        config.include("wsgisession.contrib.pyramid")
        config.add_route("view", "/")
        config.add_view(
            lambda request: Response(django_methods(request.session)), route_name="view"
        )
    return webtest.TestApp(make_wsgi_app(config))


@pytest.mark.parametrize("client", [flask_client, pyramid_client])
def test_the_framework_sessions_have_djangos_methods(
    client: Callable[[Path], webtest.TestApp], tmp_path: Path
) -> None:
    """docs/quickstart.rst: ``request.session`` is Pyramid's ISession "plus
    Django's methods", and flask.session has them too. The test cookie and
    get_session_cookie_age() raised AttributeError, and ``expiry=`` or
    ``modification=`` TypeError."""
    browser = client(tmp_path)
    assert browser.get("/").text == "False 3600 60 True"
    assert browser.get("/").text == "True 3600 60 True"
    assert browser.get("/").text == "False 3600 60 True"
