"""Flask integration: ``flask.session`` is the request's wsgisession session.

::

    from flask import Flask
    from wsgisession.contrib.flask import init_app
    from wsgisession.stores import SQLiteStore

    app = Flask(__name__)
    init_app(app, store=SQLiteStore("sessions.sqlite3"), cookie_age=3600)

:func:`init_app` wraps ``app.wsgi_app`` in :class:`~wsgisession.SessionMiddleware`
and sets ``app.session_interface`` to :class:`WsgiSessionInterface`. The
middleware alone loads, saves and sets the cookie, so Flask's
``SESSION_COOKIE_*``, ``PERMANENT_SESSION_LIFETIME`` and
``SESSION_REFRESH_EACH_REQUEST`` settings are not used (no ``SECRET_KEY`` is
needed either): the middleware's options are (``cookie_*``, ``cookie_age``,
``save_every_request``).

``session.permanent`` maps to browser-close expiry: False means the cookie
ends with the browser (``set_expiry(0)``), True means the ``cookie_age``
policy. Unlike Flask, sessions are permanent unless made otherwise; pass
``expire_at_browser_close=True`` for Flask's default. ``flash()`` and
``get_flashed_messages()`` work unchanged (tagged JSON keeps their tuples).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, NoReturn, Unpack

from flask.sessions import NullSession, SessionInterface, SessionMixin

from ..middleware import SessionMiddleware
from ..response import Response as SessionResponse
from ..session import Session
from . import SessionProxy

if TYPE_CHECKING:
    from flask import Flask
    from flask.wrappers import Request, Response

    from ..config import Options
    from ..stores.base import Store

__all__ = ["FlaskSession", "WsgiSessionInterface", "find_middleware", "init_app"]

logger = logging.getLogger(__name__)

#: How many ``.app`` wrappers :func:`find_middleware` looks through.
_MAX_LAYERS = 32


# SessionMixin's ``new`` is a writable class attribute; here it is a property.
class FlaskSession(SessionProxy, SessionMixin):  # type: ignore[override]
    """``flask.session``: Flask's session attributes over a wsgisession session.

    ``modified`` and ``accessed`` are the wrapped session's own flags;
    ``new`` is True while no stored record exists; ``permanent`` is
    ``not get_expire_at_browser_close()``. Django's methods (``flush``,
    ``cycle_key``, ``set_expiry``, ...) are passed through, and
    ``.wsgisession`` is the wrapped session itself.
    """

    def __init__(
        self, session: Session, detached: SessionResponse | None = None
    ) -> None:
        super().__init__(session)
        #: Set when no middleware saw this request (test contexts): then
        #: :meth:`WsgiSessionInterface.save_session` saves, with this response.
        self.detached_response = detached

    @property
    def permanent(self) -> bool:
        """False when the cookie ends with the browser, True otherwise."""
        return not self._session.get_expire_at_browser_close()

    @permanent.setter
    def permanent(self, value: bool) -> None:
        value = bool(value)
        if value == self.permanent:
            return
        if not value:
            self._session.set_expiry(0)
            return
        self._session.set_expiry(None)
        if self._session.get_expire_at_browser_close():  # the global default
            self._session.set_expiry(self._session.get_session_cookie_age())

    @property
    def modified(self) -> bool:
        return self._session.modified

    @modified.setter
    def modified(self, value: bool) -> None:
        self._session.modified = value

    @property
    def accessed(self) -> bool:
        return self._session.accessed

    @accessed.setter
    def accessed(self, value: bool) -> None:
        self._session.accessed = value


class MissingMiddlewareSession(NullSession):
    """The session Flask gets when no SessionMiddleware wraps the app.

    Reading works (it is empty); writing raises with the fix, instead of
    Flask's message about a missing secret key.
    """

    def _fail(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise RuntimeError(
            "flask.session is unavailable: no wsgisession SessionMiddleware "
            "handled this request. Call wsgisession.contrib.flask.init_app(app), "
            "or wrap app.wsgi_app (or the whole app) in SessionMiddleware."
        )

    __setitem__ = __delitem__ = clear = pop = popitem = update = setdefault = _fail


def find_middleware(app: Flask) -> SessionMiddleware | None:
    """The SessionMiddleware in ``app.wsgi_app``, looking through ``.app`` wrappers."""
    layer: Any = app.wsgi_app
    for _ in range(_MAX_LAYERS):
        if isinstance(layer, SessionMiddleware):
            return layer
        layer = getattr(layer, "app", None)
        if layer is None:
            break
    return None


class WsgiSessionInterface(SessionInterface):
    """A Flask session interface that hands out the request's wsgisession session.

    ``open_session`` does no I/O (the session loads on first use) and
    ``save_session`` does nothing, since the middleware saves. Only when
    no middleware saw the request, as in ``app.test_request_context()`` or
    the test client's ``session_transaction()``, does this interface open
    a session from the request's cookie with the middleware found in
    ``app.wsgi_app``, and save it itself.
    """

    null_session_class = MissingMiddlewareSession
    pickle_based = False

    def __init__(self, environ_key: str | None = None) -> None:
        #: Where the session is in the environ; None means the ``environ_key``
        #: of the middleware in ``app.wsgi_app``, else ``"wsgisession"``.
        self.environ_key = environ_key

    def open_session(self, app: Flask, request: Request) -> FlaskSession | None:
        middleware = find_middleware(app)
        key = self.environ_key
        if key is None:
            key = (
                "wsgisession" if middleware is None else middleware.settings.environ_key
            )
        session = request.environ.get(key)
        if isinstance(session, Session):
            return FlaskSession(session)
        if middleware is None:
            return None
        detached = middleware.detached_response(request.environ)
        return FlaskSession(detached.session, detached)

    def save_session(
        self, app: Flask, session: SessionMixin, response: Response
    ) -> None:
        detached = getattr(session, "detached_response", None)
        if detached is None:
            return  # the middleware saves and sets the cookie
        cookies = detached.finish(response.status)
        for name, value in cookies:
            response.headers.add(name, value)
        if cookies and detached.setup.settings.private_responses:
            response.headers.setdefault("Cache-Control", "private")
        if detached.session.accessed:
            response.vary.add("Cookie")

    def __repr__(self) -> str:
        return f"WsgiSessionInterface(environ_key={self.environ_key!r})"


def init_app(
    app: Flask, store: Store | None = None, **options: Unpack[Options]
) -> SessionMiddleware:
    """Give ``app`` wsgisession sessions: wrap ``app.wsgi_app``, set the interface.

    ``store`` and ``options`` are those of
    :class:`~wsgisession.SessionMiddleware`; the middleware is returned.
    """
    if find_middleware(app) is not None:
        raise RuntimeError(f"{app!r} already has a wsgisession SessionMiddleware")
    middleware = SessionMiddleware(app.wsgi_app, store, **options)
    app.wsgi_app = middleware  # type: ignore[method-assign]
    app.session_interface = WsgiSessionInterface()
    logger.debug("wsgisession enabled on %r with %r", app, middleware.store)
    return middleware
