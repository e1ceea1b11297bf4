"""A request pyramid_retry runs again: the next attempt sends the cookie of
what the failed one wrote to the store at once.

``cycle_key()`` and ``bind_user()`` move the session to a new key at once
(docs/quickstart: "what they did stays when the attempt is run again"), and
``save()`` writes at once too. The next attempt starts from the stored
session, without the failed attempt's other changes; if it changes nothing
more, its response must still tell the client where the session now is,
with the cookie's lifetime.
"""

from __future__ import annotations

from typing import Any

import pytest
import session_flows as flows
import webtest
from pyramid.response import Response
from test_pyramid import Conflict, retrying_app


def visit(request: Any) -> Response:
    request.session["visits"] = request.session.get("visits", 0) + 1
    return Response("ok")


def show(request: Any) -> Response:
    session = request.session
    return Response(repr((dict(session), session.user_id)))


@pytest.mark.parametrize("move", ["cycle_key", "bind_user"])
def test_a_key_moved_by_a_failed_attempt_reaches_the_client(move: str) -> None:
    """Attempt 1 elevates the session and moves its key (the old record is
    deleted), then conflicts; attempt 2 finds it elevated and changes
    nothing. Its response sent no cookie: the client kept the deleted key,
    and the elevated session was lost (an empty one, logged out)."""
    attempts: list[int] = []

    def elevate(request: Any) -> Response:
        attempts.append(1)
        session = request.session
        if not session.get("elevated"):
            session["elevated"] = True
            if move == "bind_user":
                session.bind_user("42")
            else:
                session.cycle_key()
        if len(attempts) == 1:
            raise Conflict()
        return Response("ok")

    app = retrying_app(
        {"wsgisession.store": "memory"}, visit=visit, elevate=elevate, show=show
    )
    client = webtest.TestApp(app)
    old_key = flows.cookie_value(client.get("/visit"))
    response = client.get("/elevate")
    assert len(attempts) == 2
    new_key = flows.cookie_value(response)
    assert new_key != old_key and not app.store.exists(old_key)
    assert "Max-Age=1209600" in flows.session_cookie(response)
    user = "42" if move == "bind_user" else None
    assert client.get("/show").text == repr(({"visits": 1, "elevated": True}, user))


@pytest.mark.parametrize("existing", [False, True], ids=["new", "existing"])
def test_a_save_by_a_failed_attempt_keeps_the_cookies_lifetime(existing: bool) -> None:
    """Attempt 1 saves the session itself, then conflicts; attempt 2 only
    reads it. Its cookie went out without Max-Age and Expires: the login
    became a cookie the browser drops when it closes."""
    attempts: list[int] = []

    def checkout(request: Any) -> Response:
        attempts.append(1)
        session = request.session
        if len(attempts) == 1:
            session["order"] = 7
            session.wsgisession.save()  # written at once, as a login may
            raise Conflict()
        return Response(repr(session.get("order")))

    app = retrying_app(
        {"wsgisession.store": "memory"}, visit=visit, checkout=checkout, show=show
    )
    client = webtest.TestApp(app)
    if existing:
        client.get("/visit")
    response = client.get("/checkout")
    assert response.text == "7" and len(attempts) == 2
    flows.assert_cookie_attributes(flows.session_cookie(response), ["Max-Age=1209600"])
    assert "'order': 7" in client.get("/show").text


def test_an_attempt_that_never_used_the_session_keeps_the_key_move() -> None:
    """Attempt 1 moves the key, attempt 2 conflicts before it uses the
    session (a tween, a query), attempt 3 changes nothing: the discard of
    attempt 2's (unused) session forgot both the moved key, so no cookie
    went out, and the key to load, so attempt 3 found an empty session."""
    attempts: list[int] = []

    def elevate(request: Any) -> Response:
        attempts.append(1)
        if len(attempts) == 2:
            raise Conflict()
        session = request.session
        if not session.get("elevated"):
            session["elevated"] = True
            session.cycle_key()
        if len(attempts) == 1:
            raise Conflict()
        return Response(repr(dict(session)))

    app = retrying_app({"wsgisession.store": "memory"}, visit=visit, elevate=elevate)
    client = webtest.TestApp(app)
    old_key = flows.cookie_value(client.get("/visit"))
    response = client.get("/elevate")
    assert len(attempts) == 3
    assert response.text == repr({"visits": 1, "elevated": True})
    new_key = flows.cookie_value(response)
    assert new_key != old_key and not app.store.exists(old_key)
    assert client.get("/visit").text == "ok"
    assert app.open_session(client.cookies["sessionid"])["visits"] == 2
