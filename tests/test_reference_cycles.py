"""A request leaves no reference cycle behind: its objects go when it ends.

Objects in a cycle wait for the cyclic garbage collector; a request's
environ (with its input stream) and session would live on until then.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import get

from wsgisession import SessionMiddleware
from wsgisession.stores import MemoryStore


def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """``?write`` counts in the session, ``?read`` reads it, else untouched."""
    session = environ["wsgisession"]
    if environ["QUERY_STRING"] == "write":
        session["n"] = session.get("n", 0) + 1
    elif environ["QUERY_STRING"] == "read":
        session.get("n")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


@pytest.fixture
def collector_off() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.mark.usefixtures("young_heap", "collector_off")
@pytest.mark.parametrize("query", ["untouched", "read", "write"])
@pytest.mark.parametrize("cookie", ["own", "unknown", "none"])
def test_no_request_leaves_a_cycle(query: str, cookie: str) -> None:
    middleware = SessionMiddleware(app, store=MemoryStore())
    _, headers = get(middleware, "write")
    (set_cookie,) = [value for name, value in headers if name == "Set-Cookie"]
    header = {
        "own": set_cookie.split(";", 1)[0],
        "unknown": "sessionid=" + "A" * 43,
        "none": None,
    }[cookie]
    gc.collect()
    for _ in range(20):
        status, _ = get(middleware, query, header)
        assert status.startswith("200")
    assert gc.collect() == 0
