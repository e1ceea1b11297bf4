"""The middleware :func:`~wsgisession.contrib.flask.init_app` puts in a Flask app.

It is a :class:`~wsgisession.SessionMiddleware` that reads the options it
was not given from Flask's ``app.config`` (again whenever that changes), and
that holds the app only weakly.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Unpack

from ..config import Settings
from ..errors import ConfigError
from ..middleware import SessionMiddleware
from ._flask_config import (
    config_error,
    config_snapshot,
    options_from_config,
    refresh_each_request,
)

if TYPE_CHECKING:
    from flask import Flask

    from ..config import Options
    from ..stores.base import Store

__all__ = ["FlaskSessionMiddleware", "WeakWsgiApp"]


class WeakWsgiApp:
    """``app.wsgi_app`` as it was, holding the app weakly.

    The middleware replaces ``app.wsgi_app`` and calls the method it
    replaced; holding that bound method would make a cycle (app ->
    middleware -> method -> app) that only the garbage collector frees.
    """

    def __init__(self, method: Callable[..., Iterable[bytes]]) -> None:
        self._method = weakref.WeakMethod(method)

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        method = self._method()
        if method is None:
            raise RuntimeError(
                "the Flask app of this SessionMiddleware was freed: the middleware "
                "holds it weakly, so serve the Flask app itself (init_app put the "
                "middleware in app.wsgi_app), or keep a reference to the app"
            )
        return method(environ, start_response)

    def __repr__(self) -> str:
        app = getattr(self._method(), "__self__", None)
        return "<wsgi_app of a freed app>" if app is None else f"<wsgi_app of {app!r}>"


def _wrappable(app: Flask) -> Any:
    """What the middleware calls: the app's own wsgi_app weakly, another layer as is."""
    wsgi_app = app.wsgi_app
    if getattr(wsgi_app, "__self__", None) is app:
        return WeakWsgiApp(wsgi_app)
    return wsgi_app


class FlaskSessionMiddleware(SessionMiddleware):
    """The middleware of :func:`init_app`: options not given follow ``app.config``.

    Flask reads its session settings on every request, and apps (Flask's
    own tests among them) change ``app.config`` after setup. So before each
    request the settings are compared with those last read and, when one
    changed, the middleware is configured again (with the same store). A
    change is meant for setup and tests: requests already running keep the
    settings they started with. The app is held weakly.
    """

    def __init__(
        self, app: Flask, store: Store | None = None, **options: Unpack[Options]
    ) -> None:
        #: The options passed to :func:`init_app`; they win over ``app.config``.
        self.explicit: Options = options
        self.flask_app = weakref.ref(app)
        settings = self._settings_from(app.config)
        super().__init__(_wrappable(app), store, settings=settings)
        #: ``SESSION_REFRESH_EACH_REQUEST``: re-save permanent sessions each request.
        self.refresh_each_request = refresh_each_request(app.config, options)
        self._snapshot = config_snapshot(app.config)

    def _settings_from(self, config: Mapping[str, Any]) -> Settings:
        """The settings ``config`` gives, the explicit options winning."""
        try:
            return Settings.from_options(options_from_config(config, self.explicit))
        except ConfigError as exc:
            Settings.from_options(self.explicit)  # the caller's own mistake: plainly
            raise config_error(exc, self.explicit) from exc

    def follow_config(self) -> None:
        """Read Flask's settings again if ``app.config`` changed since last time."""
        app = self.flask_app()
        if app is None:
            return
        snapshot = config_snapshot(app.config)
        if snapshot == self._snapshot:
            return
        self.use_settings(self._settings_from(app.config))
        self.refresh_each_request = refresh_each_request(app.config, self.explicit)
        self._snapshot = snapshot

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        self.follow_config()
        return super().__call__(environ, start_response)

    def __repr__(self) -> str:
        app = self.flask_app()
        shown = "a freed app" if app is None else repr(app)
        return f"FlaskSessionMiddleware({shown}, store={self.store!r})"
