"""A custom store (``store = package.module:Class``) and the app's ``[DEFAULT]``.

``docs/configuration.rst``: a ``[DEFAULT]`` key that is a key of another
store (the app's own ``redis_url``, ``secret_key`` or ``key_prefix``) is
ignored; API.md section 6: Paste's globals never trip the key checks. A
custom store was called with every built-in store key ``[DEFAULT]`` held,
so the app did not start ("cannot be called with"); since custom stores
are given keys equal to a built-in default too, even ``encrypt = false``
there did it.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from helpers import run_cli

from wsgisession import _coerce as c
from wsgisession.stores import MemoryStore
from wsgisession.stores.base import IniOption

APP_GLOBALS = {
    "redis_url": "redis://127.0.0.1:6379/3",
    "secret_key": "the-apps-own-secret-of-more-than-32-bytes",
    "key_prefix": "myapp:",
    "encrypt": "false",
}


def _text(key: str, value: Any) -> str:
    return str(value)


class PlainStore(MemoryStore):
    """A custom store that takes no keys at all."""


class TableStore(MemoryStore):
    """A custom store that declares one key of its own."""

    ini_options = (
        IniOption("table_name", "text", "sessions", "The table.", _text, c.parse_text),
    )

    def __init__(self, table_name: str = "sessions") -> None:
        super().__init__()
        self.table_name = table_name


def make_app(global_conf: dict[str, str], **local: str) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    return app


def write_ini(tmp_path: Path, store: str, defaults: dict[str, str]) -> Path:
    lines = "\n".join(f"{key} = {value}" for key, value in defaults.items())
    ini = tmp_path / "app.ini"
    ini.write_text(
        textwrap.dedent(
            f"""\
            [DEFAULT]
            debug = true
            {{lines}}

            [filter:session]
            use = egg:wsgisession#session
            store = {__name__}:{store}

            [app:counter]
            use = call:{__name__}:make_app

            [pipeline:main]
            pipeline = session counter
            """
        ).replace("{lines}", lines)
    )
    return ini


def test_loadapp_gives_a_custom_store_none_of_the_apps_global_store_keys(
    tmp_path: Path,
) -> None:
    from paste.deploy import loadapp

    app = loadapp(f"config:{write_ini(tmp_path, 'PlainStore', APP_GLOBALS)}")
    assert type(app.store) is PlainStore


def test_check_gives_a_custom_store_none_of_the_apps_global_store_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ini = write_ini(tmp_path, "PlainStore", {"encrypt": "false"})
    status, out, err = run_cli(capsys, "check", "--config", f"{ini}#session")
    assert status == 0, err
    assert "store reached: MemoryStore" in out


def test_a_global_key_a_custom_store_declares_still_flows_in(tmp_path: Path) -> None:
    from paste.deploy import loadapp

    defaults = {**APP_GLOBALS, "table_name": "app_sessions"}
    app = loadapp(f"config:{write_ini(tmp_path, 'TableStore', defaults)}")
    assert isinstance(app.store, TableStore)
    assert app.store.table_name == "app_sessions"
