"""SessionMiddleware: puts a lazily loaded session into each request's environ."""

from __future__ import annotations

import dataclasses
import logging
import pickle
from collections.abc import Mapping
from typing import Any, Self, Unpack

from .cleanup import Sweeper
from .config import Options, Settings
from .errors import ConfigError
from .handling import WSGIApp, handle
from .response import Response, ResponseSetup
from .serializers import PickleSerializer, Serializer, resolve_serializer
from .session import Session
from .stores.base import Store
from .usersessions import HasHandle, UserSession, UserSessions

__all__ = ["SessionMiddleware", "serializer_for"]

logger = logging.getLogger(__name__)


def serializer_for(store: Store, settings: Settings) -> Serializer:
    """The serializer of ``settings``; ConfigError if ``store`` cannot serve
    them (``wsgisession check`` asks too)."""
    serializer = resolve_serializer(settings.serializer)
    if settings.lock and not store.supports_locking:
        raise ConfigError(
            f"lock: {type(store).__name__} cannot lock sessions; "
            "use a server-side store or lock = false"
        )
    unpickles = isinstance(serializer, PickleSerializer) or (
        getattr(serializer, "loads", None) is pickle.loads  # the pickle module
    )
    if store.client_side and unpickles:
        raise ConfigError(
            f"serializer: 'pickle' is refused with {type(store).__name__}: "
            "a client-side store must not unpickle what a client sends"
        )
    return serializer


def _not_expected(name: str, expected: str, value: object) -> ConfigError:
    """ConfigError for ``value`` given as ``name``: a mapping or a string is
    named by its type only, as it may hold a password or a secret key."""
    shown = repr(value)
    if isinstance(value, Mapping):
        shown = (
            f"a {type(value).__name__} (not shown); options are keyword "
            "arguments: Beaker's SessionMiddleware(app, config) took a dict of "
            "settings, for which wsgisession has make_middleware(app, settings) "
            "with keys prefixed 'wsgisession.'"
        )
    elif isinstance(value, str):
        shown = (
            "a str (not shown); a URL goes to a store, as in RedisStore(url) "
            "or SQLStore(url)"
        )
    return ConfigError(f"{name}: expected {expected}, not {shown}")


_default_store_logged = False


def default_store() -> Store:
    """The store used when none is given: SQLite at its documented default path."""
    global _default_store_logged
    from .stores.sqlite import SQLiteStore

    store = SQLiteStore()
    if not _default_store_logged:
        _default_store_logged = True
        logger.info("no store given; using %r", store)
    return store


def _unlocked(settings: Settings) -> Settings:
    """``settings`` without the request lock, for sessions no request releases."""
    return dataclasses.replace(settings, lock=False) if settings.lock else settings


