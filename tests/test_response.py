"""The response object and the one cookie policy, called directly."""

from __future__ import annotations

import io
import json
import shutil
import wsgiref.handlers
import wsgiref.util
from pathlib import Path
from typing import Any

import pytest
from helpers import get

from wsgisession import SessionMiddleware
from wsgisession.config import Settings
from wsgisession.cookies import CookieAction, SessionState, decide, is_touched
from wsgisession.stores import MemoryStore

SET, DELETE, NOTHING = CookieAction.SET, CookieAction.DELETE, CookieAction.NOTHING


def state(
    accessed: bool = True,
    modified: bool = False,
    empty: bool = False,
    had_cookie: bool = False,
) -> SessionState:
    return SessionState(accessed, modified, empty, had_cookie)


@pytest.mark.parametrize(
    ("session", "settings", "status", "expected"),
    [
        (state(accessed=False), Settings(), "200 OK", NOTHING),
        (state(), Settings(), "200 OK", NOTHING),
        (state(modified=True), Settings(), "200 OK", SET),
        (state(modified=True), Settings(), "500 Oops", NOTHING),
        (state(), Settings(save_every_request=True), "200 OK", SET),
        (state(empty=True, modified=True), Settings(), "200 OK", NOTHING),
        (state(empty=True, had_cookie=True), Settings(), "200 OK", DELETE),
        (state(empty=True, had_cookie=True), Settings(), "503 Down", DELETE),
        (state(modified=True, had_cookie=True), Settings(), "302 Found", SET),
    ],
)
def test_cookie_policy(
    session: SessionState, settings: Settings, status: str, expected: CookieAction
) -> None:
    assert decide(session, settings, status) is expected


def test_untouched_means_no_access_no_change_no_forced_save() -> None:
    assert not is_touched(False, False, Settings())
    assert is_touched(True, False, Settings())
    assert is_touched(False, True, Settings())
    assert is_touched(False, False, Settings(save_every_request=True))


def run_with_wsgiref(app: Any, cookie: str = "") -> tuple[str, str]:
    """Run ``app`` once under wsgiref's handler; (status and headers, error log)."""
    stdout, stderr = io.BytesIO(), io.StringIO()
    environ: dict[str, Any] = {"REQUEST_METHOD": "GET", "PATH_INFO": "/"}
    if cookie:
        environ["HTTP_COOKIE"] = cookie
    wsgiref.util.setup_testing_defaults(environ)
    handler = wsgiref.handlers.SimpleHandler(
        io.BytesIO(), stdout, stderr, environ, multithread=False
    )
    handler.run(app)
    return stdout.getvalue().decode("latin-1"), stderr.getvalue()


def legacy_write_app(touch: bool) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if touch:
            environ["wsgisession"]["n"] = 1
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written, ")
        return [b"returned"]

    return app


@pytest.mark.parametrize("touch", [False, True])
def test_legacy_write_then_a_list_starts_the_response_once(touch: bool) -> None:
    """Regression: the untouched fast path called start_response a second time."""
    middleware = SessionMiddleware(legacy_write_app(touch), MemoryStore())
    output, errors = run_with_wsgiref(middleware)
    assert errors == ""
    assert output.startswith("HTTP/1.0 200 OK"), output
    assert output.endswith("written, returned")
    assert ("Set-Cookie: sessionid=" in output) is touch


@pytest.mark.parametrize("touch", [False, True])
def test_a_list_without_start_response_is_passed_on_as_it_is(touch: bool) -> None:
    """The server, not the middleware, reports an app that never started its
    response; nothing is started for it and a changed session is not saved."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if touch:
            environ["wsgisession"]["n"] = 1
        return [b"body"]

    store = MemoryStore()
    started: list[Any] = []
    result = SessionMiddleware(app, store)(
        {"REQUEST_METHOD": "GET", "PATH_INFO": "/"}, lambda *args: started.append(args)
    )
    assert result == [b"body"]
    assert started == []
    assert len(store) == 0


def test_a_response_says_its_status_and_whether_its_headers_went_out() -> None:
    middleware = SessionMiddleware(legacy_write_app(False), MemoryStore())
    response = middleware.detached_response({"REQUEST_METHOD": "GET"})
    assert repr(response) == "<Response not started, headers held>"
    response.status = "200 OK"
    assert repr(response) == "<Response 200 OK, headers held>"


def test_detached_response_finishes_with_the_cookie_headers() -> None:
    """What the Flask adapter uses for requests no middleware handles."""
    middleware = SessionMiddleware(legacy_write_app(False), MemoryStore())
    response = middleware.detached_response({})
    assert response.finish("200 OK") == []
    response.session["n"] = 1
    (name, value), *rest = response.finish("200 OK")
    assert name == "Set-Cookie" and value.startswith("sessionid=") and rest == []
    key = response.session.session_key
    assert middleware.open_session(key)["n"] == 1


# -- the Max-Age of a saved session's cookie -----------------------------------


def _expiry_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """Counts; ``?expiry=N`` also sets the session's expiry to N seconds."""
    session = environ["wsgisession"]
    session["n"] = session.get("n", 0) + 1
    query = environ["QUERY_STRING"]
    if query.startswith("expiry="):
        session.set_expiry(int(query.removeprefix("expiry=")))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


