"""A SessionMiddleware inside another on one request path.

A request has one session, as in Django. An inner middleware that finds
the session of an outer one under its own ``environ_key``, or one whose
cookie has its own ``cookie_name`` (a Bottle app's
``mount()``, werkzeug's ``DispatcherMiddleware``, a Paste composite, each
mounted app wrapped under a wrapped outer app) either passes the request
through, leaving the session to the outer middleware, or refuses it at
once: making a second session there waited out ``lock_timeout`` on the
outer one's lock, sent the cookie twice and lost the outer app's changes,
or, under another environ key, gave the shared cookie another session.
"""

from __future__ import annotations

from typing import Any

from .config import Settings
from .errors import ConfigError
from .response_setup import ResponseSetup
from .session import Session

__all__ = ["outer_session_serves"]


def outer_session_serves(setup: ResponseSetup, environ: dict[str, Any]) -> bool:
    """Whether the session an outer middleware put under ``setup``'s
    environ key, or whose cookie is ``setup``'s, serves this one's
    requests: same store, same settings.

    False if there is no such session (a value of another kind under the
    environ key is replaced, as before, and so is the session of a request
    whose response ended: an environ passed again); ConfigError, naming
    what differs, if it is one this middleware cannot stand for.
    """
    key: object = setup.environ_key
    outer = environ.get(setup.environ_key)
    if not _served(outer):  # another environ key, the same cookie?
        key = environ.get(setup.cookie_mark)
        outer = environ.get(key) if isinstance(key, str) else None
        if not _served(outer):
            return False
    assert isinstance(outer, Session)
    differing = _differing(_options_of(outer), setup.settings)
    if outer._store is not setup.store:
        differing.insert(0, "store (another Store object)")
    if not differing:
        return True
    shared = "" if key == setup.environ_key else "shares its cookie_name but "
    raise ConfigError(
        f"environ[{key!r}] already holds the session of an outer "
        f"SessionMiddleware on this request path, which {shared}differs in "
        f"{', '.join(differing)}; a request has one session. Wrap only the "
        "outer app, or give the inner middleware the same store object and "
        "settings (it then passes requests through), or, for a second, "
        "independent session, give it its own environ_key and cookie_name"
    )


def _served(value: object) -> bool:
    """Whether ``value`` is the session of a request a middleware serves now."""
    return isinstance(value, Session) and value._serving


def _options_of(session: Session) -> dict[str, Any]:
    """The options of ``session``'s middleware, ``lock`` included: the
    session drops it once its middleware released the lock."""
    options = session._settings.as_options()
    if session._settings_after_lock is not None:
        options["lock"] = True
    return options


def _differing(options: dict[str, Any], settings: Settings) -> list[str]:
    """The names of the options whose values ``settings`` does not share."""
    return [name for name, value in options.items() if getattr(settings, name) != value]
