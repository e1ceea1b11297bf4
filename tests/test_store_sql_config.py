"""SQLStore in ini files and on the command line: ``store = sql``, ``init-db``,
and the database password kept out of every error, output and log line."""

from __future__ import annotations

import logging
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import filter_ini as ini
from helpers import run_cli as run
from servers import DB_PASSWORD, DatabaseServer
from sql_support import drop_tables, table_names

from wsgisession.cli import main
from wsgisession.config import describe_options, parse_settings
from wsgisession.errors import ConfigError, StoreUnavailable
from wsgisession.paste import make_middleware
from wsgisession.stores import SQLStore, registry

DOWN_URL = f"postgresql+psycopg://app:{DB_PASSWORD}@127.0.0.1:1/db"


def no_app(environ: object, start_response: object) -> list[bytes]:
    raise AssertionError("not called")  # pragma: no cover


# -- the ini keys ---------------------------------------------------------------


def test_the_store_declares_its_keys_in_the_schema() -> None:
    assert registry.builtin_stores()["sql"] is SQLStore
    schema = {info.name: info for info in describe_options()}
    assert schema["sql_url"].default is None
    assert schema["sql_table"].default == "wsgisession_sessions"
    assert registry.stores_taking("sql_url") == ["sql"]


def test_an_ini_section_builds_the_store(tmp_path: Path) -> None:
    settings = {
        "wsgisession.store": "sql",
        "wsgisession.sql_url": f"sqlite:///{tmp_path / 'sessions.db'}",
        "wsgisession.sql_table": "web_sessions",
    }
    store = make_middleware(no_app, settings).store
    assert isinstance(store, SQLStore)
    assert repr(store) == (
        f"SQLStore(sqlite:///{tmp_path / 'sessions.db'}, table='web_sessions')"
    )
    store.create_tables()
    assert table_names(f"sqlite:///{tmp_path / 'sessions.db'}") == {
        "web_sessions",
        "web_sessions_locks",
    }
    store.close()


def test_sql_url_is_required() -> None:
    with pytest.raises(ConfigError, match="store = sql needs sql_url"):
        parse_settings({"store": "sql"})


def test_a_bad_table_name_is_refused_when_parsed() -> None:
    settings = {"store": "sql", "sql_url": DOWN_URL, "sql_table": "web sessions"}
    with pytest.raises(ConfigError, match="'sql_table'.*letters, digits") as caught:
        parse_settings(settings)
    assert DB_PASSWORD not in str(caught.value)


# -- the password ----------------------------------------------------------------


@pytest.mark.parametrize(
    "settings",
    [
        {"store": "sql", "sql_url": DB_PASSWORD},  # no URL at all: never echoed
        {"store": "sql", "sql_url": f"nosuchdb://app:{DB_PASSWORD}@127.0.0.1/db"},
        {"store": "sql", "sql_url": f"mysql+mysqldb://app:{DB_PASSWORD}@h/db"},
        {"store": "sql", "sql_url": f"sqlite://app:{DB_PASSWORD}@/"},
        {"store": "sql", "sql_url": DOWN_URL, "sql_table": "1st"},
        {"store": "redis", "sql_url": DOWN_URL},
    ],
)
def test_config_errors_never_show_the_password(settings: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(settings)[1].build()
    assert DB_PASSWORD not in str(caught.value)


def test_parsing_logs_no_password(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="wsgisession"):
        _, spec = parse_settings({"store": "sql", "sql_url": DOWN_URL})
    assert "sql_url" in caplog.text  # the parsed spec was logged
    assert DB_PASSWORD not in caplog.text
    assert DB_PASSWORD not in repr(spec)
    assert "***@127.0.0.1:1/db" in repr(spec)


def test_check_shows_no_password(
    postgresql_server: DatabaseServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert DB_PASSWORD in postgresql_server.url
    config = ini(tmp_path, f"store = sql\nsql_url = {postgresql_server.url}")
    with caplog.at_level(logging.DEBUG, logger="wsgisession"):
        status, out, err = run(capsys, "check", "--config", config)
    assert status == 0, err
    assert "store reached: SQLStore(postgresql+psycopg://" in out
    assert DB_PASSWORD not in out + err + caplog.text


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql+psycopg://app@127.0.0.1:1/db?password={DB_PASSWORD}",
        f"postgresql+psycopg://app@127.0.0.1:1/db?sslmode=disable&PASSWORD={DB_PASSWORD}",
        f"mysql+pymysql://app@127.0.0.1:1/db?password={DB_PASSWORD}",
        # libpq's passphrase of the client's TLS key is a credential too.
        f"postgresql+psycopg://app@127.0.0.1:1/db?sslpassword={DB_PASSWORD}",
        f"postgresql+psycopg://app@127.0.0.1:1/db?sslmode=disable&SSLPassword={DB_PASSWORD}",
    ],
)
def test_a_password_in_the_query_is_never_shown(url: str) -> None:
    """libpq and PyMySQL take the password as a query parameter too."""
    store = SQLStore(url, timeout=0.5)
    assert DB_PASSWORD not in repr(store)
    assert "=***" in repr(store)
    with pytest.raises(StoreUnavailable) as caught:
        store.load("A" * 43)
    assert DB_PASSWORD not in str(caught.value)
    store.close()


