"""Text that is not plain ASCII where a user, an operator or a client puts it.

Cookie settings with an internationalized domain or path (a Flask app's
``SESSION_COOKIE_DOMAIN = "münchen.de"``, ``APPLICATION_ROOT = "/café"``)
are sent as browsers match them, as werkzeug sends Flask's own cookie; the
command line prints user ids and paths its terminal cannot show escaped,
never failing after it did its work; an ini file saved with a byte order
mark is named as such.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import flask
import pytest
import session_flows as flows
import webtest
from helpers import increment_app, run_cli

from wsgisession import SessionMiddleware, make_middleware
from wsgisession.contrib.flask import init_app
from wsgisession.errors import ConfigError
from wsgisession.stores import MemoryStore, SQLiteStore, SQLStore

ROOT = Path(__file__).resolve().parent.parent
USER = "José 😀"  # an emoji: no 8-bit encoding has it


def flask_app(config: dict[str, Any], *, wsgisession: bool) -> flask.Flask:
    """An app setting a session value, on Flask's cookie session or wsgisession."""
    app = flask.Flask(__name__)
    app.config.update(config, SECRET_KEY="a Flask secret for its cookie session")
    if wsgisession:
        init_app(app, store=MemoryStore())

    @app.get("/")
    def index() -> str:
        flask.session["city"] = "München"
        return "ok"

    return app


def cookie_attributes(app: flask.Flask, host: str) -> list[str]:
    response = webtest.TestApp(app, extra_environ={"HTTP_HOST": host}).get("/")
    return flows.session_cookie(response, "session").split("; ")[1:]


@pytest.mark.parametrize(
    "config",
    [
        {"SESSION_COOKIE_DOMAIN": "münchen.de"},
        {"SESSION_COOKIE_DOMAIN": ".MÜNCHEN.de"},
        {"APPLICATION_ROOT": "/café"},
        {"SESSION_COOKIE_PATH": "/日本/shop"},
    ],
)
def test_a_flask_app_with_an_internationalized_domain_or_path_keeps_its_cookie(
    config: dict[str, Any],
) -> None:
    """Flask sends ``Domain=xn--mnchen-3ya.de`` and ``Path=/caf%C3%A9``;
    init_app refused such settings (ConfigError), so an app that switched
    no longer started, where the docs promise it keeps its cookie."""
    flasks = cookie_attributes(flask_app(config, wsgisession=False), "www.münchen.de")
    ours = cookie_attributes(flask_app(config, wsgisession=True), "www.münchen.de")
    assert [a for a in ours if a.startswith(("Domain=", "Path="))] == [
        a for a in flasks if a.startswith(("Domain=", "Path="))
    ]


def test_an_ini_file_may_name_the_domain_and_path_as_written() -> None:
    """What a browser matches: the domain's IDNA form, the path's UTF-8
    percent-encoded (a browser asks for ``/café`` as ``/caf%C3%A9``)."""
    settings = {"store": "memory", "cookie_domain": "münchen.de"}
    app = make_middleware(increment_app, {**settings, "cookie_path": "/café"}, "")
    assert (app.settings.cookie_domain, app.settings.cookie_path) == (
        "xn--mnchen-3ya.de",
        "/caf%C3%A9",
    )
    response = webtest.TestApp(app).get("/caf%C3%A9/")
    flows.assert_cookie_attributes(
        flows.session_cookie(response),
        ["Domain=xn--mnchen-3ya.de", "Path=/caf%C3%A9"],
    )


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("cookie_domain", "m\ud800nchen.de"),
        ("cookie_domain", "münchen..de"),
        ("cookie_domain", "mün chen.de"),
        ("cookie_path", "/caf\udce9"),
        ("cookie_path", "/café; x"),
    ],
)
def test_a_name_that_cannot_be_encoded_is_a_config_error(key: str, value: str) -> None:
    """A lone surrogate (an environment variable's raw byte) or an empty
    label is a ConfigError naming the option, not a UnicodeError."""
    with pytest.raises(ConfigError, match=key):
        SessionMiddleware(increment_app, MemoryStore(), **{key: value})


#: Names with UTS 46's deviation characters, as browsers encode them (the
#: URL standard: UTS 46, non-transitional); Python's IDNA 2003 codec maps
#: the characters away: ``fass.de``, ``xn--qxaegecap4c9d.gr``, ``ab.de``.
BROWSER_FORMS = {
    "faß.de": "xn--fa-hia.de",
    "www.FAẞ.de": "www.xn--fa-hia.de",
    "ελληνικός.gr": "xn--qxaegecap6byf.gr",
    "a\u200db.de": None,  # refused by browsers: no host has it
}


