"""The public API as a typed program sees it: small programs checked by
``mypy --strict`` against the package's inline hints (``py.typed``).

Each test writes a user's program and runs mypy on it in a subprocess, with
a cache shared by the module (the first run reads Flask and SQLAlchemy once).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import flask
import pytest
from test_docs import DOCS, ROOT, code_blocks

from wsgisession.contrib import flask as contrib_flask
from wsgisession.contrib.flask import init_app
from wsgisession.stores import MemoryStore

pytestmark = pytest.mark.slow

pytest.importorskip("mypy", reason="the dev extra's mypy checks the hints")


@pytest.fixture(scope="module")
def mypy_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mypy-cache")


def mypy(cache: Path, *files: Path, options: tuple[str, ...] = ()) -> str:
    """mypy's report on ``files`` (``--strict``); it names the package of
    this checkout, as a user's mypy names the installed one."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(cache)]
    result = subprocess.run(
        [*command, "--no-error-summary", *options, *map(str, files)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode in (0, 1), result.stdout + result.stderr
    return result.stdout


def program(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_a_store_name_the_package_lacks_is_a_type_error(
    tmp_path: Path, mypy_cache: Path
) -> None:
    """A misspelled or made-up store name is reported, not typed ``Any``."""
    typo = program(
        tmp_path,
        "typo",
        """
        import wsgisession.stores
        from wsgisession.stores import CookieStore, SQLiteStore

        store = SQLiteStore("/tmp/sessions.sqlite3")
        other = wsgisession.stores.RedisStor("redis://localhost")
        """,
    )
    report = mypy(mypy_cache, typo)
    assert 'no attribute "CookieStore"' in report, report
    assert 'no attribute "RedisStor"' in report, report
    assert "SQLiteStore" not in report.replace('"SQLiteStore"?', ""), report


FLASK_PROGRAM = """
    import datetime

    from flask import Flask

    from wsgisession.contrib.flask import init_app, session
    from wsgisession.stores import MemoryStore

    app = Flask(__name__)
    middleware = init_app(app, store=MemoryStore())


    @app.post("/login")
    def login() -> str:
        session.cycle_key()
        session.bind_user(42)
        session.set_expiry(datetime.timedelta(hours=8))
        session.permanent = True
        session["user"] = "ada"
        return f"{session.user_id} {session.handle} {session.get_expiry_age()}"


    @app.post("/logout")
    def logout() -> str:
        count = middleware.revoke_user_sessions("42", keep=session)
        session.flush()
        return str(count)
"""


def test_the_flask_session_methods_are_typed(tmp_path: Path, mypy_cache: Path) -> None:
    """Django's methods and the user-session ones of ``flask.session``,
    which mypy refuses on Flask's ``SessionMixin``."""
    report = mypy(mypy_cache, program(tmp_path, "flask_views", FLASK_PROGRAM))
    assert report == "", report


def test_the_typed_flask_session_is_flask_session() -> None:
    app = flask.Flask(__name__)
    init_app(app, store=MemoryStore())

    @app.route("/")
    def index() -> str:
        contrib_flask.session["visits"] = 1
        contrib_flask.session.cycle_key()
        return repr(flask.session.get("visits"))

    assert contrib_flask.session is flask.session
    assert app.test_client().get("/").text == "1"


def test_the_docs_flask_examples_type_check(tmp_path: Path, mypy_cache: Path) -> None:
    """docs/examples/flask_app.py and the "your devices" page of
    docs/user_sessions.rst: their views are not annotated (examples stay
    short), but what they call must type check."""
    (block,) = [
        block
        for block in code_blocks(DOCS / "user_sessions.rst")
        if "from flask import" in block.text
    ]
    devices = program(tmp_path, "devices", block.text)
    loose = ("--allow-untyped-defs", "--allow-untyped-calls")
    report = mypy(
        mypy_cache, DOCS / "examples" / "flask_app.py", devices, options=loose
    )
    assert report == "", report


def error_lines(report: str, path: Path) -> set[int]:
    """The line numbers of ``path`` that mypy's report has an error on."""
    prefix = f"{path}:"
    return {
        int(line[len(prefix) :].split(":", 1)[0])
        for line in report.splitlines()
        if line.startswith(prefix) and ": error:" in line
    }


def marked_lines(path: Path, mark: str = "# wrong") -> set[int]:
    """The line numbers of ``path`` that carry ``mark``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return {number for number, line in enumerate(lines, 1) if line.endswith(mark)}


PLAIN_WSGI_PROGRAM = """
    import datetime
    import pickle
    from collections.abc import Iterable
    from typing import Any
    from wsgiref.simple_server import make_server
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

    from wsgisession import Session, SessionMiddleware, UserSession
    from wsgisession.config import Settings
    from wsgisession.contrib.pyramid import PyramidSession
    from wsgisession.serializers import Serializer
    from wsgisession.stores import MemoryStore

    NOW = datetime.datetime.now(datetime.UTC)


    class CompactJSON:
        def dumps(self, value: Any) -> bytes:
            return repr(value).encode()

        def loads(self, raw: bytes) -> Any:
            return raw.decode()


    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        session: Session = environ["wsgisession"]
        visits: int = session.get("visits", 0) + 1
        session["visits"] = visits
        session.setdefault("cart", [])
        session.pop("cart")
        session.pop("cart", None)
        session.update({"a": 1}, b=2)
        session.update([("c", 3)])
        session.update(d=4)
        pairs = [f"{key}={value}" for key, value in session.items()]
        session.set_expiry(300)
        session.set_expiry(NOW)
        session.set_expiry(datetime.timedelta(minutes=5))
        session.set_expiry(None)
        age: int = session.get_expiry_age(modification=NOW, expiry=60)
        age += session.get_expiry_age(expiry=datetime.timedelta(seconds=5))
        date: datetime.datetime = session.get_expiry_date(expiry=NOW)
        date = session.get_expiry_date(expiry=None)
        session.bind_user(42)
        owner: str | None = session.user_id
        handle: str | None = session.handle
        key: str | None = session.session_key
        session.cycle_key()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [f"{pairs} {age} {date} {owner} {handle} {key}".encode()]


    def pyramid_view(session: PyramidSession) -> int:
        session.update({"a": 1})
        session.set_expiry(datetime.timedelta(hours=1))
        return session.get_expiry_age(expiry=0) + session.get_expiry_date().second


    middleware = SessionMiddleware(app, MemoryStore(), cookie_samesite="Strict")
    application: WSGIApplication = middleware
    SessionMiddleware(app, serializer=CompactJSON())
    SessionMiddleware(app, serializer=pickle)
    SessionMiddleware(app, serializer="mypackage.serializers:Compact")
    Settings(serializer="json")
    serializer: Serializer = CompactJSON()


    def log_out_elsewhere(user_id: str, session: Session) -> int:
        listed: list[UserSession] = middleware.user_sessions(user_id)
        middleware.revoke_user_session(user_id, listed[0].handle)
        return middleware.revoke_user_sessions(user_id, keep=session)


    make_server("127.0.0.1", 0, middleware).server_close()
"""


def test_a_typed_plain_wsgi_app_type_checks(tmp_path: Path, mypy_cache: Path) -> None:
    """A plain WSGI app that takes its Session from the environ, as the
    quickstart says, and uses the mapping and Django's methods with every
    type they take; a custom serializer whose parameters have names of its
    own, and the ``pickle`` module, pass as serializers."""
    report = mypy(mypy_cache, program(tmp_path, "plain", PLAIN_WSGI_PROGRAM))
    assert report == "", report


WRONG_PROGRAM = """
    import datetime
    from typing import Any

    from wsgisession import Session, SessionMiddleware
    from wsgisession.config import Settings
    from wsgisession.contrib.flask import session as flask_session
    from wsgisession.contrib.pyramid import PyramidSession


    class CompactJSON:
        def dumps(self, value: Any) -> bytes:
            return repr(value).encode()

        def loads(self, raw: bytes) -> Any:
            return raw.decode()


    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        return []


    def misuse(session: Session, pyramid: PyramidSession) -> None:
        session.get_expiry_age(expiry="3600")  # wrong
        session.get_expiry_date(expiry=1.5)  # wrong
        session.update(42)  # wrong
        session.update([1, 2])  # wrong
        pyramid.get_expiry_age(expiry="3600")  # wrong
        pyramid.get_expiry_date(modification=0)  # wrong
        pyramid.update(42)  # wrong
        flask_session.get_expiry_age(expiry="3600")  # wrong
        flask_session.get_expiry_date(bogus=1)  # wrong
        session.get_expiry_age(expiry=datetime.timedelta(seconds=1))


    SessionMiddleware(app, serializer=42)  # wrong
    SessionMiddleware(app, serializer=CompactJSON)  # wrong
    Settings(serializer=CompactJSON)  # wrong
    SessionMiddleware(app, serializer=CompactJSON())
"""


def test_a_wrong_argument_is_a_type_error(tmp_path: Path, mypy_cache: Path) -> None:
    """Each line marked ``# wrong`` fails at run time (TypeError, or a
    serializer class where an instance belongs, which fails at the first
    save); mypy reports those lines and no other."""
    wrong = program(tmp_path, "wrong", WRONG_PROGRAM)
    report = mypy(mypy_cache, wrong)
    assert error_lines(report, wrong) == marked_lines(wrong), report


def test_the_quickstart_typed_app_type_checks(tmp_path: Path, mypy_cache: Path) -> None:
    """The "With a type checker" example of docs/quickstart.rst passes
    ``mypy --strict`` as it is written."""
    (block,) = [
        block
        for block in code_blocks(DOCS / "quickstart.rst")
        if "session: Session = environ" in block.text
    ]
    report = mypy(mypy_cache, program(tmp_path, "quickstart", block.text))
    assert report == "", report
