"""Building the middleware from string settings: Paste Deploy and Pyramid.

``[filter:session]`` with ``use = egg:wsgisession#session`` reaches
:func:`filter_app_factory`; a Pyramid app passes its ``settings`` to
:func:`make_middleware`. Both parse with :func:`~wsgisession.config.parse_settings` (which checks
each value once), build the store and hand the middleware the checked
:class:`~wsgisession.config.Settings`, at once, so that a bad key
fails at startup, not on the first request.
"""

from __future__ import annotations

import configparser
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .config import StoreSpec, parse_settings
from .errors import ConfigError

if TYPE_CHECKING:
    from .middleware import SessionMiddleware
    from .stores.base import Store

__all__ = [
    "PYRAMID_NAMES",
    "filter_app_factory",
    "filter_factory",
    "make_middleware",
    "pyramid_names_translated",
]

logger = logging.getLogger(__name__)

#: Parameters of Pyramid's own session factories that wsgisession names
#: otherwise (``reissue_time`` has the same name in both).
PYRAMID_NAMES = {"set_on_exception": "save_on_error"}

WSGIApp = Callable[..., Any]


def make_middleware(
    app: WSGIApp, settings: Mapping[str, Any], prefix: str = "wsgisession."
) -> SessionMiddleware:
    """Wrap ``app`` using the keys of ``settings`` that start with ``prefix``.

    Keys without the prefix are other settings of the app and are left
    alone; an unknown key with the prefix raises ConfigError. Without a
    prefix, a ``configparser`` section's ``[DEFAULT]`` keys are globals, as
    for the Paste filter (with one, they are read as the section's own).
    Pyramid's
    names of the options are understood too (``set_on_exception`` for
    ``save_on_error``).
    """
    from .middleware import SessionMiddleware

    local, global_conf = _split_section(settings, prefix)
    options, spec = parse_settings(
        pyramid_names_translated(local, prefix), prefix, global_conf=global_conf
    )
    return SessionMiddleware(app, store=_build_store(spec, prefix), settings=options)


def _build_store(spec: StoreSpec, prefix: str = "") -> Store:
    """The store of ``spec``; with no store key at all, the default store that
    ``SessionMiddleware`` takes without one, logged as it logs it (once per
    process), so that a section that forgot its store shows in the log."""
    from .middleware import default_store

    return default_store() if spec == StoreSpec() else spec.build(prefix)


def _split_section(
    settings: Mapping[str, Any], prefix: str
) -> tuple[Mapping[str, Any], dict[str, Any]]:
    """(local keys, globals) of ``settings``: without a ``prefix``, a
    ``configparser`` section also holds its file's ``[DEFAULT]`` keys, which
    are globals, as Paste Deploy reads them (a key ``[DEFAULT]`` has too is a
    global); with one (Paste never hands an app ``[DEFAULT]``), and for any
    other mapping, all is local. A value the section cannot give (a lone
    ``%``) is a ConfigError naming its key, never showing the value."""
    if not isinstance(settings, configparser.SectionProxy):
        return settings, {}
    try:
        if prefix:
            return dict(settings), {}
        defaults = settings.parser.defaults()
        globals_ = {key: settings[key] for key in defaults}
        local = {key: value for key, value in settings.items() if key not in defaults}
    except configparser.Error as exc:
        raise _unreadable(settings.name, exc) from None
    return local, globals_


def _unreadable(section: str, exc: configparser.Error) -> ConfigError:
    """ConfigError for a value of ``section`` that configparser cannot give:
    its key and why, not the value (configparser's message shows it)."""
    option = getattr(exc, "option", "")
    reference = getattr(exc, "reference", "")
    why = (
        f"uses %({reference})s, which the section does not define"
        if reference
        else "has a bad %-substitution; write a literal % as %% and a "
        "reference as %(name)s"
    )
    return ConfigError(f"[{section}] {option}: {why}")


def filter_app_factory(
    app: WSGIApp, global_conf: Mapping[str, Any], **local_conf: Any
) -> SessionMiddleware:
    """Paste Deploy ``paste.filter_app_factory``: the section's keys, unprefixed.

    The globals (``[DEFAULT]``, ``here``, ``__file__``) are not options.
    """
    from .middleware import SessionMiddleware

    options, spec = parse_settings(local_conf, global_conf=global_conf)
    return SessionMiddleware(app, store=_build_store(spec), settings=options)


def filter_factory(
    global_conf: Mapping[str, Any], **local_conf: Any
) -> Callable[[WSGIApp], SessionMiddleware]:
    """Paste Deploy ``paste.filter_factory``; validates and builds the store at once."""
    from .middleware import SessionMiddleware

    options, spec = parse_settings(local_conf, global_conf=global_conf)
    store = _build_store(spec)

    def wrap(app: WSGIApp) -> SessionMiddleware:
        return SessionMiddleware(app, store=store, settings=options)

    return wrap


def pyramid_names_translated(settings: Any, prefix: str) -> dict[str, Any]:
    """``settings`` with Pyramid's session parameter names renamed to ours."""
    result = dict(settings)
    for theirs, ours in PYRAMID_NAMES.items():
        if prefix + theirs not in result:
            continue
        if prefix + ours in result:
            raise ConfigError(
                f"{prefix}{theirs} and {prefix}{ours} are the same option; give one"
            )
        result[prefix + ours] = result.pop(prefix + theirs)
    return result
