"""Generated app behaviours through the middleware, on the memory, file and
SQLite stores.

An app touches its session before and after its headers go out, returns a
list, a tuple, a generator, an iterator with ``close()`` or the server's
file wrapper, uses ``write()``, calls ``start_response`` again with
``exc_info``, or raises before, after or while its body runs; the server
reads all of the body, part of it, or none. Whatever the app does:

* nothing escapes but the app's own exception or a named wsgisession error;
* the app's ``close()`` is always called;
* every ``Set-Cookie`` parses back to a valid id with the configured
  attributes, and never names another session's data;
* no log line holds a session id, and the lock is released;
* a request that did not change the session writes nothing.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import pytest
from helpers import examples, make_store
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wsgisession import SessionMiddleware
from wsgisession.errors import SessionError
from wsgisession.stores.base import Store

Environ = dict[str, Any]
#: What an app may do to its session; the last three do not change it.
CHANGES = ["set", "nested", "in_place", "unserializable", "clear", "flush", "cycle"]
READS = ["none", "get", "key"]


class AppError(Exception):
    """The app's own exception."""


class FileWrapper:
    """A server's ``wsgi.file_wrapper``."""

    def __init__(self, filelike: object, block_size: int = 8192) -> None:
        self.closed = 0

    def __iter__(self) -> Iterator[bytes]:
        return iter([b"file"])

    def close(self) -> None:
        self.closed += 1


def use(session: Any, op: str) -> None:
    if op == "get":
        session.get("n")
    elif op == "key":
        _ = session.session_key
    elif op == "set":
        session["n"] = 1
    elif op == "nested":
        session["cart"] = {"items": [1]}
    elif op in ("in_place", "unserializable"):
        cart = session.get("cart")
        if isinstance(cart, dict):
            cart["items"].append(2 if op == "in_place" else object())
    elif op == "clear":
        session.clear()
    elif op == "flush":
        session.flush()
    elif op == "cycle":
        session.cycle_key()


PLANS = st.fixed_dictionaries(
    {
        "before": st.sampled_from(READS + CHANGES),
        "after": st.sampled_from(READS + CHANGES),
        "start": st.sampled_from(["once", "late", "again_with_exc_info"]),
        "status": st.sampled_from(["200 OK", "302 Found", "500 Oops"]),
        "length": st.booleans(),
        "result": st.sampled_from(["list", "tuple", "generator", "closing", "file"]),
        "write": st.booleans(),
        "raise_at": st.sampled_from(["no", "no", "before", "after_start", "body"]),
        "read": st.sampled_from(["all", "one", "none"]),
        "cookie": st.sampled_from(["none", "real", "twice", "planted", "quoted"]),
        "scheme": st.sampled_from(["http", "https", None]),
    }
)
OPTIONS = st.fixed_dictionaries(
    {
        "cookie_secure": st.sampled_from([False, True, "auto"]),
        "cookie_samesite": st.sampled_from(["Lax", "None", False]),
        "cookie_domain": st.sampled_from([None, "example.com"]),
        "cookie_path": st.sampled_from(["/", "/app"]),
        "lock": st.booleans(),
    }
)


def make_app(plan: dict[str, Any], closeables: list[Any]) -> Callable[..., Any]:
    def app(environ: Environ, start_response: Callable[..., Any]) -> Any:
        session = environ["wsgisession"]
        use(session, plan["before"])
        headers = [("Content-Type", "text/plain")]
        if plan["length"]:
            headers.append(("Content-Length", "2"))
        if plan["raise_at"] == "before":
            raise AppError("before start_response")
        if plan["start"] != "late":
            write = start_response(plan["status"], headers)
            if plan["write"]:
                write(b"w")
        if plan["start"] == "again_with_exc_info":
            try:
                raise AppError("handled")
            except AppError:
                start_response("500 Error", headers, sys.exc_info())
        if plan["raise_at"] == "after_start":
            raise AppError("after start_response")

        def body() -> Iterator[bytes]:
            if plan["start"] == "late":
                start_response(plan["status"], headers)
            yield b"a"
            use(session, plan["after"])
            if plan["raise_at"] == "body":
                raise AppError("in the body")
            yield b"b"

        kind = plan["result"]
        if kind in ("list", "tuple") and plan["start"] != "late":
            return [b"ab"] if kind == "list" else (b"ab",)
        if kind == "file" and plan["start"] != "late":
            closeables.append(environ["wsgi.file_wrapper"](None))
            return closeables[-1]
        if kind == "closing":
            closeables.append(Closing(body()))
            return closeables[-1]
        return body()

    return app


