"""Building the middleware from string settings: Paste Deploy and Pyramid.

``[filter:session]`` with ``use = egg:wsgisession#session`` reaches
:func:`filter_app_factory`; a Pyramid app passes its ``settings`` to
:func:`make_middleware`. Both parse with :func:`~wsgisession.config.parse_settings` (which checks
each value once), build the store and hand the middleware the checked
:class:`~wsgisession.config.Settings`, at once, so that a bad key
fails at startup, not on the first request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .config import parse_settings

if TYPE_CHECKING:
    from .middleware import SessionMiddleware

__all__ = ["filter_app_factory", "filter_factory", "make_middleware"]

logger = logging.getLogger(__name__)

WSGIApp = Callable[..., Any]


def make_middleware(
    app: WSGIApp, settings: Mapping[str, Any], prefix: str = "wsgisession."
) -> SessionMiddleware:
    """Wrap ``app`` using the keys of ``settings`` that start with ``prefix``.

    Keys without the prefix are other settings of the app and are left
    alone; an unknown key with the prefix raises ConfigError.
    """
    from .middleware import SessionMiddleware

    options, spec = parse_settings(settings, prefix)
    return SessionMiddleware(app, store=spec.build(prefix), settings=options)


def filter_app_factory(
    app: WSGIApp, global_conf: Mapping[str, Any], **local_conf: Any
) -> SessionMiddleware:
    """Paste Deploy ``paste.filter_app_factory``: the section's keys, unprefixed.

    The globals (``[DEFAULT]``, ``here``, ``__file__``) are not options.
    """
    from .middleware import SessionMiddleware

    options, spec = parse_settings(local_conf, global_conf=global_conf)
    return SessionMiddleware(app, store=spec.build(), settings=options)


def filter_factory(
    global_conf: Mapping[str, Any], **local_conf: Any
) -> Callable[[WSGIApp], SessionMiddleware]:
    """Paste Deploy ``paste.filter_factory``; validates and builds the store at once."""
    from .middleware import SessionMiddleware

    options, spec = parse_settings(local_conf, global_conf=global_conf)
    store = spec.build()

    def wrap(app: WSGIApp) -> SessionMiddleware:
        return SessionMiddleware(app, store=store, settings=options)

    return wrap
