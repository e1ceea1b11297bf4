"""Operator mistakes the ``wsgisession`` command must not take for success.

A command that works on the app's sessions (``sessions``, ``revoke``,
``clear-expired``) must not report "revoked 0 sessions" of a store it made
itself or cannot reach; a configuration mistake is one error line, never a
traceback; ``check`` must check the file it was given.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import filter_ini as ini
from helpers import run_cli as run
from servers import DB_PASSWORD
from sql_support import drop_tables, table_names

from wsgisession import SessionMiddleware
from wsgisession.errors import ConfigError
from wsgisession.stores import RedisStore, SQLStore

#: A sql_table the app never used: one letter missing.
TYPO = "wsgisession_sesions"


def no_app(environ: object, start_response: object) -> list[bytes]:
    return []


# -- a store the command would make ---------------------------------------------


@pytest.mark.parametrize("command", ["sessions", "revoke", "clear-expired"])
@pytest.mark.parametrize("server", ["postgresql", "mariadb"])
def test_a_mistyped_sql_table_is_refused_not_made(
    command: str,
    server: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """On a database server, the tables are what a path is to SQLite: a
    mistyped sql_table must not be created empty and reported as "revoked
    0 sessions" while the user's sessions live on in the app's table."""
    url = request.getfixturevalue(server + "_server").url
    drop_tables(url, TYPO)
    config = ini(tmp_path, f"store = sql\nsql_url = {url}\nsql_table = {TYPO}")
    user = [] if command == "clear-expired" else ["alice"]
    status, out, err = run(capsys, command, "--config", config, *user)
    made = table_names(url) & {TYPO, TYPO + "_locks"}
    drop_tables(url, TYPO)
    assert (status, out, made) == (1, "", set())
    assert err.startswith(f"wsgisession {command}: error: no session tables")
    assert f"table={TYPO!r}" in err and "check sql_url and sql_table" in err
    assert err.count("\n") == 1 and DB_PASSWORD not in err


@pytest.mark.parametrize("command", ["sessions", "revoke", "clear-expired"])
def test_an_sqlite_database_without_the_tables_is_refused(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """sql_url names the app's own database file, which exists, but the
    sessions live in another table (or another file)."""
    database = tmp_path / "app.sqlite3"
    with SessionMiddleware(no_app, SQLStore(f"sqlite:///{database}")) as middleware:
        session = middleware.open_session()
        session.bind_user("alice")
    config = ini(
        tmp_path, f"store = sql\nsql_url = sqlite:///{database}\nsql_table = {TYPO}"
    )
    user = [] if command == "clear-expired" else ["alice"]
    status, out, err = run(capsys, command, "--config", config, *user)
    assert (status, out) == (1, "")
    assert "no session tables" in err
    assert TYPO not in table_names(f"sqlite:///{database}")


def test_the_apps_sql_tables_are_used(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "app.sqlite3"
    with SessionMiddleware(no_app, SQLStore(f"sqlite:///{database}")) as middleware:
        for _ in range(2):
            middleware.open_session().bind_user("alice")
    config = ini(tmp_path, f"store = sql\nsql_url = sqlite:///{database}\n")
    assert run(capsys, "revoke", "--config", config, "alice")[:2] == (
        0,
        "revoked 2 sessions of 'alice'\n",
    )


@pytest.mark.parametrize("command", ["sessions", "revoke", "clear-expired"])
def test_a_memory_store_is_refused(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The app's memory store lives in the app's process: the command's own
    is new and empty, so "revoked 0 sessions" would be a lie."""
    user = [] if command == "clear-expired" else ["alice"]
    for where in (["--store", "memory"], ["--config", ini(tmp_path, "store = memory")]):
        status, out, err = run(capsys, command, *where, *user)
        assert (status, out) == (1, "")
        assert err.startswith(f"wsgisession {command}: error: store = memory")
        assert "the app's own process" in err and err.count("\n") == 1


# -- one error line ---------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "redis://:pa[ss@127.0.0.1:6379/0",  # a generated password with brackets
        "redis://user:pa]ss@127.0.0.1:6379/0",
        "redis://[::1:6379/0",  # the closing bracket forgotten
        "rediss+cluster://:pa[ss@127.0.0.1:6379",
    ],
)
def test_a_redis_url_with_an_unmatched_bracket_is_a_config_error(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConfigError, match="invalid RedisStore url") as caught:
        RedisStore(url)
    assert "pa[ss" not in str(caught.value) and "pa]ss" not in str(caught.value)
    config = ini(tmp_path, f"store = redis\nredis_url = {url}")
    status, out, err = run(capsys, "check", "--config", config)
    assert (status, out) == (1, "")
    assert err.startswith("wsgisession check: error: ")
    assert err.count("\n") == 1 and "Traceback" not in err and "ss@" not in err


# -- check checks what it was given ---------------------------------------------------


@pytest.mark.parametrize("command", ["check", "clear-expired", "sessions"])
def test_an_empty_config_argument_is_not_taken_for_none(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--config "$APP_INI"`` with the variable unset: check must fail, not
    report the default store reached (a deployment script would go on)."""
    user = ["alice"] if command == "sessions" else []
    status, out, err = run(capsys, command, "--config", "", *user)
    assert (status, out) == (1, "")
    assert err.startswith(f"wsgisession {command}: error: --config needs a file")
    assert err.count("\n") == 1
