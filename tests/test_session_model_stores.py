"""The session model of test_session_model.py on the stores it leaves out:
memcached (one server, a pool of three), the SQL store on PostgreSQL and
MariaDB, a Redis Cluster, and the signed cookie store.

The cookie store has no server-side records: its model never deletes a
record (a flushed or cycled session's old cookie still loads until it
expires, as docs/stores.rst says) and every save is a new cookie, and its
census is the cookies the test has seen that still load. The rest (every
read, every response's cookie, Max-Age and Vary) is checked as on the
other stores.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis.stateful import run_state_machine_as_test
from model_stores import machine_settings, server_store
from session_machine import SessionMachine
from session_model import ModelRequest

from wsgisession.stores import SignedCookieStore
from wsgisession.stores.base import Store

pytestmark = pytest.mark.slow  # hypothesis runs against servers

SECRET = "model-secret-key-of-at-least-32-bytes!"


class CookieModelRequest(ModelRequest):
    """A request on the model of the signed cookie store: a deleted record
    is no revocation, and a streamed response saves as its headers go out."""

    revocable = False
    saves_with_headers = True


def run_machine(kind: str, make: Any, **attributes: Any) -> None:
    machine = type(
        "Machine", (SessionMachine,), {"make_store": staticmethod(make), **attributes}
    )
    run_state_machine_as_test(machine, settings=machine_settings(kind))


@pytest.mark.parametrize(
    "kind",
    ["memcached", "memcached-pool", "redis-cluster", "sql-postgresql", "sql-mariadb"],
)
def test_session_model_on_servers(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    run_machine(kind, server_store(kind, request, tmp_path))


def test_session_model_cookie_store() -> None:
    def make() -> tuple[Store, str]:
        return SignedCookieStore(SECRET), ""

    run_machine("cookie", make, model_request=CookieModelRequest)
