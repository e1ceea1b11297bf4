"""Beaker's session keys, and what to write instead of each.

People who move from Beaker bring its keys along: ``session.timeout`` in a
Paste filter, ``beaker.session.secure`` in a Pyramid ``[app:]`` section.
None of them is mapped onto an option silently: Beaker parsed some values by
other rules (``cookie_expires = 0`` meant "until 2038", ``invalidate_corrupt
= false`` was true) and several keys changed meaning, so each one stops
startup with a :class:`~wsgisession.errors.ConfigError` that says what to
write instead.
``docs/migrating.rst`` has the same table, checked against this one by the
tests.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import NamedTuple

from .errors import ConfigError

#: The prefixes Beaker reads its session keys under, longest first.
PREFIXES = ("beaker.session.", "session.")
_DEPRECATED_PREFIX = "session_"


class BeakerKey(NamedTuple):
    """One of Beaker's session keys: our option of the same meaning, if any,
    and a note on what differs or why nothing is needed."""

    option: str | None
    note: str


_GONE = "not needed here; remove it"

#: Every key Beaker's sessions read (``session.KEY``), Beaker 1.14.
BEAKER_KEYS: dict[str, BeakerKey] = {
    "type": BeakerKey(
        "store",
        "memory, file and cookie keep their names; ext:memcached is memcached, "
        "ext:redis is redis, ext:database and ext:sqla are sql (or sqlite for "
        "an SQLite file); dbm is best replaced by sqlite",
    ),
    "data_dir": BeakerKey(
        "file_path",
        "file_path is the file store's directory; for store = sqlite give "
        "sqlite_path, the database file",
    ),
    "lock_dir": BeakerKey(None, f"the file store keeps its locks itself; {_GONE}"),
    "url": BeakerKey(
        None,
        "write memcached_servers (host:port separated by whitespace, not ';'), "
        "redis_url or sql_url, whichever store you use",
    ),
    "key": BeakerKey("cookie_name", "the default is sessionid"),
    "id": BeakerKey(None, "a fixed session id defeats every protection; remove it"),
    "secret": BeakerKey(
        None,
        "ids are 256-bit random and an unknown id is never adopted, so there is "
        f"nothing to sign; {_GONE} (the cookie store's key is secret_key)",
    ),
    "validate_key": BeakerKey(
        "secret_key", "the cookie store's signing key, at least 32 bytes"
    ),
    "encrypt_key": BeakerKey(
        "encrypt",
        "write encrypt = true with store = cookie; the key is derived from "
        "secret_key, and server-side stores do not encrypt",
    ),
    "encrypt_nonce_bits": BeakerKey(None, f"one cipher, AES-256-GCM; {_GONE}"),
    "crypto_type": BeakerKey(None, f"one cipher, AES-256-GCM; {_GONE}"),
    "timeout": BeakerKey(
        "cookie_age",
        "seconds of inactivity, counted from the last save, not the last read; "
        "reissue_time extends sessions that are only read",
    ),
    "save_accessed_time": BeakerKey(
        None,
        "reads never write here; reissue_time re-saves a session that is only "
        f"read at most once per interval; {_GONE}",
    ),
    "cookie_expires": BeakerKey(
        None,
        "write expire_at_browser_close = true for Beaker's default (true), "
        "cookie_age for a number of seconds, absolute_timeout for a hard limit",
    ),
    "cookie_domain": BeakerKey("cookie_domain", "the same meaning"),
    "cookie_path": BeakerKey("cookie_path", "the same meaning"),
    "secure": BeakerKey("cookie_secure", "true, false or auto"),
    "httponly": BeakerKey("cookie_httponly", "the default is true"),
    "samesite": BeakerKey("cookie_samesite", "lax, strict, none or false"),
    "auto": BeakerKey(
        None,
        "changed sessions are saved without save(); reissue_time re-saves a "
        "session that is only read at most once per interval; "
        "save_every_request saves every non-empty session on every request, "
        f"a store read and write each time; {_GONE}",
    ),
    "data_serializer": BeakerKey(
        "serializer", "json (tagged) is the default; pickle is opt-in"
    ),
    "invalidate_corrupt": BeakerKey(
        None, f"a corrupt record always loads as an empty session; {_GONE}"
    ),
    "webtest_varname": BeakerKey(
        None, f"in tests, use middleware.open_session(cookie value); {_GONE}"
    ),
    "environ_key": BeakerKey("environ_key", "the default is wsgisession"),
    "memcache_module": BeakerKey(None, f"pymemcache is used; {_GONE}"),
    "table_name": BeakerKey("sql_table", "the SQL store's table"),
    "schema_name": BeakerKey(None, f"sql_table names the SQL store's table; {_GONE}"),
    "sa.url": BeakerKey("sql_url", "the SQL store's database URL"),
    "sa_opts": BeakerKey(None, "pass a SQLAlchemy Engine to SQLStore from Python"),
    "file_dir": BeakerKey("file_path", "the file store's directory"),
    "dbm_dir": BeakerKey(None, "write store = sqlite and sqlite_path"),
    "dbmmodule": BeakerKey(None, f"dbm is not supported, use sqlite; {_GONE}"),
    "use_cookies": BeakerKey(None, f"not supported; {_GONE}"),
    "namespace_class": BeakerKey(None, "not supported: write a store instead"),
    "session_class": BeakerKey(None, "not supported: write a store instead"),
    "log_file": BeakerKey(None, f"configure the logging module; {_GONE}"),
}


def beaker_name(key: str) -> str | None:
    """Beaker's key name in ``key`` (``session.timeout`` -> ``timeout``), or None.

    Only a key with one of Beaker's prefixes counts; ``sa.*`` keys other
    than ``sa.url`` count as ``sa_opts``.
    """
    for prefix in PREFIXES:
        if key.startswith(prefix):
            return _lookup(key[len(prefix) :])
    return None


def _lookup(name: str) -> str | None:
    name = name.lower()
    if name in BEAKER_KEYS:
        return name
    if name.startswith("sa."):
        return "sa_opts"
    return None


def hint(name: str, prefix: str = "") -> str | None:
    """What to write instead of Beaker's key ``name``, or None if it is not one.

    ``name`` may carry a Beaker prefix (``session.``, ``beaker.session.``,
    the deprecated ``session_``) or none; option names in the text get
    ``prefix`` (``"wsgisession."`` in Pyramid settings).
    """
    found = beaker_name(name) or _lookup(name)
    if found is None and name.startswith(_DEPRECATED_PREFIX):
        found = _lookup(name.removeprefix(_DEPRECATED_PREFIX))
    return None if found is None else _advice(found, prefix)


def _advice(found: str, prefix: str) -> str:
    entry = BEAKER_KEYS[found]
    if entry.option is None:
        return f"Beaker's {found!r}: {entry.note}"
    return f"did you mean {prefix + entry.option!r}? (Beaker's {found!r}: {entry.note})"


def refuse_beaker_keys(
    keys: Iterable[str], prefix: str, options: Collection[str] = ()
) -> None:
    """ConfigError for the first of ``keys`` that is a prefixed Beaker session
    key, or one of wsgisession's ``options`` under Beaker's prefix
    (``session.cookie_secure``).

    Such keys would otherwise be skipped without a word: in Pyramid
    settings everything without ``prefix`` belongs to someone else, and
    Paste's ``[DEFAULT]`` globals are not options. Keys with ``prefix`` are
    left to the schema.
    """
    for key in keys:
        if prefix and key.startswith(prefix):
            continue
        name = beaker_name(key)
        if name is not None:
            text = _advice(name, prefix)
            raise ConfigError(
                f"{key!r} is a Beaker session key, which wsgisession does not "
                f"read; {text}"
            )
        for beaker_prefix in PREFIXES:
            rest = key.removeprefix(beaker_prefix)
            if rest != key and rest in options:
                raise ConfigError(
                    f"{key!r} has Beaker's prefix, which wsgisession does not "
                    f"read; did you mean {prefix + rest!r}?"
                )
