"""A relative ``file_path`` or ``sqlite_path`` in a Paste Deploy section.

Each process resolved it from its own working directory: a server started by
systemd from ``/``, ``wsgisession check`` run from a shell, ``wsgisession
clear-expired`` run by cron from ``$HOME`` each used a store of their own
(each created it), and the sweep reported 0 removed sessions from a store
the app never used. Refused at startup, naming the key.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from helpers import run_cli

from wsgisession import make_middleware
from wsgisession.config import parse_settings
from wsgisession.errors import ConfigError
from wsgisession.stores import FileStore, SQLiteStore

STORES = [
    ("sqlite", "sqlite_path", "var/sessions.sqlite3"),
    ("file", "file_path", "var"),
]


def make_app(global_conf: dict[str, str], **local: str) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    return app


def write_ini(directory: Path, store: str, key: str, path: str) -> Path:
    ini = directory / "app.ini"
    ini.write_text(
        textwrap.dedent(
            f"""\
            [filter:session]
            use = egg:wsgisession#session
            store = {store}
            {key} = {path}

            [app:counter]
            use = call:{__name__}:make_app

            [pipeline:main]
            pipeline = session counter
            """
        )
    )
    return ini


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory that is not the ini file's, as a server's or cron's."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


@pytest.mark.parametrize(("store", "key", "path"), STORES)
def test_loadapp_refuses_a_relative_store_path(
    store: str, key: str, path: str, tmp_path: Path, elsewhere: Path
) -> None:
    from paste.deploy import loadapp

    ini = write_ini(tmp_path, store, key, path)
    with pytest.raises(ConfigError, match=f"{key} = {path} is a relative path"):
        loadapp(f"config:{ini}")
    assert list(elsewhere.iterdir()) == []  # nothing made in the working directory


@pytest.mark.parametrize(("store", "key", "path"), STORES)
@pytest.mark.parametrize("command", ["check", "clear-expired"])
def test_the_cli_refuses_a_relative_store_path(
    store: str,
    key: str,
    path: str,
    command: str,
    tmp_path: Path,
    elsewhere: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ini = write_ini(tmp_path, store, key, path)
    status, out, err = run_cli(capsys, command, "--config", f"{ini}#session")
    assert status != 0 and "removed" not in out and "store reached" not in out
    assert f"{key} = {path} is a relative path" in err and "%(here)s" in err
    assert list(elsewhere.iterdir()) == []


def test_paths_beside_the_ini_file_still_work(tmp_path: Path, elsewhere: Path) -> None:
    from paste.deploy import loadapp

    ini = write_ini(tmp_path, "sqlite", "sqlite_path", "%(here)s/var/s.sqlite3")
    store = loadapp(f"config:{ini}").store
    assert isinstance(store, SQLiteStore)
    assert store.path == str(tmp_path / "var" / "s.sqlite3")
    ini = write_ini(tmp_path, "file", "file_path", "%(here)s/sessions")
    assert isinstance(loadapp(f"config:{ini}").store, FileStore)


def test_flat_settings_without_an_ini_file_keep_relative_paths(
    elsewhere: Path,
) -> None:
    """Pyramid's settings and Python mappings carry no ``here``: a relative
    path there is the app's own choice, resolved from its working directory."""
    _, spec = parse_settings({"store": "sqlite", "sqlite_path": "s.sqlite3"})
    assert spec.sqlite_path == "s.sqlite3"
    settings = {"wsgisession.store": "sqlite", "wsgisession.sqlite_path": "s.sqlite3"}
    store = make_middleware(make_app({}), settings).store
    assert isinstance(store, SQLiteStore)
    assert store.path == str(elsewhere / "s.sqlite3")