class Closing:
    """An iterator with ``close()``, as a framework's response object."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks, self.closed = chunks, 0

    def __iter__(self) -> Iterator[bytes]:
        return self.chunks

    def close(self) -> None:
        self.closed += 1
        self.chunks.close()  # type: ignore[attr-defined]


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture(params=["memory", "file", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    store = make_store(request.param, tmp_path)
    yield store
    store.close()


@settings(
    max_examples=examples(60),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(plan=PLANS, options=OPTIONS)
def test_whatever_the_app_does(
    store: Store, plan: dict[str, Any], options: dict[str, Any]
) -> None:
    lines = Lines()
    package = logging.getLogger("wsgisession")
    package.addHandler(lines)
    level, package.level = package.level, logging.DEBUG
    try:
        one_request(store, plan, options, lines)
    finally:
        package.removeHandler(lines)
        package.setLevel(level)


def one_request(
    store: Store, plan: dict[str, Any], options: dict[str, Any], lines: Lines
) -> None:
    closeables: list[Any] = []
    middleware = SessionMiddleware(make_app(plan, closeables), store, **options)
    other = middleware.open_session()
    other["secret"] = "other"
    other.save()
    mine = middleware.open_session()
    mine["n"], mine["cart"] = 0, {"items": []}
    mine.save()
    key, other_key = mine.session_key, other.session_key
    assert key is not None and other_key is not None
    environ: Environ = {"REQUEST_METHOD": "GET", "wsgi.file_wrapper": FileWrapper}
    if plan["scheme"] is not None:
        environ["wsgi.url_scheme"] = plan["scheme"]
    cookie = {
        "real": f"sessionid={key}",
        "twice": f"sessionid={key}; a=b; sessionid={key}",
        "planted": f"sessionid={'A' * 43}; sessionid={key}",
        "quoted": f'x="y; sessionid="{key}"',
    }.get(plan["cookie"])
    if cookie is not None:
        environ["HTTP_COOKIE"] = cookie
    before = store.load(key)
    sent = serve(middleware, environ, plan)
    for closeable in closeables:
        assert closeable.closed == 1 or sent.get("not returned"), "close() not called"
    ids = {key, other_key}
    for value in set_cookies(sent.get("headers", [])):
        morsel = SimpleCookie(value)["sessionid"]
        check_attributes(morsel, options, plan["scheme"] == "https")
        if morsel.value:
            assert store.is_valid_key(morsel.value), value
            assert morsel.value == key or morsel.value != other_key
            ids.add(morsel.value)
    assert not [line for line in lines.lines for id_ in ids if id_ in line]
    if options["lock"]:
        with store.lock(key, 0.2, 5):
            pass
    unchanged = plan["before"] in READS and plan["after"] in READS
    if unchanged:
        assert store.load(key) == before, "a request that changed nothing wrote"
    assert middleware.open_session(other_key)["secret"] == "other"


def serve(
    middleware: SessionMiddleware, environ: Environ, plan: dict[str, Any]
) -> dict[str, Any]:
    """What the server saw; an exception must be the app's or a named one."""
    sent: dict[str, Any] = {}

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        if exc_info is not None and sent.get("began"):
            raise exc_info[1].with_traceback(exc_info[2])
        sent["status"], sent["headers"] = status, list(headers)
        return lambda data: sent.update(began=True)

    try:
        result = middleware(environ, start_response)
    except (AppError, SessionError):
        sent["not returned"] = True
        return sent
    try:
        for count, chunk in enumerate(result):
            sent["began"] = sent.get("began") or bool(chunk)
            if plan["read"] == "none" or (plan["read"] == "one" and count == 0):
                break
    except (AppError, SessionError):
        pass
    finally:
        try:  # the late save runs here: its error must be a named one too
            getattr(result, "close", lambda: None)()
        except (AppError, SessionError):
            sent["close raised"] = True
    return sent


def set_cookies(headers: list[tuple[str, str]]) -> list[str]:
    return [value for name, value in headers if name.lower() == "set-cookie"]


def check_attributes(morsel: Any, options: dict[str, Any], https: bool) -> None:
    secure = options["cookie_secure"]
    assert bool(morsel["secure"]) == (
        secure is True
        or (secure == "auto" and https)
        or options["cookie_samesite"] == "None"
    )
    assert morsel["path"] == options["cookie_path"]
    assert (morsel["domain"].lstrip(".") or None) == options["cookie_domain"]
    assert (morsel["samesite"] or False) == options["cookie_samesite"]
    if not morsel.value:
        assert morsel["max-age"] == "0"