@pytest.mark.parametrize(
    ("options", "queries", "advance", "max_age"),
    [
        ({"cookie_age": 600}, ["", ""], 50, "600"),
        ({"cookie_age": 600, "absolute_timeout": 60}, ["", ""], 50, "10"),
        ({"cookie_age": 600}, ["", "expiry=300"], 50, "300"),
        ({"cookie_age": 600}, ["", "expiry=0"], 50, None),
        ({"expire_at_browser_close": True}, ["", ""], 50, None),
    ],
)
def test_the_cookie_lives_as_long_as_the_record_its_save_wrote(
    frozen_clock: Any,
    options: dict[str, Any],
    queries: list[str],
    advance: float,
    max_age: str | None,
) -> None:
    """The response of a save sends the lifetime that save gave the record
    (expiry rules and ``absolute_timeout`` applied), not one worked out again."""
    store = MemoryStore()
    app = SessionMiddleware(_expiry_app, store, **options)
    _, headers = get(app, queries[0])
    (cookie,) = [value for name, value in headers if name == "Set-Cookie"]
    key = cookie.split(";")[0].partition("=")[2]
    frozen_clock.advance(advance)
    _, headers = get(app, queries[1], f"sessionid={key}")
    (cookie,) = [value for name, value in headers if name == "Set-Cookie"]
    attributes = dict(
        part.strip().partition("=")[::2] for part in cookie.split(";")[1:]
    )
    assert attributes.get("Max-Age") == max_age
    record = store.load(key)
    assert record is not None
    if max_age is not None:
        # A save's time is written to the microsecond.
        expires_at = frozen_clock() + int(max_age)
        assert record.expires_at == pytest.approx(expires_at, abs=1e-6)
        assert "Expires" in attributes
    else:
        assert "Expires" not in attributes


def stream_app(declared_length: bool, events: list[str]) -> Any:
    """A generator body of two chunks that changes the session before each."""

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        session = environ["wsgisession"]
        headers = [("Content-Type", "text/event-stream")]
        if declared_length:
            headers.append(("Content-Length", "16"))
        start_response("200 OK", headers)
        session["event"] = 1
        events.append("app: event 1")
        yield b"data: 1\n"
        events.append("app: event 2 asked")
        session["event"] = 2
        yield b"data: 2\n"

    return app


def served(declared_length: bool) -> tuple[list[str], MemoryStore]:
    """Play a server for :func:`stream_app`: note each chunk as it arrives
    (with the events stored by then), then close the body."""
    events: list[str] = []
    store = MemoryStore()
    middleware = SessionMiddleware(stream_app(declared_length, events), store)
    body = middleware(
        {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "wsgi.url_scheme": "http"},
        lambda status, headers, exc_info=None: (
            events.append("server: headers") or (lambda data: None)
        ),
    )
    for chunk in body:
        saved = sorted(
            json.loads(r.payload)["data"].get("event", 0)
            for r in store._records.values()  # type: ignore[attr-defined]
        )
        events.append(f"server: {chunk.decode().strip()} (stored {saved})")
    body.close()  # type: ignore[attr-defined]
    return events, store


def test_a_body_of_unknown_length_goes_out_as_the_app_yields_it() -> None:
    """Server-sent events: the first event reaches the server before the app is
    asked for the next; the session's last change is saved at the end."""
    events, store = served(declared_length=False)
    assert events == [
        "app: event 1",
        "server: headers",
        "server: data: 1 (stored [])",
        "app: event 2 asked",
        "server: data: 2 (stored [])",
    ]
    (record,) = store._records.values()  # type: ignore[attr-defined]
    assert json.loads(record.payload)["data"] == {"event": 2}


