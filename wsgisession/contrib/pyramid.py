"""Pyramid integration: ``request.session`` is the request's wsgisession session.

::

    from wsgisession.contrib.pyramid import make_wsgi_app

    with Configurator(settings=settings) as config:
        config.include("wsgisession.contrib.pyramid")
        ...
        app = make_wsgi_app(config)

``config.include`` sets the session factory (:class:`WsgiSessionFactory`);
:func:`make_wsgi_app` wraps the Pyramid app in
:class:`~wsgisession.SessionMiddleware` configured by the ``wsgisession.``
keys of the settings (see :func:`wsgisession.paste.make_middleware`). The
session object (:class:`PyramidSession`) provides Pyramid's ``ISession``:
``new``, ``created``, ``changed()``, ``invalidate()`` (a flush: the record
is deleted and the cookie with it), flash queues, and the session CSRF
methods, so Pyramid's default CSRF storage policy and
``SessionCSRFStoragePolicy`` both work.

A user's sessions: ``request.session.bind_user(user_id)``, ``.user_id`` and
``.handle`` are passed through, and the middleware (for
``user_sessions()``, ``revoke_user_sessions()``, ``revoke_user_session()``)
is ``request.registry["wsgisession"]``.
"""

from __future__ import annotations

import importlib
import logging
import secrets
from typing import TYPE_CHECKING, Any

from pyramid import threadlocal  # type: ignore[import-untyped]
from pyramid.csrf import (  # type: ignore[import-untyped]
    LegacySessionCSRFStoragePolicy,
    SessionCSRFStoragePolicy,
)
from pyramid.events import NewRequest  # type: ignore[import-untyped]
from pyramid.exceptions import BadCSRFToken  # type: ignore[import-untyped]
from pyramid.interfaces import (  # type: ignore[import-untyped]
    ICSRFStoragePolicy,
    ISession,
)
from pyramid.tweens import EXCVIEW, MAIN  # type: ignore[import-untyped]
from zope.interface import classImplements  # type: ignore[import-untyped]

from .. import _beaker
from .._redis_sessions_keys import refuse_redis_sessions_keys
from ..paste import make_middleware
from ..session import Session
from . import SessionProxy

if TYPE_CHECKING:
    from ..middleware import SessionMiddleware

__all__ = ["PyramidSession", "WsgiSessionFactory", "includeme", "make_wsgi_app"]

logger = logging.getLogger(__name__)

#: Session keys of the flash queues and the CSRF token, as Pyramid's own session.
FLASH_PREFIX = "_f_"
CSRF_KEY = "_csrft_"
#: Where :func:`make_wsgi_app` keeps the middleware in the registry.
REGISTRY_KEY = "wsgisession"
#: Set in the environ of a script's request whose session
#: :meth:`WsgiSessionFactory.script_session` opened: not shared with the
#: requests the script prepares while it is current.
SCRIPT_SESSION_KEY = "wsgisession.script_session"


class PyramidSession(SessionProxy):
    """``request.session``: Pyramid's ``ISession`` over a wsgisession session.

    Django's methods (``flush``, ``cycle_key``, ``set_expiry``, ...) are
    passed through, and ``.wsgisession`` is the wrapped session itself.
    """

    @property
    def created(self) -> float:
        """When the session was created, in seconds since the epoch (loads it)."""
        return self._session.created

    def changed(self) -> None:
        """Mark the session modified, after changing a value in place.

        Not needed with wsgisession, which notices such changes, but part
        of ``ISession``.
        """
        self._session.modified = True

    def copy(self) -> dict[str, Any]:
        """A plain dict of the data, as ``dict.copy()`` on Pyramid's own session."""
        return dict(self)

    def invalidate(self) -> None:
        """Drop the session: delete its record and key (the cookie goes too).

        Data set afterwards starts a new session with a new key.
        """
        self._session.flush()

    # -- flash messages ------------------------------------------------------

    def flash(self, msg: Any, queue: str = "", allow_duplicate: bool = True) -> None:
        """Append ``msg`` to the flash queue ``queue``."""
        messages = list(self.get(FLASH_PREFIX + queue, []))
        if allow_duplicate or msg not in messages:
            messages.append(msg)
            self[FLASH_PREFIX + queue] = messages

    def pop_flash(self, queue: str = "") -> list[Any]:
        """The messages of ``queue``, removing them from the session."""
        messages: list[Any] = self.pop(FLASH_PREFIX + queue, [])
        return messages

    def peek_flash(self, queue: str = "") -> list[Any]:
        """The messages of ``queue``, leaving them in the session."""
        messages: list[Any] = self.get(FLASH_PREFIX + queue, [])
        return messages

    # -- CSRF (for Pyramid's LegacySessionCSRFStoragePolicy) -------------------

    def new_csrf_token(self) -> str:
        """Store and return a new random CSRF token."""
        token = secrets.token_hex(20)
        self[CSRF_KEY] = token
        return token

    def get_csrf_token(self) -> str:
        """The session's CSRF token, made on first use."""
        token = self.get(CSRF_KEY)
        if not isinstance(token, str) or not token:
            token = self.new_csrf_token()
        return token