def test_an_unreachable_database_is_one_line_without_the_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = ini(tmp_path, f"store = sql\nsql_url = {DOWN_URL}")
    for command, hint in [("check", "--sql-url"), ("init-db", "else use --sql")]:
        status, out, err = run(capsys, command, "--config", config)
        assert status == 1
        start = f"wsgisession {command}: error: cannot reach the store: SQLStore at "
        assert err.startswith(start + "postgresql+psycopg://app:***@127.0.0.1:1/db")
        assert hint in err
        assert err.count("\n") == 1 and "Traceback" not in err
        assert DB_PASSWORD not in out + err


@pytest.mark.parametrize(
    ("query", "quoted"),
    [
        ("connect_timeout=5s", "'5s'"),  # PyMySQL's whole seconds
        ("local_infile=maybe", "'maybe'"),
    ],
)
def test_a_bad_query_option_value_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], query: str, quoted: str
) -> None:
    """SQLAlchemy converts some query options when it makes the engine: a
    value it cannot read is a ConfigError naming the URL (redacted) in an
    app and one line from check, not a bare ValueError traceback."""
    url = f"mysql+pymysql://app:{DB_PASSWORD}@127.0.0.1:1/db?{query}"
    with pytest.raises(ConfigError) as caught:
        SQLStore(url)
    message = str(caught.value)
    assert message.startswith("SQLStore url mysql+pymysql://app:***@")
    assert quoted in message and DB_PASSWORD not in message
    status, out, err = run(
        capsys, "check", "--config", ini(tmp_path, f"store = sql\nsql_url = {url}")
    )
    assert status == 1 and err.startswith("wsgisession check: error: store = sql")
    assert err.count("\n") == 1 and DB_PASSWORD not in out + err


@pytest.mark.parametrize(
    ("url", "advice"),
    [  # psycopg 3 and PyMySQL are installed; psycopg2 and MySQLdb are not
        (
            f"postgresql+psycopg2://app:{DB_PASSWORD}@db/app",
            "psycopg2; pip install psycopg2-binary, or write postgresql+psycopg://",
        ),
        (
            f"mysql://app:{DB_PASSWORD}@db/app",
            "MySQLdb; write mysql+pymysql:// to use PyMySQL",
        ),
        (  # the MariaDB dialect kept: not mysql+pymysql://
            f"mariadb://app:{DB_PASSWORD}@db/app",
            "MySQLdb; write mariadb+pymysql:// to use PyMySQL",
        ),
        (
            f"postgres://app:{DB_PASSWORD}@db/app",
            "dialect; SQLAlchemy calls it postgresql: write postgresql+psycopg://",
        ),
    ],
)
def test_a_url_naming_a_missing_driver_says_what_works(url: str, advice: str) -> None:
    """The hint named the backend's usual driver (``pip install PyMySQL``
    for ``mysql://``, which SQLAlchemy still reads as MySQLdb): following
    it changed nothing. It now names the URL that uses the installed one."""
    with pytest.raises(ConfigError) as caught:
        SQLStore(url)
    assert advice in str(caught.value) and DB_PASSWORD not in str(caught.value)


def test_a_password_in_sql_url_as_an_argument_is_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Arguments show in ps: the URL with its password belongs in the ini file."""
    for command in ("check", "clear-expired", "init-db"):
        argv = [command, "--store", "sql", "--sql-url", DOWN_URL]
        status, out, err = run(capsys, *argv)
        assert (status, out) == (1, "")
        assert err.startswith(
            f"wsgisession {command}: error: --sql-url with a password is refused"
        )
        assert "use --config" in err and DB_PASSWORD not in err


def test_a_tls_key_passphrase_in_sql_url_as_an_argument_is_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``?sslpassword=`` (libpq) shows in ps like a password: refused too."""
    url = f"postgresql+psycopg://127.0.0.1:1/db?sslpassword={DB_PASSWORD}"
    status, out, err = run(capsys, "check", "--store", "sql", "--sql-url", url)
    assert (status, out) == (1, "")
    assert "--sql-url with a password is refused" in err
    assert DB_PASSWORD not in err


# -- wsgisession init-db ------------------------------------------------------------


