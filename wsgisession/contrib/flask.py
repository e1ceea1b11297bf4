"""Flask integration: ``flask.session`` is the request's wsgisession session.

::

    from flask import Flask
    from wsgisession.contrib.flask import init_app
    from wsgisession.stores import SQLiteStore

    app = Flask(__name__)
    init_app(app, store=SQLiteStore("sessions.sqlite3"))

:func:`init_app` wraps ``app.wsgi_app`` in a :class:`FlaskSessionMiddleware`
and sets ``app.session_interface`` to :class:`WsgiSessionInterface`. The
middleware alone loads, saves and sets the cookie. Every option not passed
to :func:`init_app` comes from Flask's own settings, read again whenever
``app.config`` changes: ``SESSION_COOKIE_NAME`` (so the cookie is still
called ``session``), ``SESSION_COOKIE_DOMAIN``, ``SESSION_COOKIE_PATH``
(else ``APPLICATION_ROOT``), ``SESSION_COOKIE_HTTPONLY``,
``SESSION_COOKIE_SECURE``, ``SESSION_COOKIE_SAMESITE``,
``SESSION_COOKIE_PARTITIONED``, ``PERMANENT_SESSION_LIFETIME`` (as
``cookie_age``) and ``SESSION_PERMANENT`` (Flask-Session's key; absent, as
in Flask, sessions end with the browser unless made permanent). Options
passed explicitly win. No ``SECRET_KEY`` is needed.

``session.permanent`` maps to browser-close expiry: False means the cookie
ends with the browser (``set_expiry(0)``), True means the ``cookie_age``
policy. With ``SESSION_REFRESH_EACH_REQUEST`` (Flask's default: on), a
permanent session with data (or bound to a user) is saved again on every
request, so that its expiry slides, as Flask's cookie does; that loads the
session on every request that carries its cookie. ``flash()`` and
``get_flashed_messages()`` work unchanged (tagged JSON keeps their tuples
and ``Markup``).

A user's sessions: ``session.bind_user(user_id)``, ``session.user_id`` and
``session.handle`` are passed through; the middleware's listing and
revocation methods are reached as ``current_app.extensions["wsgisession"]``
(set by :func:`init_app`), or :func:`find_middleware` for an app wrapped
by hand.
"""

from __future__ import annotations

import datetime
import logging
from typing import TYPE_CHECKING, Any, NoReturn, Unpack, cast

from flask import has_request_context, request
from flask import session as flask_session
from flask.sessions import NullSession, SessionInterface, SessionMixin

from ..config import Settings
from ..cookies import fixed_secure
from ..middleware import SessionMiddleware
from ..response import Response as SessionResponse
from ..session import Session
from . import SessionProxy
from ._flask_middleware import FlaskSessionMiddleware
from ._flask_saving import drop_if_emptied, refresh_if_permanent

if TYPE_CHECKING:
    from flask import Flask
    from flask.wrappers import Request, Response

    from ..config import Options
    from ..stores.base import Store

__all__ = [
    "FlaskSession",
    "FlaskSessionMiddleware",
    "WsgiSessionInterface",
    "find_middleware",
    "init_app",
    "session",
]

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
        #: The lifetime ``permanent = True`` stored in this request, or None.
        self._lifetime: int | None = None

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
            self._lifetime = self._session.get_session_cookie_age()
            self._session.set_expiry(self._lifetime)

    def settle_lifetime(self, lifetime: int) -> None:
        """Give a session made permanent in this request ``lifetime``, the one
        in force at the save (Flask reads it then: an app may set it after
        ``permanent = True``), unless the expiry was changed since."""
        stored = self._lifetime
        if stored is None or stored == lifetime:
            return
        if self._session.loaded_record().expiry == stored:
            self._lifetime = lifetime
            self._session.set_expiry(lifetime)

    def copy(self) -> dict[str, Any]:
        """A plain dict of the data, as ``dict.copy()`` on Flask's own session
        (``copy.copy()`` and ``copy.deepcopy()`` give one too: SessionProxy)."""
        return dict(self)

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


