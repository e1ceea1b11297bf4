"""Every option, given a wrong value, is refused at startup with a ConfigError naming it.

The cases are generated from :func:`wsgisession.config.describe_options`:
each option is tried with a value of an unrelated type (``object()``), a
clearly wrong string, and the wrong values listed for its kind below, both
as a ``SessionMiddleware`` keyword and as an ini string through
``make_middleware(app, {...}, prefix="wsgisession.")``. An option added
without validation fails the ``object()`` case; an option of a new kind
fails :func:`test_every_kind_has_wrong_values` until its wrong values are
listed here. Each kind's valid ini value is tried too, so a refusal is
never just "everything is refused".
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from wsgisession import SessionMiddleware
from wsgisession.config import describe_options
from wsgisession.errors import ConfigError
from wsgisession.paste import make_middleware
from wsgisession.stores import MemoryStore
from wsgisession.stores.registry import stores_taking
from wsgisession.storespec import store_keys

PREFIX = "wsgisession."
WRONG_STRING = "not-a-valid-value-!!"

OPTIONS = {row.name: row for row in describe_options()}
STORE_KEYS = store_keys()


def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [])
    return [b""]


class Kind(NamedTuple):
    """A kind of option: a valid ini value and wrong Python and ini values.

    ``{tmp}`` in a string stands for the test's temporary directory.
    """

    valid_ini: str
    bad_python: list[Any]
    bad_ini: list[str]
    #: Whether ``WRONG_STRING`` is a valid value of this kind (free text).
    takes_any_text: bool = False


KINDS: dict[str, Kind] = {
    "cookie name": Kind(
        "sid",
        ["", "two words", "semi;colon", "equals=sign", "tab\t", "caf\u00e9", 5, b"x"],
        ["", "two words", "semi;colon", "equals=sign", "caf\u00e9"],
        takes_any_text=True,
    ),
    "seconds (int >= 0)": Kind(
        "3600",
        [-1, 1.5, "3600", True, None, 10**12, math.inf],
        ["-1", "1.5", "1h", "3600s", "", "none", "1e3", "99999999999999"],
    ),
    "domain or none": Kind(
        "example.com",
        ["", "exa mple.com", "a;b.com", "http://example.com", 5, b"example.com"],
        ["exa mple.com", "a;b.com", "http://example.com", ""],
    ),
    "path starting with /": Kind(
        "/app",
        ["relative", "", "/a;b", "/a b", None, 5],
        ["relative", "/a;b", "", "none"],
    ),
    "true, false or auto": Kind(
        "auto", ["maybe", 1, 0, None, "yes"], ["maybe", "2", "", "autox"]
    ),
    "bool": Kind("true", [1, 0, "true", None], ["maybe", "2", "", "yep", "truee"]),
    "Lax, Strict, None or false": Kind(
        "strict", ["Loose", True, None, 1, ""], ["loose", "1", "", "true"]
    ),
    "seconds (int > 0) or none": Kind(
        "none", [0, -5, 1.5, "10", True], ["0", "-5", "1.5", "", "never"]
    ),
    "seconds (number > 0, up to 100 years)": Kind(
        "2.5",
        [-1, 0, math.nan, math.inf, 1e10, "1", True, None],
        ["-1", "0", "nan", "inf", "1e10", "1s", "", "none"],
    ),
    "json, pickle or package.module:Name": Kind(
        "json",
        ["yaml", "os.path:nonexistent", "os.path:join", 5, None],
        ["yaml", "os.path:nonexistent", "os.path:join", "", "json pickle"],
    ),
    "text": Kind("some-text", ["", 5, b"bytes"], ["", "   "], takes_any_text=True),
    "store name or package.module:Class": Kind(
        "memory",
        ["mongo", "", 5, "os:getcwd", "os:nonexistent"],  # None: the default store
        ["mongo", "", "os:getcwd", "os:nonexistent", "memory file"],
    ),
    "path or none": Kind("{tmp}/valid", ["", 5, b"/tmp"], [""], takes_any_text=True),
    "list of host:port": Kind(
        "127.0.0.1:11211",
        ["127.0.0.1:11211", [5], [""], ["two words"]],
        ["", "127.0.0.1:99999", "127.0.0.1:notaport"],
    ),
    "redis:// URL": Kind(
        "redis://127.0.0.1:6379/0",
        ["http://localhost", "", 5, "localhost:6379"],
        ["http://localhost", "localhost:6379", "", "redis://127.0.0.1:notaport/0"],
    ),
    "SQLAlchemy URL": Kind(
        "sqlite:///{tmp}/sessions.db",
        ["", "not a url", 5, b"sqlite:///x.db"],
        ["not a url", "", "none", "nosuchdb://host/db"],
    ),
    "table name": Kind(
        "web_sessions",
        ["", "two words", "1st", "x" * 49, "a;drop", 5],
        ["two words", "1st", "x" * 49, "a;drop", ""],
    ),
    "text or none": Kind(
        "prefix:", ["has space", "", 5, "tab\t"], ["has space", ""], takes_any_text=True
    ),
    "secret (32+ bytes)": Kind(
        "k4d4de0a5c72713ef5fa0a488ce3d3f4",
        ["", "short", "k" * 31, 5, ["k" * 32], "\u00e9" * 15],
        ["", "short", "k" * 31],
    ),
    "list of secrets (32+ bytes each)": Kind(
        "od224f0bc270d92fcb447a0170ea8d06"
        + " "
        + "p535e3d623df2fc0ddf6c6ea1df0641ef7da288a",
        ["o" * 32, [5], [""], ["short"], ["o" * 32, "x"], b"o" * 32],
        ["short", "o" * 32 + " short"],
    ),
    "seconds (int >= 0) or none": Kind(
        "none", [-1, 1.5, "10", True], ["-1", "1.5", "", "never"]
    ),
}

#: Wrong values only one option has, checked when its store is built.
EXTRA_BAD_INI: dict[str, list[str]] = {
    "memcached_servers": [WRONG_STRING],
    "redis_url": ["redis://127.0.0.1:6379/notadb"],
    "key_prefix": ["x" * 200],  # longer than memcached keys allow
    "sqlite_path": ["{tmp}"],  # a directory, not a database file
    "file_path": ["{tmp}/regular-file"],  # a file, not a directory
    "sql_url": ["sqlite:///:memory:", "mysql+mysqldb://u:p@h/db"],  # no driver
}

#: Valid ini settings of each store, to try one store key at a time.
STORE_BASE = {
    "memory": {},
    "file": {"file_path": "{tmp}/files"},
    "sqlite": {"sqlite_path": "{tmp}/sessions.sqlite3"},
    "memcached": {"memcached_servers": "127.0.0.1:1"},
    "redis": {"redis_url": "redis://127.0.0.1:1/0"},
    "sql": {"sql_url": "sqlite:///{tmp}/sessions.db"},
    "cookie": {"secret_key": "a-secret-of-at-least-32-bytes-here"},
}


def store_for(name: str) -> str:
    """The store an option is tried with: memory, or the first one it applies to."""
    stores = stores_taking(name)
    if name == "key_prefix":
        return "memcached"
    return min(stores) if stores else "memory"


def ini_settings(name: str, value: Any, tmp: Path) -> dict[str, Any]:
    """Prefixed settings that are valid except for ``name`` = ``value``."""
    (tmp / "regular-file").write_text("not a directory")

    def fill(v: Any) -> Any:
        return v.replace("{tmp}", str(tmp)) if isinstance(v, str) else v

    settings = {} if name == "store" else {"store": store_for(name)}
    base = STORE_BASE.get(settings.get("store", "memory"), {})
    settings.update({k: fill(v) for k, v in base.items() if k != name})
    settings[name] = fill(value)
    return {PREFIX + key: value for key, value in settings.items()}


def assert_refused(build: Any, name: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        build()
    assert name in str(caught.value), f"the message does not name {name!r}"
    return caught.value


def cases(kind_values: str, *, strings: bool = True) -> list[Any]:
    """(option, wrong value) for every option; the quick loop (``-m "not
    slow"``) tries each option's first two, the full run every one.
    ``strings=False`` leaves out the values that are strings."""
    found = []
    for name, row in OPTIONS.items():
        kind = KINDS.get(row.kind)
        values: list[Any] = [] if kind is None else getattr(kind, kind_values)
        if kind_values == "bad_ini":
            values = values + EXTRA_BAD_INI.get(name, [])
        if not strings:
            values = [v for v in values if not isinstance(v, str)]
        found += [
            pytest.param(
                name,
                v,
                id=f"{name}={v!r}"[:60],
                marks=pytest.mark.slow if i > 1 else (),
            )
            for i, v in enumerate(values)
        ]
    return found


# -- the schema is covered ------------------------------------------------------------


def test_every_kind_has_wrong_values() -> None:
    missing = sorted({row.kind for row in OPTIONS.values()} - set(KINDS))
    assert missing == [], f"list wrong values for these option kinds: {missing}"


@pytest.mark.parametrize("name", list(OPTIONS))
def test_valid_ini_value_is_accepted(name: str, tmp_path: Path) -> None:
    """The control: the kind's valid value builds a middleware."""
    value = KINDS[OPTIONS[name].kind].valid_ini
    middleware = make_middleware(app, ini_settings(name, value, tmp_path))
    assert isinstance(middleware, SessionMiddleware)


# -- generic wrong values, for every option -------------------------------------------


def as_keyword(name: str, value: Any) -> Any:
    """Build the middleware with ``name=value``; ``store`` is the store argument."""
    if name == "store":
        return lambda: SessionMiddleware(app, store=value)
    return lambda: SessionMiddleware(app, store=MemoryStore(), **{name: value})


@pytest.mark.parametrize("name", list(OPTIONS))
def test_object_as_keyword(name: str) -> None:
    assert_refused(as_keyword(name, object()), name)


@pytest.mark.parametrize("name", list(OPTIONS))
def test_object_in_settings(name: str, tmp_path: Path) -> None:
    settings = ini_settings(name, object(), tmp_path)
    assert_refused(lambda: make_middleware(app, settings), name)


def free_text(name: str) -> bool:
    """Whether any string is a valid value of option ``name``."""
    return KINDS[OPTIONS[name].kind].takes_any_text


@pytest.mark.parametrize(
    "name", [n for n in OPTIONS if n in STORE_KEYS or not free_text(n)]
)
def test_wrong_string_as_keyword(name: str) -> None:
    assert_refused(as_keyword(name, WRONG_STRING), name)


@pytest.mark.parametrize("name", [n for n in OPTIONS if not free_text(n)])
def test_wrong_string_in_ini(name: str, tmp_path: Path) -> None:
    settings = ini_settings(name, WRONG_STRING, tmp_path)
    assert_refused(lambda: make_middleware(app, settings), name)


# -- wrong values of each kind -----------------------------------------------------------


@pytest.mark.parametrize(("name", "value"), cases("bad_python"))
def test_bad_python_value_as_keyword(name: str, value: Any) -> None:
    assert_refused(as_keyword(name, value), name)


@pytest.mark.parametrize(("name", "value"), cases("bad_python", strings=False))
def test_bad_python_value_in_settings(name: str, value: Any, tmp_path: Path) -> None:
    """Pyramid settings built in Python: non-string values are checked as they
    are (a string in settings is ini text: see test_bad_ini_string)."""
    settings = ini_settings(name, value, tmp_path)
    assert_refused(lambda: make_middleware(app, settings), name)


@pytest.mark.parametrize(("name", "value"), cases("bad_ini"))
def test_bad_ini_string(name: str, value: str, tmp_path: Path) -> None:
    settings = ini_settings(name, value, tmp_path)
    assert_refused(lambda: make_middleware(app, settings), name)
