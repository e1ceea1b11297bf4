"""Ini files loaded as servers load them, and ``wsgisession check`` on them.

``check`` promises to read a section "exactly as the app will": a section
that ``loadapp()`` cannot build must not pass it. And what the app builds
from a section must be what the docs say: a section without a store logs
the default store it falls back to, as ``SessionMiddleware`` does.
"""

from __future__ import annotations

import logging
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import pytest
from helpers import run_cli

from wsgisession import make_middleware
from wsgisession import middleware as middleware_module
from wsgisession.errors import ConfigError
from wsgisession.stores import MemoryStore, SQLiteStore, SQLStore


def make_app(global_conf: dict[str, str], **local: str) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    return app


def write_ini(directory: Path, filter_lines: str) -> Path:
    """A pipeline of the ``[filter:session]`` of ``filter_lines`` and an app."""
    ini = directory / "app.ini"
    body = textwrap.dedent(filter_lines).strip()
    ini.write_text(
        f"[filter:session]\n{body}\n\n"
        f"[app:hello]\nuse = call:{__name__}:make_app\n\n"
        "[pipeline:main]\npipeline = session hello\n"
    )
    return ini


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory that is not the ini file's, as a server's or cron's."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


# -- the filter's factory: check fails where loadapp() finds none ---------------


