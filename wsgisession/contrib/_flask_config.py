"""Flask's session settings in ``app.config``, read as wsgisession options.

A Flask app that switches to wsgisession keeps its cookie (name, domain,
path, flags) and its lifetime: every option that ``init_app`` was not given
explicitly comes from the Flask setting that means the same thing.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError

__all__ = [
    "FLASK_KEYS",
    "config_error",
    "config_snapshot",
    "options_from_config",
    "refresh_each_request",
]

#: The Flask settings read, and the wsgisession option each one gives.
FLASK_KEYS: dict[str, str] = {
    "SESSION_COOKIE_NAME": "cookie_name",
    "SESSION_COOKIE_DOMAIN": "cookie_domain",
    "SESSION_COOKIE_PATH": "cookie_path",
    "APPLICATION_ROOT": "cookie_path",
    "SESSION_COOKIE_HTTPONLY": "cookie_httponly",
    "SESSION_COOKIE_SECURE": "cookie_secure",
    "SESSION_COOKIE_SAMESITE": "cookie_samesite",
    "SESSION_COOKIE_PARTITIONED": "cookie_partitioned",
    "PERMANENT_SESSION_LIFETIME": "cookie_age",
    "SESSION_PERMANENT": "expire_at_browser_close",
    "SESSION_REFRESH_EACH_REQUEST": "save_every_request",
}

#: Flask's defaults, for a config that lacks a key (Flask's own has them all).
#: ``SESSION_PERMANENT`` is Flask-Session's key; plain Flask sessions are
#: not permanent unless the app says so.
_FLASK_DEFAULTS: dict[str, Any] = {
    "SESSION_COOKIE_NAME": "session",
    "SESSION_COOKIE_DOMAIN": None,
    "SESSION_COOKIE_PATH": None,
    "APPLICATION_ROOT": "/",
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SECURE": False,
    "SESSION_COOKIE_SAMESITE": None,
    "SESSION_COOKIE_PARTITIONED": False,
    "PERMANENT_SESSION_LIFETIME": datetime.timedelta(days=31),
    "SESSION_PERMANENT": False,
    "SESSION_REFRESH_EACH_REQUEST": True,
}


def config_snapshot(config: Mapping[str, Any]) -> tuple[Any, ...]:
    """The values of the keys read, to notice cheaply when the config changed."""
    get = config.get
    return tuple([get(key) for key in FLASK_KEYS])


def _setting(config: Mapping[str, Any], key: str) -> Any:
    """The value of ``key``, Flask's default if it is missing (not if it is None)."""
    return config.get(key, _FLASK_DEFAULTS[key])


def _seconds(key: str, value: Any) -> int:
    if isinstance(value, datetime.timedelta):
        return int(value.total_seconds())
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    raise ConfigError(
        f"app.config[{key!r}] = {value!r}: expected a timedelta or a number of seconds"
    )


def _from_flask(config: Mapping[str, Any]) -> dict[str, Any]:
    """Every option as Flask's settings say it, with Flask's meaning of None."""
    samesite = _setting(config, "SESSION_COOKIE_SAMESITE")
    lifetime = _setting(config, "PERMANENT_SESSION_LIFETIME")
    return {
        "cookie_name": _setting(config, "SESSION_COOKIE_NAME") or "session",
        "cookie_domain": _setting(config, "SESSION_COOKIE_DOMAIN") or None,
        "cookie_path": _setting(config, "SESSION_COOKIE_PATH")
        or _setting(config, "APPLICATION_ROOT")
        or "/",
        "cookie_httponly": bool(_setting(config, "SESSION_COOKIE_HTTPONLY")),
        "cookie_secure": bool(_setting(config, "SESSION_COOKIE_SECURE")),
        "cookie_samesite": False if samesite is None else samesite,
        "cookie_partitioned": bool(_setting(config, "SESSION_COOKIE_PARTITIONED")),
        "cookie_age": _seconds("PERMANENT_SESSION_LIFETIME", lifetime),
        "expire_at_browser_close": not _setting(config, "SESSION_PERMANENT"),
    }


def options_from_config(
    config: Mapping[str, Any], explicit: Mapping[str, Any]
) -> dict[str, Any]:
    """The middleware's options: ``explicit`` ones win, the rest come from ``config``."""
    options = {k: v for k, v in _from_flask(config).items() if k not in explicit}
    return {**options, **explicit}


def config_error(exc: ConfigError, explicit: Mapping[str, Any]) -> ConfigError:
    """``exc`` saying which Flask settings the options not given explicitly came from."""
    read = ", ".join(
        f"{option} from {key}"
        for key, option in FLASK_KEYS.items()
        if option not in explicit and option != "save_every_request"
    )
    return ConfigError(
        f"{exc} (options not passed to init_app are read from Flask's app.config: {read})"
    )


def refresh_each_request(
    config: Mapping[str, Any], explicit: Mapping[str, Any]
) -> bool:
    """Whether permanent sessions are re-saved on every request (Flask's default).

    ``SESSION_REFRESH_EACH_REQUEST``, unless ``save_every_request`` was
    given to ``init_app``: that option then decides for every session.
    """
    if "save_every_request" in explicit:
        return False
    return bool(_setting(config, "SESSION_REFRESH_EACH_REQUEST"))
