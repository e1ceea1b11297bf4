"""Flask-Login 0.6.3's session calls, replayed with Flask alone.

The tests may not depend on Flask-Login, so this module does to
``flask.session`` exactly what its ``login_user()``, ``logout_user()``, its
lazy loading of ``current_user`` (the session's ``_user_id``, else the
"remember me" cookie) and its ``after_request`` hook
(``LoginManager._update_remember_cookie``) do, in the same order, with the
same keys. ``on_login`` and ``on_cookie_login`` stand for its
``user_logged_in`` and ``user_loaded_from_cookie`` signals. The remember
cookie is the user id and an HMAC of it, as Flask-Login's ``encode_cookie``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

from flask import Flask, Response, g, request, session

REMEMBER_COOKIE = "remember_token"  # Flask-Login's COOKIE_NAME
REMEMBER_SECONDS = 365 * 86400  # its COOKIE_DURATION

Hook = Callable[[str], None]


class LoginCalls:
    """Flask-Login's session handling for one app (its ``LoginManager``)."""

    def __init__(
        self,
        app: Flask,
        on_login: Hook | None = None,
        on_cookie_login: Hook | None = None,
    ) -> None:
        self.secret = str(app.secret_key or "flask-login-calls").encode()
        self.on_login = on_login
        self.on_cookie_login = on_cookie_login
        app.after_request(self.update_remember_cookie)

    def login_user(self, user_id: str, *, remember: bool = False) -> None:
        """``flask_login.login_user(user, remember=remember)``."""
        session["_user_id"] = user_id
        session["_fresh"] = True
        session["_id"] = "identifier"  # its hash of the client's address and agent
        if remember:
            session["_remember"] = "set"
        g._login_user = user_id
        if self.on_login is not None:
            self.on_login(user_id)

    def logout_user(self) -> None:
        """``flask_login.logout_user()``: it loads the user first (``_get_user()``)."""
        self.current_user()
        for key in ("_user_id", "_fresh", "_id"):
            if key in session:
                session.pop(key)
        if REMEMBER_COOKIE in request.cookies:
            session["_remember"] = "clear"
            if "_remember_seconds" in session:
                session.pop("_remember_seconds")
        g._login_user = None

    def current_user(self) -> str | None:
        """``current_user``'s id, loaded once per request as ``_load_user()`` does."""
        if "_login_user" not in g:
            g._login_user = self._load_user()
        user: str | None = g._login_user
        return user

    def _load_user(self) -> str | None:
        user_id = session.get("_user_id")
        if user_id is not None:
            return str(user_id)
        cookie = request.cookies.get(REMEMBER_COOKIE)
        if cookie is None or session.get("_remember") == "clear":
            return None
        user_id = self._decode(cookie)  # _load_user_from_remember_cookie
        if user_id is None:
            return None
        session["_user_id"] = user_id
        session["_fresh"] = False
        if self.on_cookie_login is not None:
            self.on_cookie_login(user_id)
        return user_id

    def update_remember_cookie(self, response: Response) -> Response:
        """Its ``after_request`` hook: sets or deletes the remember cookie."""
        if "_remember" in session:
            operation = session.pop("_remember", None)
            if operation == "set" and "_user_id" in session:
                value = self._encode(str(session["_user_id"]))
                response.set_cookie(
                    REMEMBER_COOKIE, value, max_age=REMEMBER_SECONDS, httponly=True
                )
            elif operation == "clear":
                response.delete_cookie(REMEMBER_COOKIE)
        return response

    def _digest(self, user_id: str) -> str:
        return hmac.new(self.secret, user_id.encode(), hashlib.sha512).hexdigest()

    def _encode(self, user_id: str) -> str:
        return f"{user_id}|{self._digest(user_id)}"

    def _decode(self, cookie: str) -> str | None:
        user_id, _, digest = cookie.rpartition("|")
        if user_id and hmac.compare_digest(digest, self._digest(user_id)):
            return user_id
        return None
