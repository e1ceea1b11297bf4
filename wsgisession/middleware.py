"""SessionMiddleware: puts a lazily loaded session into each request's environ."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable
from typing import Any

from .config import Settings
from .errors import ConfigError
from .response import ResponseHook
from .serializers import PickleSerializer, resolve_serializer
from .session import Session
from .stores.base import Store

__all__ = ["SessionMiddleware"]

logger = logging.getLogger(__name__)

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

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


class SessionMiddleware:
    """WSGI middleware giving each request ``environ["wsgisession"]``.

    Nothing is read from the store until the app first uses the session,
    and nothing is written unless it changed (or ``save_every_request``).
    Options are those of :class:`~wsgisession.config.Settings`; an unknown
    or invalid one raises :class:`~wsgisession.errors.ConfigError` here.
    """

    def __init__(
        self, app: WSGIApp, store: Store | None = None, **options: Any
    ) -> None:
        self.app = app
        self.settings = Settings.from_options(options)
        if store is not None and not isinstance(store, Store):
            raise ConfigError(
                f"store: expected a Store instance such as SQLiteStore(path), not {store!r}"
            )
        self.store = store if store is not None else default_store()
        self.serializer = resolve_serializer(self.settings.serializer)
        # Used on every request: bound once.
        self._new_session = Session._request_factory(
            self.store, self.settings, self.serializer
        )
        self._environ_key = self.settings.environ_key
        self.save_every_request = self.settings.save_every_request
        if self.settings.lock and not self.store.supports_locking:
            raise ConfigError(
                f"lock: {type(self.store).__name__} cannot lock sessions; "
                "use a server-side store or lock = false"
            )
        if self.store.client_side and isinstance(self.serializer, PickleSerializer):
            raise ConfigError(
                f"serializer: 'pickle' is refused with {type(self.store).__name__}: "
                "a client-side store must not unpickle what a client sends"
            )

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        hook = ResponseHook(self, environ, start_response)
        hook.session = environ[self._environ_key] = self._new_session(
            hook.read_key if "HTTP_COOKIE" in environ else None
        )
        try:
            result = self.app(environ, hook.start_response)
        except BaseException:
            hook.session.release_lock()
            raise
        session = hook.session
        if (
            type(result) is list
            and not (session.accessed or session.modified or self.save_every_request)
            and hook.status is not None
        ):  # untouched, the most common case: the headers go through as they are
            hook.server_write = start_response(hook.status, hook.headers, hook.exc_info)
            return result
        return hook.respond(result)

    def open_session(self, session_key: str | None = None) -> Session:
        """A session on this middleware's store and options, bound to no request.

        It never takes the request lock of ``lock = true``: nothing would
        release it (a test helper, a script), and every later request of
        the session would wait for it. Its save merges by key as usual.
        """
        settings = self.settings
        if settings.lock:
            settings = dataclasses.replace(settings, lock=False)
        return Session(
            self.store, settings, session_key or None, serializer=self.serializer
        )

    def __repr__(self) -> str:
        return f"SessionMiddleware({self.app!r}, store={self.store!r})"
