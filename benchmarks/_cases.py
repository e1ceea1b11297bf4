"""The timed cases of one system on one store, with their correctness checks.

Workloads: ``untouched`` (no cookie, the app never looks at the session),
``read`` (an existing 10-key ~1 KB session, read one key), ``write`` (the
same kind of session, increment a counter), ``new`` (no cookie, set one
key). The client of ``read`` and ``write`` keeps cookies like a browser,
so cookie stores, whose value changes on every save, work too.

After every timed batch: ``write``'s counter must have grown by exactly the
batch size, ``read`` must return the stored value, ``new`` must have set a
cookie whose session reads back, ``untouched`` must set no cookie.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from _probes import WriteProbe, Writes
from _timing import Case
from _wsgi import (
    HELLO,
    NEW_VALUE,
    PRIME_DATA,
    READ_KEY,
    Response,
    WSGIApp,
    call,
    make_environ,
    set_cookie,
)

WORKLOADS = ("untouched", "read", "write", "new")
_PATHS = {"untouched": "/untouched", "read": "/read", "write": "/write", "new": "/new"}
_READ_VALUE = PRIME_DATA[READ_KEY].encode()


class Client:
    """Sends one request per call; with ``keep`` it stores Set-Cookie like a browser."""

    def __init__(
        self,
        app: WSGIApp,
        path: str,
        cookie_name: str,
        value: str | None = None,
        *,
        keep: bool = False,
    ) -> None:
        self.app = app
        self.cookie_name = cookie_name
        self.keep = keep
        self.environ = make_environ(path, _cookie(cookie_name, value))
        self.value = value
        self.last: Response | None = None

    def __call__(self) -> Response:
        response = self.last = call(self.app, self.environ.copy())
        if self.keep:
            value = set_cookie(response.headers, self.cookie_name)
            if value is not None and value != self.value:  # as a browser keeps it
                self.value = value
                self.environ = dict(self.environ)
                self.environ.pop("HTTP_COOKIE", None)
                if value:
                    self.environ["HTTP_COOKIE"] = _cookie(self.cookie_name, value)
        return response

    def expect_ok(self) -> Response:
        response = self.last
        assert response is not None, "no request made"
        assert response.status.startswith("200"), f"HTTP {response.status}"
        return response

    def __repr__(self) -> str:
        return f"Client({self.environ['PATH_INFO']!r}, keep={self.keep})"


def _cookie(name: str, value: str | None) -> str | None:
    return f"{name}={value}" if value else None


def prime(app: WSGIApp, cookie_name: str) -> str:
    """Create the 10-key session and return its cookie value, checked by a read."""
    response = call(app, make_environ("/prime"))
    value = set_cookie(response.headers, cookie_name)
    assert response.status.startswith("200") and value, f"prime failed: {response}"
    reader = Client(app, "/read", cookie_name, value)
    assert reader().body == _READ_VALUE, "the primed session does not read back"
    return value


def workload_cases(
    system: str, kind: str, app: WSGIApp, cookie_name: str, probe: WriteProbe
) -> list[Case]:
    """The four cases of ``system`` on ``kind``, validated and probed."""
    clients = {
        "untouched": Client(app, "/untouched", cookie_name),
        "read": Client(app, "/read", cookie_name, prime(app, cookie_name), keep=True),
        "write": Client(app, "/write", cookie_name, prime(app, cookie_name), keep=True),
        "new": Client(app, "/new", cookie_name),
    }
    writer = clients["write"]
    for expected in (1, 2, 3):
        assert int(writer().body) == expected, "the counter is not saved"
    cases = []
    for workload in WORKLOADS:
        client = clients[workload]
        pre, post = CHECKS[workload](client, app)
        case = Case(system, kind, workload, client, pre=pre, post=post)
        case.writes = _writes(kind, probe, client)
        cases.append(case)
    return cases


def _writes(kind: str, probe: WriteProbe, client: Client) -> Writes | None:
    """Store writes of 20 requests; for cookies, how many responses set one."""
    if kind != "cookie":
        return probe.writes(client)
    sent = 0
    for _ in range(20):
        sent += set_cookie(client().headers, client.cookie_name) is not None
    return Writes(sent, f"Set-Cookie on {sent} of 20 req")


Checks = tuple[Callable[[], None] | None, Callable[[int], None]]


def _untouched(client: Client, app: WSGIApp) -> Checks:
    def post(n: int) -> None:
        response = client.expect_ok()
        assert response.body == HELLO, f"body {response.body[:40]!r}"
        assert set_cookie(response.headers, client.cookie_name) is None, "sets a cookie"

    return None, post


def _read(client: Client, app: WSGIApp) -> Checks:
    def post(n: int) -> None:
        body = client.expect_ok().body
        assert body == _READ_VALUE, f"read returned {body[:40]!r}"

    return None, post


def _write(client: Client, app: WSGIApp) -> Checks:
    state: dict[str, int] = {}

    def pre() -> None:
        state["before"] = int(client.expect_ok().body)

    def post(n: int) -> None:
        got = int(client.expect_ok().body)
        lost = state["before"] + n - got
        assert lost == 0, f"counter {got} after {n} writes from {state['before']}"

    return pre, post


def _new(client: Client, app: WSGIApp) -> Checks:
    def post(n: int) -> None:
        value = set_cookie(client.expect_ok().headers, client.cookie_name)
        assert value, "a new session sent no cookie"
        body = Client(app, "/peek", client.cookie_name, value)().body
        assert body == NEW_VALUE.encode(), f"new session reads back {body[:40]!r}"

    return None, post


CHECKS: dict[str, Callable[[Client, WSGIApp], Checks]] = {
    "untouched": _untouched,
    "read": _read,
    "write": _write,
    "new": _new,
}


def floor_cases(kind: str, ops: dict[str, Callable[[], Any]]) -> list[Case]:
    """One case per floor operation (no checks: they are the raw client calls)."""
    return [Case("floor", kind, op, step) for op, step in ops.items()]