#: ``flask.session``, typed as the :class:`FlaskSession` :func:`init_app` makes
#: it (Flask's ``SessionMixin`` has no ``cycle_key()``, ``bind_user()``...).
session = cast(FlaskSession, flask_session)


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
    """The SessionMiddleware in ``app.wsgi_app``, looking through ``.app``
    wrappers; else the one :func:`init_app` gave ``app`` (another layer
    wrapped around it may keep it under another name: WhiteNoise's
    ``.application``, OpenTelemetry's ``.wsgi``)."""
    layer: Any = app.wsgi_app
    for _ in range(_MAX_LAYERS):
        if isinstance(layer, SessionMiddleware):
            return layer
        layer = getattr(layer, "app", None)
        if layer is None:
            break
    given = app.extensions.get("wsgisession")
    return given if isinstance(given, SessionMiddleware) else None


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

    # -- what Flask (and extensions) ask about the cookie ---------------------

    def _settings(self, app: Flask) -> Settings | None:
        """The settings in force for ``app``, after reading changed config."""
        middleware = find_middleware(app)
        if middleware is None:
            return None
        if isinstance(middleware, FlaskSessionMiddleware):
            middleware.follow_config()
        return middleware.settings

    def get_cookie_name(self, app: Flask) -> str:
        settings = self._settings(app)
        return (
            super().get_cookie_name(app) if settings is None else settings.cookie_name
        )

    def get_cookie_domain(self, app: Flask) -> str | None:
        settings = self._settings(app)
        if settings is None:
            return super().get_cookie_domain(app)
        return settings.cookie_domain

    def get_cookie_path(self, app: Flask) -> str:
        settings = self._settings(app)
        return (
            super().get_cookie_path(app) if settings is None else settings.cookie_path
        )

    def get_cookie_httponly(self, app: Flask) -> bool:
        settings = self._settings(app)
        if settings is None:
            return super().get_cookie_httponly(app)
        return settings.cookie_httponly

    def get_cookie_secure(self, app: Flask) -> bool:
        """The Secure flag; with ``cookie_secure="auto"``, whether this request is https."""
        settings = self._settings(app)
        if settings is None:
            return super().get_cookie_secure(app)
        secure = fixed_secure(settings)  # SameSite=None and Partitioned force it
        if secure is None:
            return has_request_context() and request.is_secure
        return secure

    def get_cookie_samesite(self, app: Flask) -> str | None:
        settings = self._settings(app)
        if settings is None:
            return super().get_cookie_samesite(app)
        return settings.cookie_samesite or None

    def get_cookie_partitioned(self, app: Flask) -> bool:
        settings = self._settings(app)
        if settings is None:
            return super().get_cookie_partitioned(app)
        return settings.cookie_partitioned

    def get_expiration_time(
        self, app: Flask, session: SessionMixin
    ) -> datetime.datetime | None:
        """When the cookie expires if saved now; None for a browser-session cookie."""
        if not isinstance(session, FlaskSession):
            return super().get_expiration_time(app, session)
        return session.get_expiry_date() if session.permanent else None

    def should_set_cookie(self, app: Flask, session: SessionMixin) -> bool:
        return bool(session.modified or (session.permanent and _refreshes(app)))

    # -- the request -----------------------------------------------------------

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
        if isinstance(middleware, FlaskSessionMiddleware):
            middleware.follow_config()  # no request passed it: the cookie's name
        detached = middleware.detached_response(request.environ)
        return FlaskSession(detached.session, detached)

    def save_session(
        self, app: Flask, session: SessionMixin, response: Response
    ) -> None:
        if not isinstance(session, FlaskSession):
            return
        raw = session.wsgisession
        detached = session.detached_response
        current = self._settings(app)
        if current is not None:
            session.settle_lifetime(current.cookie_age)
        settings = current if detached is None else detached.setup.settings
        if response.status_code < 500 or (
            settings is not None and settings.save_on_error
        ):
            drop_if_emptied(raw)  # a server error keeps none of the changes
        if detached is None:  # the middleware saves and sets the cookie
            middleware = find_middleware(app)
            if isinstance(middleware, FlaskSessionMiddleware) and (
                middleware.refresh_each_request
            ):
                refresh_if_permanent(raw, keep_accessed=middleware.settings.lock)
            return
        cookies = detached.finish(response.status)
        for name, value in cookies:
            response.headers.add(name, value)
        if cookies and detached.setup.settings.private_responses:
            response.headers.setdefault("Cache-Control", "private")
        if detached.session.accessed:
            response.vary.add("Cookie")

    def __repr__(self) -> str:
        return f"WsgiSessionInterface(environ_key={self.environ_key!r})"


def _refreshes(app: Flask) -> bool:
    """Whether ``app`` re-saves permanent sessions on every request."""
    middleware = find_middleware(app)
    return isinstance(middleware, FlaskSessionMiddleware) and (
        middleware.refresh_each_request
    )


def init_app(
    app: Flask, store: Store | None = None, **options: Unpack[Options]
) -> FlaskSessionMiddleware:
    """Give ``app`` wsgisession sessions: wrap ``app.wsgi_app``, set the interface.

    ``store`` and ``options`` are those of
    :class:`~wsgisession.SessionMiddleware`; options not given come from
    Flask's settings in ``app.config`` (see the module's docs). The
    middleware (a :class:`FlaskSessionMiddleware`) is returned, and kept as
    ``app.extensions["wsgisession"]``: its ``user_sessions()``,
    ``revoke_user_sessions()`` and ``revoke_user_session()`` are then
    ``current_app.extensions["wsgisession"].user_sessions(...)`` in a view.
    """
    if find_middleware(app) is not None:
        raise RuntimeError(f"{app!r} already has a wsgisession SessionMiddleware")
    middleware = FlaskSessionMiddleware(app, store, **options)
    app.wsgi_app = middleware  # type: ignore[method-assign]
    app.session_interface = WsgiSessionInterface()
    app.extensions["wsgisession"] = middleware
    logger.debug("wsgisession enabled on %r with %r", app, middleware.store)
    return middleware
