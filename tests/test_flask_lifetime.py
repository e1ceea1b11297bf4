"""``PERMANENT_SESSION_LIFETIME`` set by the app during a request, as Flask reads it.

Flask reads the lifetime when it saves the session, at the end of the
request. A well-known idiom sets it in a ``before_request`` function, next
to ``session.permanent = True``: the first request of each process changes
the setting while it runs, and its permanent session must get the new
lifetime, not the one in force when the request began, kept for good.
"""

from __future__ import annotations

import datetime

import pytest
from flask import Flask, session
from flask_support import login_app

from wsgisession.contrib.flask import init_app
from wsgisession.stores import MemoryStore

FIVE_MINUTES = datetime.timedelta(minutes=5)


def make_app(*, lifetime_first: bool) -> Flask:
    app = login_app(MemoryStore())

    @app.before_request
    def time_out_after_five_minutes() -> None:
        if lifetime_first:
            app.permanent_session_lifetime = FIVE_MINUTES
        session.permanent = True
        if not lifetime_first:
            app.permanent_session_lifetime = FIVE_MINUTES

    return app


@pytest.mark.parametrize("lifetime_first", [True, False])
def test_a_lifetime_set_during_the_first_request_is_the_one_saved(
    lifetime_first: bool,
) -> None:
    client = make_app(lifetime_first=lifetime_first).test_client()
    first = client.get("/login")
    assert "Max-Age=300;" in first.headers["Set-Cookie"]
    later = client.get("/whoami")  # SESSION_REFRESH_EACH_REQUEST re-saves it
    assert later.text == "'ada'"
    assert "Max-Age=300;" in later.headers["Set-Cookie"]


def test_a_session_cleared_after_permanent_stays_a_browser_session() -> None:
    """As in Flask, ``clear()`` ends permanence (Flask drops ``_permanent``)."""
    app = Flask(__name__)
    init_app(app, store=MemoryStore())

    @app.route("/")
    def index() -> str:
        session.permanent = True
        app.permanent_session_lifetime = FIVE_MINUTES
        session.clear()
        session["user"] = "ada"
        return repr(session.permanent)

    response = app.test_client().get("/")
    assert response.text == "False"
    assert "Max-Age" not in response.headers["Set-Cookie"]
