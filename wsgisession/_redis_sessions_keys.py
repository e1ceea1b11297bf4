"""The settings of ``pyramid_redis_sessions``, which wsgisession replaces, refused.

It reads keys under ``redis.sessions.``, which the settings parser would
otherwise leave alone as another package's: a ``cookie_secure`` or
``timeout`` left over from it would be dropped without a word (the cookie
sent without Secure, the 20-minute timeout become two weeks).
:func:`refuse_redis_sessions_keys` stops startup instead, naming the option
to write, as :mod:`._beaker` does for Beaker's ``session.*`` keys.
"""

from __future__ import annotations

from collections.abc import Iterable

from .errors import ConfigError

__all__ = ["REDIS_SESSIONS_PREFIX", "refuse_redis_sessions_keys"]

REDIS_SESSIONS_PREFIX = "redis.sessions."

#: What each ``pyramid_redis_sessions`` setting becomes (``{p}``: the prefix).
_HINTS: dict[str, str] = {
    "secret": "no secret: remove it (ids are 256-bit random and never adopted)",
    "timeout": (
        "{p}cookie_age (its timeout slid on every read: add {p}reissue_time, "
        "say a tenth of it)"
    ),
    "cookie_name": "{p}cookie_name (its default was 'session')",
    "cookie_max_age": (
        "{p}expire_at_browser_close = false (absent, its cookie ended with the "
        "browser: {p}expire_at_browser_close = true)"
    ),
    "cookie_path": "{p}cookie_path",
    "cookie_domain": "{p}cookie_domain",
    "cookie_secure": "{p}cookie_secure",
    "cookie_httponly": "{p}cookie_httponly",
    "cookie_samesite": "{p}cookie_samesite",
    "cookie_on_exception": "{p}save_on_error",
    "url": "{p}store = redis and {p}redis_url",
    "prefix": "{p}key_prefix",
}


def refuse_redis_sessions_keys(keys: Iterable[str], prefix: str) -> None:
    """ConfigError for the first of ``keys`` that is a ``redis.sessions.``
    setting, saying what to write instead (options with ``prefix``)."""
    for key in keys:
        if not key.startswith(REDIS_SESSIONS_PREFIX) or (
            prefix and key.startswith(prefix)  # chosen as wsgisession's own
        ):
            continue
        name = key[len(REDIS_SESSIONS_PREFIX) :]
        hint = _HINTS.get(name, "{p}store = redis and the redis_* options")
        raise ConfigError(
            f"{key!r} is a pyramid_redis_sessions setting, which wsgisession "
            f"does not read; use {hint.format(p=prefix)} (docs/migrating.rst)"
        )
