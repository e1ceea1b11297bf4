"""API.md section 6: Paste's globals (``[DEFAULT]``) never trip the key checks.

An ini file's ``[DEFAULT]`` is shared by every section: the app keeps its
own Redis URL, secret or key prefix there. A global names one of
wsgisession's keys only for the store in use; the store key of another
store is the app's, not a misplaced key of the session filter.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from helpers import run_cli

from wsgisession import make_middleware
from wsgisession.config import parse_settings
from wsgisession.stores import FileStore, MemoryStore, RedisStore

APP_GLOBALS = {
    "redis_url": "redis://127.0.0.1:6379/3",
    "sql_url": "postgresql://app@db.internal/app",
    "secret_key": "the-apps-own-secret-of-more-than-32-bytes",
    "key_prefix": "myapp:",
    "memcached_servers": "127.0.0.1:11211",
}


def make_app(global_conf: dict[str, str], **local: str) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    return app


def write_ini(tmp_path: Path, filter_lines: str) -> Path:
    defaults = "\n".join(f"{key} = {value}" for key, value in APP_GLOBALS.items())
    ini = tmp_path / "app.ini"
    body = textwrap.dedent(filter_lines).strip()
    ini.write_text(
        f"[DEFAULT]\ndebug = true\n{defaults}\n\n"
        f"[filter:session]\nuse = egg:wsgisession#session\n{body}\n\n"
        f"[app:counter]\nuse = call:{__name__}:make_app\n\n"
        "[pipeline:main]\npipeline = session counter\n"
    )
    return ini


def test_loadapp_ignores_store_keys_of_other_stores_in_default(tmp_path: Path) -> None:
    from paste.deploy import loadapp

    ini = write_ini(tmp_path, "store = file\nfile_path = %(here)s/sessions")
    app = loadapp(f"config:{ini}")
    assert isinstance(app.store, FileStore)


def test_check_ignores_store_keys_of_other_stores_in_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ini = write_ini(tmp_path, "store = file\nfile_path = %(here)s/sessions")
    status, out, err = run_cli(capsys, "check", "--config", f"{ini}#session")
    assert status == 0, err
    assert "FileStore" in out


def test_a_global_store_key_of_the_store_in_use_still_flows_in() -> None:
    """Paste drops a section's key that ``[DEFAULT]`` also sets: the global
    is then the only value there is."""
    _, spec = parse_settings(
        {"store": "redis"},
        global_conf={**APP_GLOBALS, "here": "/srv/app", "__file__": "/srv/app.ini"},
    )
    store = spec.build()
    assert isinstance(store, RedisStore)
    assert spec.redis_url == APP_GLOBALS["redis_url"]
    assert spec.key_prefix == "myapp:"


def test_make_middleware_reads_a_configparser_section_as_paste_does() -> None:
    """API.md section 3: make_middleware does what the filter does from a
    ``configparser`` section, whose mapping also holds ``[DEFAULT]``."""
    import configparser

    parser = configparser.ConfigParser()
    defaults = "\n".join(f"{key} = {value}" for key, value in APP_GLOBALS.items())
    parser.read_string(
        f"[DEFAULT]\ndebug = true\ncookie_age = 60\n{defaults}\n"
        "[filter:session]\nuse = egg:wsgisession#session\nstore = memory\n"
    )
    middleware = make_middleware(make_app({}), parser["filter:session"], prefix="")
    assert isinstance(middleware.store, MemoryStore)
    assert middleware.settings.cookie_age == 60


def test_make_middleware_with_a_prefix_still_reads_default_keys_of_a_section() -> None:
    """With its prefix, make_middleware reads the keys of the whole mapping a
    ``configparser`` section is, ``[DEFAULT]``'s included (a plain ini file
    that keeps ``wsgisession.*`` there): they were silently dropped, and the
    app ran on the default store without ``Secure`` cookies."""
    import configparser

    parser = configparser.ConfigParser()
    parser.read_string(
        "[DEFAULT]\nwsgisession.store = memory\nwsgisession.cookie_secure = true\n"
        "debug = true\n[myapp]\nwsgisession.cookie_age = 60\n"
    )
    middleware = make_middleware(make_app({}), parser["myapp"])
    assert isinstance(middleware.store, MemoryStore)
    assert middleware.settings.cookie_secure is True
    assert middleware.settings.cookie_age == 60