classImplements(PyramidSession, ISession)


class WsgiSessionFactory:
    """Pyramid's session factory, which ``config.include("wsgisession.contrib.pyramid")``
    sets (with what starts each of pyramid_retry's attempts from the stored
    session: prefer it to ``config.set_session_factory(WsgiSessionFactory())``).

    Called by Pyramid on the first use of ``request.session``; it wraps the
    session the middleware put in the environ and does no I/O itself.
    ``environ_key`` None means that of the middleware :func:`make_wsgi_app`
    made for this registry (whatever its settings' prefix), else
    ``"wsgisession"``.
    """

    def __init__(self, environ_key: str | None = None) -> None:
        self.environ_key = environ_key

    def __call__(self, request: Any) -> PyramidSession:
        session = self.session_or_script_session(request)
        if session is not None:
            start_attempt(session, request.environ.get("retry.attempt", 0))
            return PyramidSession(session)
        raise RuntimeError(
            "request.session is unavailable: no wsgisession SessionMiddleware "
            f"put a session in environ[{self.key_for(request)!r}]. Wrap the app, "
            "e.g. app = wsgisession.contrib.pyramid.make_wsgi_app(config)."
        )

    def session_of(self, request: Any) -> Session | None:
        """The session the middleware put in ``request``'s environ, if any.

        A subrequest of a blank request (``Request.blank(path)``, whose
        environ is new) shares the session of the request that invokes it,
        and gets it in its environ too.
        """
        key = self.key_for(request)
        session = request.environ.get(key)
        if isinstance(session, Session):
            return session
        session = enclosing_session(request, key)
        if session is not None:
            request.environ[key] = session
        return session

    def session_or_script_session(self, request: Any) -> Session | None:
        """:meth:`session_of`, else (a request no middleware served) the
        :meth:`script_session`; None if neither can be had."""
        session = self.session_of(request)
        if session is None:  # Session is falsy when empty: not ``or``
            session = self.script_session(request)
        return session

    def script_session(self, request: Any) -> Session | None:
        """The session of a request no middleware served (a script's, from
        ``pyramid.paster.bootstrap`` or ``pyramid.scripting.prepare``), as
        Pyramid's own factories make one: opened from the request's cookie
        by the middleware :func:`make_wsgi_app` keeps in the registry, and
        saved only by its own ``save()`` (there is no response)."""
        middleware = request.registry.get(REGISTRY_KEY)
        if middleware is None:
            return None
        cookie = request.cookies.get(middleware.settings.cookie_name)
        session: Session = middleware.open_session(cookie)
        request.environ[self.key_for(request)] = session
        request.environ[SCRIPT_SESSION_KEY] = True
        return session

    def key_for(self, request: Any) -> str:
        """Where the middleware puts the session in ``request``'s environ."""
        if self.environ_key is not None:
            return self.environ_key
        middleware = request.registry.get(REGISTRY_KEY)
        return "wsgisession" if middleware is None else middleware.settings.environ_key

    def __repr__(self) -> str:
        return f"WsgiSessionFactory(environ_key={self.environ_key!r})"


def enclosing_session(request: Any, key: str) -> Session | None:
    """The session of the request of the same app that invoked ``request`` as
    a subrequest (Pyramid's thread-local stack of requests), if any.

    A script's session is only for the subrequests a router runs: a request
    the script prepares while another is current (``bootstrap``, then
    ``prepare`` per user) is not its subrequest, and has its own cookie's
    session, also once the script runs it through the router (and after:
    a request that carries a session cookie other than the script request's
    never takes its session; one that copied its cookie does)."""
    stack = threadlocal.manager.stack
    invoked = _invoked(request, stack)
    for entry in reversed(stack):
        outer = entry.get("request")
        if outer is request or entry.get("registry") is not request.registry:
            continue
        environ = getattr(outer, "environ", {})
        session = environ.get(key)
        if isinstance(session, Session) and (
            not environ.get(SCRIPT_SESSION_KEY)
            or (invoked and not _has_own_cookie(request, outer))
        ):
            return session
    return None


def _invoked(request: Any, stack: list[dict[str, Any]]) -> bool:
    """Whether the router runs ``request`` as a subrequest: it marks each
    request it runs (never ``prepare``), and pushes it; one a script
    prepared (pushed by ``prepare`` too) and then ran stays the script's."""
    if getattr(request, "invoke_subrequest", None) is None:
        return False
    return sum(entry.get("request") is request for entry in stack) < 2


