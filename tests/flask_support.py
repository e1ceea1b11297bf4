"""A Flask app wrapped by wsgisession whose views log "ada" in and say who is in."""

from __future__ import annotations

from flask import Flask, session

from wsgisession.contrib.flask import init_app
from wsgisession.stores.base import Store


def login_app(store: Store, **options: object) -> Flask:
    """``/login`` stores the user, ``/whoami`` answers its repr; tests add
    their own views and hooks."""
    app = Flask(__name__)
    init_app(app, store=store, **options)  # type: ignore[arg-type]

    @app.route("/login")
    def login() -> str:
        session["user"] = "ada"
        return "in"

    @app.route("/whoami")
    def whoami() -> str:
        return repr(session.get("user"))

    return app
