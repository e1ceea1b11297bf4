"""The runnable examples of ``docs/examples``, loaded as they are and driven by WebTest.

Each example is imported from its file with the working directory set to a
temporary one, so the stores they open by relative path land there; the
Paste Deploy example is loaded from a byte-identical copy for the same reason.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import webtest
from paste.deploy import loadapp
from session_flows import cookie_value, session_cookie

from wsgisession import SessionMiddleware
from wsgisession.contrib.flask import find_middleware
from wsgisession.errors import ConfigError
from wsgisession.stores import FileStore, SQLiteStore
from wsgisession.stores.base import Store

EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def load_example(name: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """Import ``docs/examples/<name>.py`` under a private module name."""
    module_name = f"wsgisession_example_{name}"
    spec = importlib.util.spec_from_file_location(module_name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, module_name, module)
    spec.loader.exec_module(module)
    return module


def csrf_token(page: webtest.TestResponse) -> dict[str, str]:
    """The CSRF form field of a page, if it has one."""
    match = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.text)
    return {"csrf_token": match.group(1)} if match else {}


def check_visits_login_logout(
    client: webtest.TestApp, store: Store, cookie_name: str = "sessionid"
) -> webtest.TestResponse:
    """Count visits, log in (new key, old record gone), log out (cookie deleted).

    Returns the login response, for checks of its cookie.
    """
    page = client.get("/")
    assert "Visits in this session: 1." in page.text
    assert "Max-Age=3600" in session_cookie(page, cookie_name)
    old_key = cookie_value(page, cookie_name)
    page = client.get("/")
    assert "Visits in this session: 2." in page.text
    login = client.post("/login", {"user": "ada", **csrf_token(page)}, status=303)
    new_key = cookie_value(login, cookie_name)
    assert new_key != old_key
    assert not store.exists(old_key)
    page = client.get("/")
    assert "Hello, ada. Visits in this session: 3." in page.text
    logout = client.post("/logout", csrf_token(page), status=303)
    assert "Max-Age=0" in session_cookie(logout, cookie_name)
    assert not store.exists(new_key)
    assert "Hello, stranger. Visits in this session: 1." in client.get("/").text
    return login


def test_plain_wsgi(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = load_example("plain_wsgi", monkeypatch)
    middleware: SessionMiddleware = module.application
    assert isinstance(middleware.store, SQLiteStore)
    assert Path(middleware.store.path).parent == workdir
    check_visits_login_logout(webtest.TestApp(middleware), middleware.store)
    assert (workdir / "sessions.sqlite3").exists()


def test_flask_app(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = load_example("flask_app", monkeypatch)
    middleware = find_middleware(module.app)
    assert middleware is not None
    client = webtest.TestApp(module.app)
    login = check_visits_login_logout(client, middleware.store, "session")
    assert "SameSite=Lax" in session_cookie(login, "session")
    assert "Max-Age" not in session_cookie(login, "session")  # not remembered
    client.post("/login", {"user": "grace", "remember": "on"}, status=303)
    page = client.get("/")
    assert "<p>You are logged in.</p>" in page.text
    assert "Hello, grace." in page.text
    remembered = client.post("/login", {"user": "grace", "remember": "on"})
    assert "Max-Age=3600" in session_cookie(remembered, "session")


def test_bottle_app(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = load_example("bottle_app", monkeypatch)
    middleware: SessionMiddleware = module.application
    assert isinstance(middleware.store, FileStore)
    client = webtest.TestApp(middleware)
    login = check_visits_login_logout(client, middleware.store)
    assert "SameSite=Strict" in session_cookie(login)
    assert (workdir / "sessions").is_dir()


def test_pyramid_app(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = load_example("pyramid_app", monkeypatch)
    middleware = module.main()
    assert isinstance(middleware.store, SQLiteStore)
    client = webtest.TestApp(middleware)
    check_visits_login_logout(client, middleware.store)
    page = client.get("/")
    client.post("/login", {"user": "grace"}, status=400)  # no CSRF token
    client.post("/login", {"user": "grace", **csrf_token(page)}, status=303)
    client.post("/logout", csrf_token(page), status=400)  # rotated at login
    page = client.get("/")
    assert "<p>You are logged in.</p>" in page.text
    assert "<p>You are logged in.</p>" not in client.get("/").text  # popped


def test_pyramid_app_as_a_paste_app_factory(monkeypatch: pytest.MonkeyPatch) -> None:
    module = load_example("pyramid_app", monkeypatch)
    settings = {"wsgisession.store": "memory", "wsgisession.cookie_age": "60"}
    middleware = module.main({}, **settings)
    response = webtest.TestApp(middleware).get("/")
    assert "Max-Age=60" in session_cookie(response)


def copy_ini(directory: Path, replace: dict[str, str] | None = None) -> Path:
    """``paste.ini`` copied into ``directory`` (so ``%(here)s`` is there)."""
    text = (EXAMPLES / "paste.ini").read_text()
    for old, new in (replace or {}).items():
        assert old in text
        text = text.replace(old, new)
    target = directory / "paste.ini"
    target.write_text(text)
    return target


@pytest.fixture
def hello_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    """``use = call:hello:app_factory`` imports ``hello`` from the examples."""
    monkeypatch.syspath_prepend(str(EXAMPLES))
    monkeypatch.delitem(sys.modules, "hello", raising=False)


@pytest.mark.usefixtures("hello_importable")
def test_paste_ini(tmp_path: Path) -> None:
    ini = copy_ini(tmp_path)
    assert ini.read_bytes() == (EXAMPLES / "paste.ini").read_bytes()
    app: Any = loadapp(f"config:{ini}")
    assert isinstance(app, SessionMiddleware)
    assert isinstance(app.store, FileStore)
    assert Path(app.store.path) == tmp_path / "sessions"
    client = webtest.TestApp(app)
    first = client.get("/")
    assert first.text == "Hello! Visits in this session: 1\n"
    header = session_cookie(first, "hello_session")
    assert "Max-Age=3600" in header
    assert "SameSite=Strict" in header
    assert "Secure" not in header  # cookie_secure = auto, over http
    assert client.get("/").text == "Hello! Visits in this session: 2\n"
    https = webtest.TestApp(app, extra_environ={"wsgi.url_scheme": "https"}).get("/")
    assert "Secure" in session_cookie(https, "hello_session")
    assert len(list((tmp_path / "sessions").rglob("*"))) >= 1


@pytest.mark.usefixtures("hello_importable")
def test_paste_ini_with_a_misspelled_key_fails_at_load(tmp_path: Path) -> None:
    ini = copy_ini(tmp_path, {"cookie_age = 3600": "cookie_agee = 3600"})
    with pytest.raises(ConfigError, match="cookie_agee"):
        loadapp(f"config:{ini}")


@pytest.mark.usefixtures("hello_importable")
def test_paste_ini_with_a_bad_value_fails_at_load(tmp_path: Path) -> None:
    ini = copy_ini(
        tmp_path, {"cookie_samesite = Strict": "cookie_samesite = Sometimes"}
    )
    with pytest.raises(ConfigError, match="cookie_samesite"):
        loadapp(f"config:{ini}")


def test_hello_app_factory_returns_the_app(monkeypatch: pytest.MonkeyPatch) -> None:
    module = load_example("hello", monkeypatch)
    assert module.app_factory({}) is module.hello