def _has_own_cookie(request: Any, outer: Any) -> bool:
    """Whether ``request`` carries a session cookie other than ``outer``'s (a
    user's request a script prepared keeps it once the router ran it, and
    its mark; a subrequest made with the script request's headers does not)."""
    middleware = request.registry.get(REGISTRY_KEY)
    if middleware is None:
        return False
    name = middleware.settings.cookie_name
    cookie = request.cookies.get(name)
    return cookie is not None and cookie != getattr(outer, "cookies", {}).get(name)


def start_attempt(session: Session, attempt: int) -> None:
    """Attempt ``attempt`` of a request that pyramid_retry runs again (it
    numbers them in the environ, from 0) starts from the stored session,
    without the failed attempt's changes, once: a subrequest, or a copy of
    the request, shares the session and the number."""
    if attempt and session._retry_attempt < attempt:
        session._discard_changes()
        session._retry_attempt = attempt


def includeme(config: Any) -> None:
    """``config.include("wsgisession.contrib.pyramid")``: set the session factory.

    The environ key is the ``wsgisession.environ_key`` setting, if given,
    else that of the middleware :func:`make_wsgi_app` wraps the app in.
    A ``redis.sessions.*`` setting left over from pyramid_redis_sessions, or
    a Beaker key left over from pyramid_beaker, raises ConfigError, as
    :func:`make_wsgi_app` does.
    """
    settings = config.get_settings() or {}
    _beaker.refuse_beaker_keys(settings, "wsgisession.")
    refuse_redis_sessions_keys(settings, "wsgisession.")
    factory = WsgiSessionFactory(settings.get("wsgisession.environ_key") or None)
    config.set_session_factory(factory)

    def new_request(event: Any) -> None:
        # Every attempt, also one that never uses request.session: the
        # failed attempt's changes must not be saved by it either. A
        # request a script runs gets its own cookie's session now, so that
        # its subrequests share it rather than the script's.
        session = factory.session_or_script_session(event.request)
        if session is not None:
            start_attempt(session, event.request.environ.get("retry.attempt", 0))

    config.add_subscriber(new_request, NewRequest)
    # Under the exception view: a refusal page that shows a form makes and
    # stores a token of its own after the refused one is dropped.
    config.add_tween(f"{__name__}.refused_token_tween", over=MAIN, under=EXCVIEW)
    try:
        retry = importlib.import_module("pyramid_retry")
    except ImportError:
        return

    def before_retry(event: Any) -> None:
        # As the failed attempt ends, before the next one's tweens run (a
        # tween may write to the session before NewRequest).
        session = factory.session_of(event.request)
        if session is not None:  # the next attempt starts now
            start_attempt(session, event.environ.get("retry.attempt", 0) + 1)

    config.add_subscriber(before_retry, retry.IBeforeRetry)


def refused_token_tween(handler: Any, registry: Any) -> Any:
    """A tween, under Pyramid's exception view, that drops the CSRF token
    a refused request's check made (see :func:`drop_refused_token`)."""

    def drop_refused_token_tween(request: Any) -> Any:
        try:
            return handler(request)
        except BadCSRFToken:
            drop_refused_token(request)
            raise

    return drop_refused_token_tween


def drop_refused_token(request: Any) -> None:
    """Drop the CSRF token Pyramid's check made in a new session whose request
    it refused (BadCSRFToken): saving it stored a session for every
    anonymous POST. Done before the exception view runs, so a refusal page
    that renders the form again makes (and stores) the token it shows."""
    session = request.__dict__.get("session")  # set once request.session is read
    if not isinstance(session, PyramidSession) or not session.new:
        return
    policy = request.registry.queryUtility(ICSRFStoragePolicy)
    if isinstance(policy, SessionCSRFStoragePolicy):
        session.pop(policy.key, None)
    elif policy is None or isinstance(policy, LegacySessionCSRFStoragePolicy):
        session.pop(CSRF_KEY, None)


def make_wsgi_app(config: Any, prefix: str = "wsgisession.") -> SessionMiddleware:
    """``config.make_wsgi_app()`` wrapped in the middleware its settings describe.

    The settings' keys starting with ``prefix`` are the middleware's options
    and store keys; an unknown one raises ConfigError here, at startup, as
    does a ``redis.sessions.*`` key left over from pyramid_redis_sessions.
    Pyramid's names are understood too: ``wsgisession.set_on_exception`` is
    :confval:`save_on_error`, and ``wsgisession.reissue_time`` is
    :confval:`reissue_time` in both. The middleware is also kept as
    ``request.registry["wsgisession"]``, for its ``user_sessions()`` and
    ``revoke_user_session(s)()`` methods.
    """
    settings = config.get_settings() or {}
    middleware = make_middleware(config.make_wsgi_app(), settings, prefix)
    config.registry[REGISTRY_KEY] = middleware
    return middleware