def test_a_body_of_declared_length_is_saved_before_its_last_chunk() -> None:
    """A complete body: one chunk behind, so the save is done before the
    client can have the whole body (and follow a redirect)."""
    events, _ = served(declared_length=True)
    assert events == [
        "app: event 1",
        "app: event 2 asked",
        "server: headers",
        "server: data: 1 (stored [])",
        "server: data: 2 (stored [2])",
    ]


def stream_on_a_saved_session(middleware: SessionMiddleware) -> tuple[str, Any]:
    """A saved session (step 0), and the body of a request that carries it."""
    existing = middleware.open_session()
    existing["step"] = 0
    existing.save()
    key = existing.session_key
    assert key is not None
    body = middleware(
        {"REQUEST_METHOD": "GET", "HTTP_COOKIE": f"sessionid={key}"},
        lambda status, headers, exc_info=None: lambda data: None,
    )
    return key, body


def test_a_redirect_of_unknown_length_is_saved_before_its_headers_go() -> None:
    """A browser follows a redirect as soon as it has the headers: the
    session the redirect sets must be stored by then."""
    store = MemoryStore()
    seen: list[int] = []

    def login(environ: dict[str, Any], start_response: Any) -> Any:
        environ["wsgisession"]["user"] = "ada"
        start_response("302 Found", [("Location", "/home")])
        yield b""

    body = SessionMiddleware(login, store)(
        {"REQUEST_METHOD": "GET", "PATH_INFO": "/"},
        lambda status, headers, exc_info=None: (
            seen.append(len(store)) or (lambda data: None)
        ),
    )
    assert list(body) == [b""]
    body.close()  # type: ignore[attr-defined]
    assert seen == [1]


def test_a_stream_the_client_left_still_saves_what_it_changed() -> None:
    """The server stops iterating (the client went away) and closes the body:
    the changes made so far are saved, as for a body of declared length."""
    store = MemoryStore()

    def stream(environ: dict[str, Any], start_response: Any) -> Any:
        session = environ["wsgisession"]
        start_response("200 OK", [("Content-Type", "text/event-stream")])
        for step in range(1, 10):
            session["step"] = step
            yield b"data: %d\n" % step

    middleware = SessionMiddleware(stream, store)
    key, body = stream_on_a_saved_session(middleware)
    chunks = iter(body)
    assert next(chunks) == b"data: 1\n"
    assert next(chunks) == b"data: 2\n"
    chunks.close()  # type: ignore[attr-defined]  # the write failed: no more
    body.close()  # type: ignore[attr-defined]
    assert middleware.open_session(key)["step"] == 2


def test_a_failed_save_at_the_end_of_a_stream_is_not_tried_again_by_close(
    tmp_path: Path,
) -> None:
    """The store is down when the stream ends: the error reaches the server
    once, from the iteration; close() does not wait on the store again."""
    from wsgisession.errors import StoreUnavailable
    from wsgisession.stores import FileStore

    store = FileStore(tmp_path / "sessions")
    checks: list[str] = []
    check = store._check_directory

    def counted_check() -> None:
        checks.append("store")
        check()

    store._check_directory = counted_check  # type: ignore[method-assign]

    def stream(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "text/event-stream")])
        environ["wsgisession"]["step"] = 1
        yield b"data: 1\n"
        environ["wsgisession"]["step"] = 2
        shutil.rmtree(store.path)
        Path(store.path).write_bytes(b"")  # the directory is gone: a file there
        yield b"data: 2\n"

    middleware = SessionMiddleware(stream, store)
    _, body = stream_on_a_saved_session(middleware)
    checks.clear()
    with pytest.raises(StoreUnavailable):
        list(body)
    attempts = len(checks)
    body.close()  # type: ignore[attr-defined]
    assert attempts >= 1 and len(checks) == attempts, "close() went to the store"


class CountingStore(MemoryStore):
    """A memory store that counts the saves of existing records."""

    updates = 0

    def update(self, *args: Any) -> str:
        self.updates += 1
        return super().update(*args)


