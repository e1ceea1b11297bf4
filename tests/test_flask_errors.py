"""The Flask adapter: a server error keeps none of the request's session changes."""

from __future__ import annotations

import pytest
from flask import Flask, abort, session
from flask_support import login_app

from wsgisession.stores import MemoryStore


def make_app() -> tuple[Flask, MemoryStore]:
    store = MemoryStore()
    app = login_app(store)

    @app.route("/abort")
    def abort_after_clear() -> str:
        session.clear()
        abort(500)

    @app.route("/raise")
    def raise_after_pop() -> str:
        session.pop("user")
        raise RuntimeError("the view failed")

    return app, store


@pytest.mark.parametrize("path", ["/abort", "/raise"])
def test_a_server_error_after_emptying_the_session_keeps_the_record(path: str) -> None:
    """docs/migrating.rst: "A server error saves nothing: a 5xx response the
    app renders (an error handler's page) keeps none of the request's session
    changes". Emptying the session and then failing must not delete the record."""
    app, store = make_app()
    client = app.test_client()
    assert client.get("/login").text == "in"
    response = client.get(path)
    assert response.status_code == 500
    assert len(store) == 1, "the 5xx deleted the session's record"
    assert "session=;" not in response.headers.get("Set-Cookie", "")
    assert client.get("/whoami").text == "'ada'"
