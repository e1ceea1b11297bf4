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