class SessionMiddleware:
    """WSGI middleware giving each request ``environ["wsgisession"]``.

    Nothing is read from the store until the app first uses the session,
    and nothing is written unless it changed (or ``save_every_request``).
    Options are the keyword arguments typed in
    :class:`~wsgisession.config.Options` (the fields of
    :class:`~wsgisession.config.Settings`), or ``settings=`` a Settings
    already checked (keywords given as well override its values); an
    unknown or invalid one raises :class:`~wsgisession.errors.ConfigError`
    here. The middleware is a context manager: :meth:`close` closes its store.
    """

    def __init__(
        self,
        app: WSGIApp,
        store: Store | None = None,
        *,
        settings: Settings | None = None,
        **options: Unpack[Options],
    ) -> None:
        if not callable(app) or isinstance(app, Store):
            raise ConfigError(
                f"app: expected a WSGI application (a callable), not {app!r}"
            )
        self.app = app
        if settings is not None and not isinstance(settings, Settings):
            raise _not_expected("settings", "a Settings instance", settings)
        checked = Settings.from_options(options, settings)
        if store is not None and not isinstance(store, Store):
            raise _not_expected(
                "store", "a Store instance such as SQLiteStore(path)", store
            )
        self.store = store if store is not None else default_store()
        self.use_settings(checked)

    def use_settings(self, settings: Settings) -> None:
        """Serve the requests to come with ``settings`` (same app, same store).

        ConfigError, with the settings in force unchanged, if the store
        cannot serve them. Requests already running keep the settings they
        started with. Meant for setup and tests (the Flask adapter follows
        ``app.config`` with it), not for flipping options under load.
        """
        if not isinstance(settings, Settings):
            raise _not_expected("settings", "a Settings instance", settings)
        serializer = serializer_for(self.store, settings)
        self.settings = settings
        self.serializer = serializer
        self._sweeper = (
            None
            if self.store.client_side
            else Sweeper(self.store, settings.cleanup_interval)
        )
        # Used on every request: bound once.
        self._setup = self._response_setup(settings, serializer)
        self._users = UserSessions(self.store, settings, serializer)

    def _response_setup(
        self, settings: Settings, serializer: Serializer
    ) -> ResponseSetup:
        return ResponseSetup(
            settings,
            self.store,
            Session.request_factory(self.store, settings, serializer),
            self._sweeper,
        )

    #: One request (see :func:`~wsgisession.handling.handle`), with no
    #: Python call between the server's and the request's work.
    __call__ = handle

    def detached_response(self, environ: dict[str, Any]) -> Response:
        """A response for a request this middleware does not handle (Flask's tests).

        ``.session`` reads the request's cookie; ``.finish(status)`` saves it
        and returns the ``Set-Cookie`` headers for the caller to send. Its
        session never takes the request lock of ``lock = true``: nothing
        would release it (a test context may never finish), and every
        later request of the session would wait for it.
        """
        setup = self._setup
        if self.settings.lock:
            setup = self._response_setup(_unlocked(self.settings), self.serializer)
        return Response.detached(setup, environ)

    def open_session(self, session_key: str | None = None) -> Session:
        """A session on this middleware's store and options, bound to no request.

        It never takes the request lock of ``lock = true``: nothing would
        release it (a test helper, a script), and every later request of
        the session would wait for it. Its save merges by key as usual.
        """
        return Session(
            self.store,
            _unlocked(self.settings),
            session_key or None,
            serializer=self.serializer,
        )

    # -- a user's sessions ----------------------------------------------------

    def user_sessions(self, user_id: str | int) -> list[UserSession]:
        """The live sessions bound to ``user_id``, the most recently saved first.

        One store read per listed session; NotImplementedError on a store
        without user sessions.
        """
        return self._users.list(user_id)

    def revoke_user_sessions(
        self, user_id: str | int, *, keep: HasHandle | str | None = None
    ) -> int:
        """End every session of ``user_id`` except ``keep`` (a Session or a handle).

        ``keep`` may also be a framework's session object (Flask's, Pyramid's).
        Returns how many of its live sessions it ended (a session caught
        changing keys counts twice; one past ``absolute_timeout`` is deleted
        but not counted). Their next request finds an empty session; a
        save already in flight cannot bring one back. SessionError if some
        kept changing keys through all its rounds: those it ended stay
        ended; revoke again for the others.
        """
        handle = keep if keep is None or isinstance(keep, str) else keep.handle
        return self._users.revoke_all(user_id, handle)

    def revoke_user_session(self, user_id: str | int, handle: str) -> bool:
        """End the session of ``user_id`` named ``handle``; False if there was none.

        A session changing keys at that very moment (its own ``cycle_key()``)
        is followed to its new key and ended too. A handle from an older
        listing names no session once that session changed keys: False,
        and :meth:`revoke_user_sessions` ends it. SessionError if it kept
        changing keys for 20 rounds of following it.
        """
        return self._users.revoke_one(user_id, handle)

    def close(self) -> None:
        """Close the store (its connections, handles); the middleware is not used again."""
        self.store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SessionMiddleware({self.app!r}, store={self.store!r})"