def test_init_db_creates_the_tables_on_sqlite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "sessions.db"
    config = ini(tmp_path, f"store = sql\nsql_url = sqlite:///{database}")
    status, out, err = run(capsys, "init-db", "--config", config)
    assert (status, err) == (0, "")
    assert out == f"tables of SQLStore(sqlite:///{database}, table=" + (
        "'wsgisession_sessions') are in place\n"
    )
    with sqlite3.connect(database) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    assert {"wsgisession_sessions", "wsgisession_sessions_locks"} <= tables
    assert run(capsys, "init-db", "--config", config)[0] == 0  # again: no error


def test_init_db_sql_prints_the_ddl_and_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "sessions.db"
    config = ini(
        tmp_path,
        f"""
        store = sql
        sql_url = sqlite:///{database}
        sql_table = web_sessions
        """,
    )
    status, out, err = run(capsys, "init-db", "--config", config, "--sql")
    assert (status, err) == (0, "")
    assert "CREATE TABLE web_sessions (" in out
    assert "CREATE TABLE web_sessions_locks (" in out
    assert "CREATE INDEX web_sessions_expires_at ON web_sessions (expires_at);" in out
    assert not database.exists()


def test_init_db_on_postgresql_from_the_config(
    postgresql_server: DatabaseServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = ini(
        tmp_path,
        f"store = sql\nsql_url = {postgresql_server.url}\nsql_table = cli_made",
    )
    status, out, err = run(capsys, "init-db", "--config", config)
    assert (status, err) == (0, "")
    assert "table='cli_made') are in place" in out and DB_PASSWORD not in out
    assert {"cli_made", "cli_made_locks"} <= table_names(postgresql_server.url)
    drop_tables(postgresql_server.url, "cli_made")


def test_init_db_help_says_what_it_is_for(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["init-db", "--help"])
    out = capsys.readouterr().out
    assert exited.value.code == 0
    assert "Create the tables of the SQL store (store = sql)" in out
    assert "wsgisession init-db --config production.ini#session --sql" in out
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "init-db" in capsys.readouterr().out


def test_init_db_on_another_store_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = ini(tmp_path, f"store = file\nfile_path = {tmp_path / 'sessions'}")
    status, out, err = run(capsys, "init-db", "--config", config)
    assert (status, out) == (1, "")
    assert err == (
        "wsgisession init-db: error: init-db is for store = sql; this "
        "configuration has store = file, which needs no tables created beforehand\n"
    )


# -- without the extra ------------------------------------------------------------

WITHOUT_SQLALCHEMY = """
import sys
sys.modules["sqlalchemy"] = None  # every import of SQLAlchemy now fails
from wsgisession.cli import main
from wsgisession.config import parse_settings
from wsgisession.stores import SQLStore
_, spec = parse_settings({"store": "sql", "sql_url": "sqlite:///never.db"})
try:
    spec.build()
except ImportError as exc:
    print("build:", exc)
sys.exit(main(["init-db", "--store", "sql", "--sql-url", "sqlite:///never.db"]))
"""


@pytest.mark.slow  # a Python subprocess
def test_the_store_is_known_without_sqlalchemy(tmp_path: Path) -> None:
    """The schema knows ``store = sql``; building it names the extra."""
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_SQLALCHEMY],
        check=False,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    hint = "SQLStore needs SQLAlchemy: pip install 'wsgisession[sql]'"
    assert result.stdout == f"build: {hint}\n"
    assert result.stderr == f"wsgisession init-db: error: {hint}\n"
    assert result.returncode == 1
    assert not (tmp_path / "never.db").exists()


# -- a table of the name that is not the store's --------------------------------


def test_a_table_of_other_columns_is_refused_and_left_alone(tmp_path: Path) -> None:
    # migrating.rst maps Beaker's table_name to sql_table: given Beaker's own
    # table (beaker_cache, ext:database's default), the store added its
    # user_key column and index to it, made beaker_cache_locks, and then
    # failed every request with "table beaker_cache has no column named key".
    database = tmp_path / "app.db"
    with sqlite3.connect(database) as conn:
        conn.execute(
            "CREATE TABLE beaker_cache (id INTEGER PRIMARY KEY, namespace "
            "VARCHAR(255) NOT NULL UNIQUE, accessed DATETIME NOT NULL, created "
            "DATETIME NOT NULL, data BLOB NOT NULL)"
        )
    url = f"sqlite:///{database}"
    schema = table_names(url)
    settings = {
        "wsgisession.store": "sql",
        "wsgisession.sql_url": url,
        "wsgisession.sql_table": "beaker_cache",
    }
    with make_middleware(no_app, settings) as middleware:
        session = middleware.open_session()
        session["user"] = "ann"
        with pytest.raises(ConfigError, match="'beaker_cache' exists but is not"):
            session.save()
    with sqlite3.connect(database) as conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(beaker_cache)")]
    assert "user_key" not in columns and table_names(url) == schema
    with SQLStore(url) as store:  # a table of its own is made beside it
        store.create_tables()
    assert table_names(url) > schema