@pytest.mark.parametrize("domain", list(BROWSER_FORMS))
def test_a_domain_browsers_encode_otherwise_is_not_sent_in_python_s_form(
    domain: str,
) -> None:
    """Chromium asks for ``www.faß.test`` as ``www.xn--fa-hia.test`` and
    drops a cookie whose Domain is Python's ``fass.test``: every request
    began a new session, without a word. Such a name is sent as browsers
    encode it, or refused (ConfigError naming the key)."""
    try:
        app = SessionMiddleware(increment_app, MemoryStore(), cookie_domain=domain)
    except ConfigError as exc:
        assert "cookie_domain" in str(exc) and "xn--" in str(exc)
    else:
        assert app.settings.cookie_domain == BROWSER_FORMS[domain]


def test_a_database_url_holding_a_byte_that_is_not_utf8_is_a_config_error(
    tmp_path: Path,
) -> None:
    """``sql_url = sqlite:///%(here)s/sessions.sqlite3`` in a directory whose
    name is latin-1 (or a password from an environment variable holding raw
    bytes): the store's constructor failed in a UnicodeEncodeError traceback
    from SQLAlchemy, at startup."""
    url = f"sqlite:///{tmp_path}/caf\udce9/sessions.sqlite3"
    with pytest.raises(ConfigError, match="not UTF-8"):
        SQLStore(url)
    with pytest.raises(ConfigError, match="not UTF-8"):
        make_middleware(increment_app, {"store": "sql", "sql_url": url}, "")


# -- the command line ---------------------------------------------------------


def log_in(path: Path, user: str) -> None:
    with SessionMiddleware(increment_app, SQLiteStore(path)) as middleware:
        middleware.open_session().bind_user(user)


def wsgisession(*argv: str, encoding: str) -> subprocess.CompletedProcess[str]:
    """The command with stdout in ``encoding``, as on a terminal of that
    locale (``LANG=de_DE.ISO-8859-1``), read back as that encoding."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": encoding}
    return subprocess.run(
        [sys.executable, "-m", "wsgisession", *argv],
        capture_output=True,
        encoding=encoding,
        env=env,
        timeout=60,
        check=False,
    )


@pytest.mark.slow  # a Python subprocess per command
@pytest.mark.parametrize("encoding", ["latin-1", "ascii"])
def test_user_ids_the_terminal_cannot_show_are_printed_escaped(
    tmp_path: Path, encoding: str
) -> None:
    """``sessions`` and ``revoke`` print the user id, ``clear-expired`` the
    store's path: an emoji on a latin-1 terminal ended them in a
    UnicodeEncodeError traceback, ``revoke`` after it had ended the
    sessions (so the operator could not tell it had)."""
    path = tmp_path / "sessions.sqlite3"
    log_in(path, USER)
    store = ["--store", "sqlite", "--sqlite-path", str(path)]
    listing = wsgisession("sessions", *store, USER, encoding=encoding)
    assert (listing.returncode, listing.stderr) == (0, "")
    assert listing.stdout.splitlines()[-1].startswith("1 live session of 'Jos")
    assert "\\U0001f600'" in listing.stdout
    revoking = wsgisession("revoke", *store, USER, encoding=encoding)
    assert (revoking.returncode, revoking.stderr) == (0, "")
    assert revoking.stdout.startswith("revoked 1 session of 'Jos")
    directory = tmp_path / "日本"
    directory.mkdir(mode=0o700)
    clearing = wsgisession(
        "clear-expired",
        "--store",
        "file",
        "--file-path",
        str(directory),
        encoding=encoding,
    )
    assert (clearing.returncode, clearing.stderr) == (0, "")
    assert "\\u65e5\\u672c" in clearing.stdout


def test_an_ini_file_with_a_byte_order_mark_is_named_as_such(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Notepad's UTF-8 starts with a BOM, which neither Paste Deploy nor
    ``check`` reads: the error said line 1 came before the first
    [section], though line 1 is the section's header."""
    ini = tmp_path / "app.ini"
    text = "[filter:session]\nuse = egg:wsgisession#session\nstore = memory\n"
    ini.write_text(text, encoding="utf-8-sig")
    status, out, err = run_cli(capsys, "check", "--config", f"{ini}#session")
    assert (status, out) == (1, "")
    assert "byte order mark" in err and "without a BOM" in err, err