@pytest.mark.parametrize("change_in_close", [False, True])
def test_a_stream_saves_again_at_close_only_what_changed_after_its_end(
    change_in_close: bool,
) -> None:
    """The save at the end of a streamed body is not the request's last: the
    body's close() runs app code, so a value changed in place there is still
    seen (and saved), and one that did not change is not saved twice."""
    store = CountingStore()

    class Stream:
        """A body whose close() (called by the server after the last chunk)
        may change the session's list in place."""

        def __init__(self, cart: list[str]) -> None:
            self.cart = cart

        def __iter__(self) -> Any:
            self.cart.append("item")
            yield b"data\n"

        def close(self) -> None:
            if change_in_close:
                self.cart.append("late")

    def stream(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "text/event-stream")])
        return Stream(environ["wsgisession"]["cart"])

    middleware = SessionMiddleware(stream, store)
    existing = middleware.open_session()
    existing["cart"] = []
    existing.save()
    key = existing.session_key
    body = middleware(
        {"REQUEST_METHOD": "GET", "HTTP_COOKIE": f"sessionid={key}"},
        lambda status, headers, exc_info=None: lambda data: None,
    )
    assert list(body) == [b"data\n"]
    body.close()  # type: ignore[attr-defined]
    expected = ["item", "late"] if change_in_close else ["item"]
    assert middleware.open_session(key)["cart"] == expected
    assert store.updates == (2 if change_in_close else 1)


def test_a_list_body_saves_once_and_its_cookie_says_so() -> None:
    """A complete body's save is the request's last: one write, the cookie set."""
    store = CountingStore()

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        environ["wsgisession"]["cart"].append("item")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    middleware = SessionMiddleware(app, store)
    existing = middleware.open_session()
    existing["cart"] = []
    existing.save()
    key = existing.session_key
    sent: list[Any] = []
    body = middleware(
        {"REQUEST_METHOD": "GET", "HTTP_COOKIE": f"sessionid={key}"},
        lambda status, headers, exc_info=None: sent.append(headers),
    )
    assert list(body) == [b"ok"]
    assert store.updates == 1
    assert any(name == "Set-Cookie" and key in value for name, value in sent[0])
    assert middleware.open_session(key)["cart"] == ["item"]


def test_a_cookie_store_saved_by_write_warns_of_no_late_change(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The legacy write() sends the cookie store's cookie before the body ends;
    that save is not the request's last, and nothing changed after it."""
    from wsgisession.stores import SignedCookieStore

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        environ["wsgisession"]["user"] = "ada"
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"hello ")
        return iter([b"world"])

    middleware = SessionMiddleware(
        app, SignedCookieStore("x40f4a39fd00e0f49e288f0320331cdc")
    )
    sent: list[Any] = []
    body = middleware(
        {"REQUEST_METHOD": "GET"},
        lambda status, headers, exc_info=None: sent.append(headers) or (lambda d: None),
    )
    with caplog.at_level("WARNING", logger="wsgisession"):
        assert b"".join(body) == b"world"
        body.close()  # type: ignore[attr-defined]
    assert any(name == "Set-Cookie" for name, _ in sent[0])
    assert caplog.records == []


def test_a_save_after_the_response_applies_only_the_changes_made_since() -> None:
    """An outer layer that saves the session after the middleware's response
    (whose save was the last one the middleware makes) does not write the
    response's changes again over another request's."""
    store = MemoryStore()

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        session = environ["wsgisession"]
        session["flag"] = "A"
        del session["gone"]
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    middleware = SessionMiddleware(app, store)
    seed = middleware.open_session()
    seed.update(flag="0", gone=1)
    seed.save()
    key = seed.session_key
    assert key is not None
    environ = {"REQUEST_METHOD": "GET", "HTTP_COOKIE": f"sessionid={key}"}
    assert middleware(environ, lambda *args: lambda data: None) == [b"ok"]
    session = environ["wsgisession"]
    assert not session.has_unsaved_changes()
    other = middleware.open_session(key)
    other.update(flag="B", gone="back")
    other.save()
    session["audit"] = 1
    session.save()
    assert dict(middleware.open_session(key)) == {
        "flag": "B",
        "gone": "back",
        "audit": 1,
    }


def test_a_detached_response_finished_twice_saves_a_change_made_in_place_between() -> (
    None
):
    """Flask's test contexts finish a detached response; one finished again
    after a held list changed in place saves that change."""
    store = MemoryStore()
    middleware = SessionMiddleware(lambda environ, start_response: [], store)
    response = middleware.detached_response({"REQUEST_METHOD": "GET"})
    session = response.session
    session["cart"] = []
    cart = session["cart"]
    headers = response.finish("200 OK")
    key = session.session_key
    assert key is not None and any(key in value for _, value in headers)
    other = middleware.open_session(key)  # another request, meanwhile
    other["theirs"] = 1
    other.save()
    cart.append("item")
    response.finish("200 OK")
    assert dict(middleware.open_session(key)) == {"cart": ["item"], "theirs": 1}
