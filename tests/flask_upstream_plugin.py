"""pytest plugin: Flask's own tests, with wsgisession plugged in by ``init_app``.

Loaded by ``tests/test_flask_upstream.py`` into a pytest run over the tests
of Flask's sdist, with ``--noconftest``: Flask's ``conftest.py`` imports a
name that newer pytest versions no longer have, so this plugin gives the
fixtures the session tests use instead. They are Flask's own, except that
``app`` is passed to :func:`~wsgisession.contrib.flask.init_app`, as the
docs tell a user to do; nothing of Flask is patched.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import flask
import pytest
from flask.globals import request_ctx

from wsgisession.contrib.flask import init_app
from wsgisession.stores import MemoryStore, SQLiteStore
from wsgisession.stores.base import Store


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--wsgisession-store",
        choices=("memory", "sqlite"),
        default="memory",
        help="the store the app fixture's sessions live in",
    )


def make_store(kind: str, directory: Path) -> Store:
    return MemoryStore() if kind == "memory" else SQLiteStore(directory / "s.sqlite3")


@pytest.fixture
def app(request: pytest.FixtureRequest, tmp_path: Path) -> flask.Flask:
    """Flask's ``app`` fixture, then ``init_app`` with the chosen store."""
    app = flask.Flask("flask_test", root_path=str(request.path.parent))
    app.config.update(TESTING=True, SECRET_KEY="test key")
    init_app(
        app, store=make_store(request.config.getoption("wsgisession_store"), tmp_path)
    )
    return app


@pytest.fixture
def app_ctx(app: flask.Flask) -> Iterator[Any]:
    with app.app_context() as ctx:
        yield ctx


@pytest.fixture
def req_ctx(app: flask.Flask) -> Iterator[Any]:
    with app.test_request_context() as ctx:
        yield ctx


@pytest.fixture
def client(app: flask.Flask) -> Any:
    return app.test_client()


@pytest.fixture(autouse=True)
def leak_detector() -> Iterator[None]:
    """Flask's check that no test leaves a request context pushed."""
    yield
    leaks = []
    while request_ctx:
        leaks.append(request_ctx._get_current_object())
        request_ctx.pop()
    assert leaks == []
