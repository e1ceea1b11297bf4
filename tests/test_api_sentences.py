"""API.md sections 1 to 6, read sentence by sentence again: the statements
this reading found broken at their edges."""

from __future__ import annotations

import configparser
from pathlib import Path
from typing import Any

import pytest
from helpers import build_store, store_argument

from wsgisession import SessionMiddleware, make_middleware
from wsgisession.errors import ConfigError
from wsgisession.stores import SignedCookieStore
from wsgisession.stores.base import Store

KINDS = ["memory", "file", "sqlite", "memcached", "redis", "cookie"]
SECRET_TAIL = "uV2pLx9rT4wY7nB1mK5jH3gF6dS0aQ"


@pytest.fixture(params=KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    kind = request.param
    if kind == "cookie":
        return SignedCookieStore("seaf5bf2337958ea5df1b7e2da9d9a9e")
    return build_store(kind, store_argument(kind, request, tmp_path))


def noop_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [])
    return [b""]


@pytest.mark.parametrize("prefix", ["", "wsgisession."])
def test_make_middleware_reports_a_bad_percent_of_a_section_without_its_value(
    prefix: str,
) -> None:
    """Section 3: make_middleware takes "a configparser section"; a value
    with a lone ``%`` (a secret key, a password) is a ConfigError naming the
    key, as an unknown key is, and never shows the value. configparser's
    own InterpolationSyntaxError escaped, carrying the secret's tail."""
    parser = configparser.ConfigParser()
    parser.read_string(
        f"[session]\n{prefix}store = cookie\n{prefix}secret_key = Zq8%{SECRET_TAIL}\n"
    )
    with pytest.raises(ConfigError, match="secret_key") as raised:
        make_middleware(noop_app, parser["session"], prefix=prefix)
    assert SECRET_TAIL[:8] not in str(raised.value)


def test_make_middleware_reports_a_missing_reference_of_a_section() -> None:
    """``%(here)s`` is Paste's global: a plain configparser section lacks it,
    and that is a ConfigError naming the key and the reference."""
    parser = configparser.ConfigParser()
    parser.read_string("[session]\nstore = file\nfile_path = %(here)s/sessions\n")
    with pytest.raises(ConfigError, match=r"file_path.*here"):
        make_middleware(noop_app, parser["session"], prefix="")


@pytest.mark.parametrize(
    "key",
    ["é" * 43, "sessionid\u2028", "\udcff" * 43],
    ids=["latin", "separator", "surrogate"],
)
def test_delete_of_a_key_no_session_can_have_is_not_an_error(
    store: Store, key: str
) -> None:
    """Section 4: every store has ``delete(session_key)``, and removing an
    absent record is not an error (its docstring); a string that is no id
    names none. Non-ASCII text raised UnicodeEncodeError on every
    server-side store, where ``exists()`` of the same string says False."""
    middleware = SessionMiddleware(noop_app, store)
    session = middleware.open_session()
    session["kept"] = 1
    session.save()
    assert store.exists(key) is False
    store.delete(key)
    assert middleware.open_session(session.session_key)["kept"] == 1
