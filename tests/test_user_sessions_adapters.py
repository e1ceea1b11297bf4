"""A user's sessions through the Flask and Pyramid adapters.

The session objects pass ``bind_user``, ``user_id`` and ``handle`` through;
the middleware's listing and revocation are reached as
``current_app.extensions["wsgisession"]`` (Flask) and
``request.registry["wsgisession"]`` (Pyramid). One scenario runs on both:
two devices log in, the "your devices" page lists them, one signs the other
out, then a device is revoked by its handle.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import flask
import pytest
import webtest
from pyramid.config import Configurator
from pyramid.response import Response

from wsgisession import SessionMiddleware
from wsgisession.contrib.flask import init_app
from wsgisession.contrib.pyramid import make_wsgi_app
from wsgisession.stores import SQLiteStore


def devices_page(middleware: SessionMiddleware, session: Any) -> str:
    """Each device of the session's user: its user agent, and whether it is this one."""
    listed = middleware.user_sessions(session.user_id)
    return json.dumps([[s.data["agent"], s.handle == session.handle] for s in listed])


def flask_app(tmp_path: Path) -> Any:
    app = flask.Flask(__name__)

    def middleware() -> SessionMiddleware:
        return flask.current_app.extensions["wsgisession"]  # type: ignore[no-any-return]

    @app.post("/login")
    def login() -> str:
        flask.session["agent"] = flask.request.headers["User-Agent"]
        flask.session.bind_user(flask.request.form["user"])  # type: ignore[attr-defined]
        return "welcome"

    @app.get("/devices")
    def devices() -> str:
        return devices_page(middleware(), flask.session)

    @app.post("/revoke-others")
    def revoke_others() -> str:
        session: Any = flask.session
        return str(
            middleware().revoke_user_sessions(session.user_id, keep=session.handle)
        )

    @app.post("/revoke")
    def revoke() -> str:
        session: Any = flask.session
        handle = flask.request.form["handle"]
        return str(middleware().revoke_user_session(session.user_id, handle))

    @app.get("/whoami")
    def whoami() -> str:
        session: Any = flask.session
        return f"{session.user_id} {session.handle}"

    init_app(app, SQLiteStore(tmp_path / "flask.sqlite3"))
    return app


def pyramid_app(tmp_path: Path) -> Any:
    def middleware(request: Any) -> SessionMiddleware:
        return request.registry["wsgisession"]  # type: ignore[no-any-return]

    def login(request: Any) -> Response:
        request.session["agent"] = request.headers["User-Agent"]
        request.session.bind_user(request.POST["user"])
        return Response("welcome")

    def devices(request: Any) -> Response:
        return Response(devices_page(middleware(request), request.session))

    def revoke_others(request: Any) -> Response:
        session = request.session
        revoked = middleware(request).revoke_user_sessions(
            session.user_id, keep=session
        )
        return Response(str(revoked))

    def revoke(request: Any) -> Response:
        user, handle = request.session.user_id, request.POST["handle"]
        return Response(str(middleware(request).revoke_user_session(user, handle)))

    def whoami(request: Any) -> Response:
        return Response(f"{request.session.user_id} {request.session.handle}")

    settings = {
        "wsgisession.store": "sqlite",
        "wsgisession.sqlite_path": str(tmp_path / "pyramid.sqlite3"),
    }
    with Configurator(settings=settings) as config:
        config.include("wsgisession.contrib.pyramid")
        routes = [
            ("/login", login, "POST"),
            ("/devices", devices, "GET"),
            ("/revoke-others", revoke_others, "POST"),
            ("/revoke", revoke, "POST"),
            ("/whoami", whoami, "GET"),
        ]
        for path, view, method in routes:
            config.add_route(view.__name__, path)
            config.add_view(view, route_name=view.__name__, request_method=method)
        return make_wsgi_app(config)


@pytest.fixture(params=["flask", "pyramid"])
def make_client(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Callable[[str], webtest.TestApp]:
    app = (flask_app if request.param == "flask" else pyramid_app)(tmp_path)

    def device(agent: str) -> webtest.TestApp:
        client = webtest.TestApp(app)
        client.post("/login", {"user": "alice"}, headers={"User-Agent": agent})
        return client

    return device


def test_your_devices_and_sign_out_the_others(
    make_client: Callable[[str], webtest.TestApp],
) -> None:
    laptop, phone = make_client("laptop"), make_client("phone")
    user, handle = phone.get("/whoami").text.split(" ")
    assert user == "alice" and handle != "None"
    listed = json.loads(phone.get("/devices").text)
    assert sorted(listed) == [["laptop", False], ["phone", True]]
    assert phone.post("/revoke-others").text == "1"
    assert laptop.get("/whoami").text == "None None"
    assert json.loads(phone.get("/devices").text) == [["phone", True]]


def test_revoke_one_device_by_its_handle(
    make_client: Callable[[str], webtest.TestApp],
) -> None:
    laptop, phone = make_client("laptop"), make_client("phone")
    handle = laptop.get("/whoami").text.split(" ")[1]
    assert phone.post("/revoke", {"handle": handle}).text == "True"
    assert phone.post("/revoke", {"handle": handle}).text == "False"
    assert laptop.get("/whoami").text == "None None"
    assert phone.get("/whoami").text.startswith("alice ")