@pytest.mark.parametrize(
    "use",
    [
        "egg:wsgisession#session",
        "call:wsgisession.paste:filter_factory",
        # Paste Deploy's default entry point name is "main".
        "egg:wsgisession",
        "egg:wsgisession#sesion",
        "egg:wsgisesion#session",
        "call:wsgisession.paste:filter_factroy",
        # A call: filter is called as a paste.filter_factory.
        "call:wsgisession.paste:filter_app_factory",
    ],
)
def test_check_fails_where_loadapp_finds_no_filter(
    use: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``use = egg:wsgisession`` (no ``#session``) passed ``check``, which
    never looked the factory up; ``loadapp()`` then failed with a LookupError
    at the deployment that ``check`` had just approved."""
    from paste.deploy import loadapp

    ini = write_ini(tmp_path, f"use = {use}\nstore = memory")
    try:
        loadapp(f"config:{ini}")
    except (LookupError, ImportError, AttributeError, TypeError):
        loads = False
    else:
        loads = True
    status, out, err = run_cli(capsys, "check", "--config", f"{ini}#session")
    assert (status == 0) == loads, err or out
    if not loads:
        assert "Traceback" not in err and err.count("\n") == 1
        assert f"[filter:session] use = {use}" in err


@pytest.mark.parametrize(
    "use",
    [
        "egg:wsgisession#session",
        "egg:wsgisession",
        "call:wsgisession.paste:filter_factory",
        "call:wsgisession.paste:filter_app_factory",
    ],
)
def test_check_fails_where_loadapp_cannot_load_a_filter_app_section(
    use: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """In a ``[filter-app:]`` section Paste Deploy takes a ``call:``
    factory's protocol from the section's kind, ``paste.filter-app_factory``,
    which no filter has: ``loadapp()`` fails on every one ("Protocol
    unknown"). ``check`` approved ``call:...:filter_factory`` there, and its
    error for ``filter_app_factory`` told to write just that."""
    from paste.deploy import loadapp

    ini = tmp_path / "app.ini"
    ini.write_text(
        f"[filter-app:session]\nuse = {use}\nnext = hello\nstore = memory\n\n"
        f"[app:hello]\nuse = call:{__name__}:make_app\n"
    )
    try:
        loadapp(f"config:{ini}#session")
    except (LookupError, ImportError, AttributeError, TypeError, AssertionError):
        loads = False
    else:
        loads = True
    status, out, err = run_cli(capsys, "check", "--config", f"{ini}#session")
    assert (status == 0) == loads, err or out
    if not loads:
        assert "Traceback" not in err and err.count("\n") == 1
        assert f"[filter-app:session] use = {use}" in err
        assert "egg:wsgisession#session" in err


@pytest.fixture
def app_filter_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A module of the app holding its session filter, which imports only
    where the server runs (it reads a variable only the server sets)."""
    code = "import os\nSETTINGS = os.environ['MYAPP_SETTINGS']\n"
    (tmp_path / "myapp_session_filter.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("MYAPP_SETTINGS", raising=False)
    return "myapp_session_filter"


def test_clear_expired_imports_nothing_of_the_app(
    app_filter_module: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """cron's ``clear-expired --config`` needs the store, not the filter: it
    imported the section's ``call:`` target (for the lookup meant for
    ``check``) and ended in that module's KeyError traceback, so expired
    sessions were never cleared."""
    ini = write_ini(
        tmp_path,
        f"use = call:{app_filter_module}:session_filter\n"
        "store = sqlite\nsqlite_path = %(here)s/s.sqlite3",
    )
    with SQLiteStore(tmp_path / "s.sqlite3") as store:  # the app's
        store.clear_expired()  # made, as by the app's first save
    status, out, err = run_cli(capsys, "clear-expired", "--config", f"{ini}#session")
    assert (status, err) == (0, "")
    assert out.startswith("removed 0 expired sessions")


def test_check_names_a_call_target_that_fails_to_import(
    app_filter_module: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``check`` reports it as it reports a missing one: one line naming the
    section, no traceback."""
    use = f"call:{app_filter_module}:session_filter"
    ini = write_ini(tmp_path, f"use = {use}\nstore = memory")
    status, out, err = run_cli(capsys, "check", "--config", f"{ini}#session")
    assert (status, out) == (1, "")
    assert "Traceback" not in err and err.count("\n") == 1
    assert f"[filter:session] use = {use}: importing it raised KeyError" in err


def test_the_bare_egg_name_loads_the_filter(tmp_path: Path) -> None:
    """``use = egg:wsgisession`` is Paste's usual spelling: the package's
    ``main`` filter is the session filter."""
    from paste.deploy import loadapp

    from wsgisession import SessionMiddleware

    ini = write_ini(tmp_path, "use = egg:wsgisession\nstore = memory")
    assert isinstance(loadapp(f"config:{ini}"), SessionMiddleware)


# -- a section without a store: the default store is logged -------------------


@pytest.fixture
def default_store_unlogged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> pytest.MonkeyPatch:
    """The default store under ``tmp_path``, not yet logged in this process."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(middleware_module, "_default_store_logged", False)
    return monkeypatch


def notices(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "no store given" in r.message]


def test_a_paste_filter_without_a_store_logs_the_default_store(
    tmp_path: Path,
    default_store_unlogged: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """docs/deploying.rst: the INFO line ``no store given; using
    SQLiteStore(...)`` tells that the app runs on the default store under
    the temporary directory (sessions gone at reboot). A filter section
    without ``store`` ran on that very store without the line."""
    from paste.deploy import loadapp

    ini = write_ini(tmp_path, "use = egg:wsgisession#session\ncookie_age = 60")
    with caplog.at_level(logging.INFO, logger="wsgisession"):
        app = loadapp(f"config:{ini}")
    assert isinstance(app.store, SQLiteStore)
    assert app.store.path.startswith(str(tmp_path))
    assert notices(caplog) == [f"no store given; using {app.store!r}"]


def test_pyramid_settings_without_a_store_log_the_default_store(
    default_store_unlogged: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="wsgisession"):
        wrapped = make_middleware(make_app({}), {"wsgisession.cookie_age": "60"})
    assert isinstance(wrapped.store, SQLiteStore)
    assert len(notices(caplog)) == 1


def test_a_filter_that_names_its_store_logs_no_notice(
    tmp_path: Path,
    default_store_unlogged: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from paste.deploy import loadapp

    ini = write_ini(tmp_path, "use = egg:wsgisession#session\nstore = memory")
    with caplog.at_level(logging.INFO, logger="wsgisession"):
        assert isinstance(loadapp(f"config:{ini}").store, MemoryStore)
    assert notices(caplog) == []


# -- an SQLite sql_url with a relative path ----------------------------------


def test_loadapp_refuses_a_relative_sqlite_sql_url(
    tmp_path: Path, elsewhere: Path
) -> None:
    """``sqlite:///var/s.db`` is relative: the server, ``check`` and cron's
    ``clear-expired`` each opened a database of their own in their working
    directory, as a relative ``sqlite_path`` did before it was refused."""
    from paste.deploy import loadapp

    ini = write_ini(
        tmp_path,
        "use = egg:wsgisession#session\nstore = sql\nsql_url = sqlite:///s.db",
    )
    with pytest.raises(ConfigError, match="SQLite file s.db by a relative path"):
        loadapp(f"config:{ini}")
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize("command", ["check", "clear-expired"])
def test_the_cli_refuses_a_relative_sqlite_sql_url(
    command: str, tmp_path: Path, elsewhere: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ini = write_ini(
        tmp_path,
        "use = egg:wsgisession#session\nstore = sql\nsql_url = sqlite+pysqlite:///s.db",
    )
    status, out, err = run_cli(capsys, command, "--config", f"{ini}#session")
    assert status != 0 and "removed" not in out and "store reached" not in out
    assert "sqlite:///%(here)s/s.db" in err
    assert list(elsewhere.iterdir()) == []


def test_an_sqlite_sql_url_beside_the_ini_file_still_works(
    tmp_path: Path, elsewhere: Path
) -> None:
    from paste.deploy import loadapp

    ini = write_ini(
        tmp_path,
        "use = egg:wsgisession#session\nstore = sql\nsql_url = sqlite:///%(here)s/s.db",
    )
    with loadapp(f"config:{ini}") as app:
        assert isinstance(app.store, SQLStore)
    assert list(elsewhere.iterdir()) == []
