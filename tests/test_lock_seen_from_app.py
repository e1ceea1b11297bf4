"""The request lock (``lock = true``) as an app on a real server sees it.

While one request of a session holds its lock (a long poll, a slow
report), a request that never uses the session (a health check, a
static file) must not wait for it: with Flask's
``SESSION_REFRESH_EACH_REQUEST`` or ``save_every_request`` the
middleware's own re-save loaded the session, and so waited
``lock_timeout`` (and, with ``save_every_request``, answered 500). A
request the app makes to itself in the same thread (an internal
sub-request, Flask's test client in a view) waited ``lock_timeout`` on
its own outer request's lock. A request that held the lock past
``lock_ttl`` lost it without a word: another request of the session ran
meanwhile, and the last save won a key both changed.
"""

from __future__ import annotations

import io
import logging
import threading
import time
import wsgiref.util
from pathlib import Path
from typing import Any, Self

import flask
import pytest
from helpers import saved_session, store_fixture
from threaded_servers import SERVINGS, timed_get

from wsgisession import SessionMiddleware, request_locks
from wsgisession.contrib.flask import init_app
from wsgisession.errors import LockTimeout
from wsgisession.logthrottle import ThrottledWarning
from wsgisession.stores.base import Store

pytestmark = pytest.mark.slow  # servers of their own

store = store_fixture(["sqlite", "file", "redis", "memcached"])

#: An answer that did not wait for a held lock comes well within this (s).
PROMPT = 0.5


class Holder:
    """A request that holds its session's lock until told to let go."""

    def __init__(self, url: str, cookie: str) -> None:
        self.holds = threading.Event()
        self.let_go = threading.Event()
        self.answers: list[tuple[int, float, str]] = []
        self._thread = threading.Thread(
            target=lambda: self.answers.append(timed_get(url, cookie))
        )

    def hold(self, session: Any) -> None:
        """In the holding view: use the session (its lock taken), then wait."""
        session.get("user")
        self.holds.set()
        assert self.let_go.wait(10)

    def __enter__(self) -> Self:
        self._thread.start()
        assert self.holds.wait(10), "the holding request never took the lock"
        return self

    def __exit__(self, *exc: object) -> None:
        self.let_go.set()
        self._thread.join(10)


def once_the_lock_is_free(url: str, cookie: str) -> tuple[int, float, str]:
    """GET ``url`` until its answer sets the cookie: the holder's answer
    can reach the client before the server's ``close()`` releases the lock
    (up to 2 s)."""
    deadline = time.monotonic() + 2
    while True:
        answer = timed_get(url, cookie)
        if answer[2] or time.monotonic() > deadline:
            return answer
        time.sleep(0.02)


def flask_site(static: Path) -> tuple[flask.Flask, list[Holder]]:
    """A Flask app: /login (a permanent session), /hold, /health, /static/."""
    app = flask.Flask("lockapp", static_folder=str(static))
    holders: list[Holder] = []

    @app.route("/login")
    def login() -> str:
        flask.session["user"] = "ada"
        flask.session.permanent = True
        return "in"

    @app.route("/hold")
    def hold() -> str:
        holders[-1].hold(flask.session)
        return "held"

    @app.route("/health")
    def health() -> str:
        return "ok"

    return app, holders


@pytest.mark.parametrize("server", ["werkzeug", "waitress"])
def test_flask_pages_that_never_use_the_session_do_not_wait_for_its_lock(
    server: str, store: Store, tmp_path: Path
) -> None:
    """Flask refreshes a permanent session on every request by default
    (SESSION_REFRESH_EACH_REQUEST): before, that load waited for the lock
    a long request held, lock_timeout (1 s here) for /health and for each
    static file of a page. The holder refreshes the session when it ends."""
    (tmp_path / "static").mkdir()
    (tmp_path / "static" / "site.css").write_text("body {}")
    app, holders = flask_site(tmp_path / "static")
    init_app(app, store=store, lock=True, lock_timeout=1)
    with SERVINGS[server](app) as url:
        _, _, set_cookie = timed_get(url + "/login")
        cookie = set_cookie.split(";")[0]
        holders.append(Holder(url + "/hold", cookie))
        with holders[-1]:
            health = timed_get(url + "/health", cookie)
            static = timed_get(url + "/static/site.css", cookie)
        refreshed = once_the_lock_is_free(url + "/health", cookie)
    assert health[:1] == static[:1] == (200,)
    assert health[1] < PROMPT and static[1] < PROMPT, (health, static)
    assert health[2] == static[2] == ""  # not refreshed while held
    assert holders[-1].answers[0][0] == 200
    assert holders[-1].answers[0][2].startswith(cookie + ";")  # the holder refreshed
    assert refreshed[2].startswith(cookie + ";")


def plain_app(holders: list[Holder]) -> Any:
    """/hold holds the session's lock; /health never uses the session."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if environ["PATH_INFO"] == "/hold":
            holders[-1].hold(environ["wsgisession"])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    return app


@pytest.mark.parametrize("server", ["wsgiref", "waitress"])
def test_save_every_request_does_not_fail_a_page_that_never_uses_the_session(
    server: str, store: Store
) -> None:
    """With save_every_request the middleware loads the session of every
    request that carries its cookie, to save it again: before, /health
    waited lock_timeout for the holder's lock, then answered 500
    (LockTimeout). The holder saves the session itself when it ends."""
    holders: list[Holder] = []
    middleware = SessionMiddleware(
        plain_app(holders), store, lock=True, lock_timeout=1, save_every_request=True
    )
    cookie = f"sessionid={saved_session(store, user='ada')}"
    with SERVINGS[server](middleware) as url:
        holders.append(Holder(url + "/hold", cookie))
        with holders[-1]:
            health = timed_get(url + "/health", cookie)
        saved = once_the_lock_is_free(url + "/health", cookie)
    assert health[0] == 200 and health[1] < PROMPT, health
    assert health[2] == ""
    assert holders[-1].answers[0][0] == 200
    assert holders[-1].answers[0][2].startswith(cookie + ";")
    assert saved[0] == 200 and saved[2].startswith(cookie + ";")


def sub_environ(environ: dict[str, Any], path: str) -> dict[str, Any]:
    """A new request to ``path`` of this app, with the outer request's cookie."""
    inner: dict[str, Any] = {"PATH_INFO": path, "HTTP_COOKIE": environ["HTTP_COOKIE"]}
    wsgiref.util.setup_testing_defaults(inner)
    inner["wsgi.errors"] = io.StringIO()
    return inner


def self_calling_app(
    middlewares: list[SessionMiddleware], from_other_thread: list[BaseException]
) -> Any:
    """/outer changes the session, then calls /inner through the middleware
    (a sub-request with the same cookie), and /inner once more from another
    thread, which must still wait for the lock (held by /outer)."""

    def inner_call(environ: dict[str, Any]) -> bytes:
        statuses: list[str] = []
        body = middlewares[0](
            sub_environ(environ, "/inner"), lambda s, h, e=None: statuses.append(s)
        )
        try:
            return statuses[0].encode() + b" " + b"".join(body)
        finally:
            getattr(body, "close", lambda: None)()

    def other_thread(environ: dict[str, Any]) -> None:
        try:
            inner_call(environ)
        except LockTimeout as exc:
            from_other_thread.append(exc)

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        session = environ["wsgisession"]
        if environ["PATH_INFO"] == "/inner":
            session["inner"] = 2  # the outer request saves "outer" later
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"inner"]
        session["outer"] = 1
        answer = inner_call(environ)
        thread = threading.Thread(target=other_thread, args=(environ,))
        thread.start()
        thread.join(10)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [answer]

    return app


@pytest.mark.parametrize("server", ["werkzeug", "waitress"])
def test_a_sub_request_of_the_same_session_in_the_same_thread_does_not_wait(
    server: str, store: Store
) -> None:
    """Before, the sub-request waited lock_timeout (0.4 s here) for the
    lock its own outer request held, then failed with LockTimeout."""
    other: list[BaseException] = []
    middlewares: list[SessionMiddleware] = []
    middlewares.append(
        SessionMiddleware(
            self_calling_app(middlewares, other), store, lock=True, lock_timeout=0.4
        )
    )
    key = saved_session(store, user="ada")
    with SERVINGS[server](middlewares[0]) as url:
        status, took, _ = timed_get(url + "/outer", f"sessionid={key}")
    assert status == 200
    assert took < 0.4 + PROMPT  # the other thread's wait only
    assert [type(exc) for exc in other] == [LockTimeout]
    session = middlewares[0].open_session(key)
    assert dict(session) == {"user": "ada", "outer": 1, "inner": 2}


@pytest.mark.parametrize("server", ["werkzeug", "waitress"])
def test_flask_test_client_in_a_view_does_not_wait_for_the_lock(
    server: str, store: Store
) -> None:
    """An internal call through Flask's test client, with the browser's
    cookie: before, 500 after lock_timeout (1 s here) inside the view."""
    app = flask.Flask("lockapp")

    @app.route("/outer")
    def outer() -> str:
        flask.session["outer"] = 1
        client = app.test_client()
        client.set_cookie("session", flask.request.cookies["session"])
        started = time.monotonic()
        answer = client.get("/inner")
        return f"{answer.status_code} {time.monotonic() - started:.3f}"

    @app.route("/inner")
    def inner() -> str:
        flask.session["inner"] = 2
        return "inner"

    init_app(app, store=store, lock=True, lock_timeout=1)
    key = saved_session(store, user="ada")
    with SERVINGS[server](app) as url:
        status, took, _ = timed_get(url + "/outer", f"session={key}")
    assert status == 200 and took < PROMPT
    middleware = app.extensions["wsgisession"]
    assert dict(middleware.open_session(key)) == {"user": "ada", "outer": 1, "inner": 2}


def counting_app(holders: list[Holder]) -> Any:
    """/long reads the counter, holds the lock, then adds one; /add adds one."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        session = environ["wsgisession"]
        counter = session.get("counter", 0)
        if environ["PATH_INFO"] == "/long":
            holders[-1].hold(session)
        session["counter"] = counter + 1
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    return app


@pytest.mark.parametrize("server", ["werkzeug", "wsgiref"])
def test_a_request_that_held_the_lock_past_lock_ttl_says_so(
    server: str,
    store: Store,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """lock_ttl 1 s: /add takes the lock over from /long, which saves on
    top of it (the count goes up once for two requests). Before, nothing
    said so; now a WARNING names lock_ttl, and only for the late holder
    (its first in the minute: a fresh throttle per test)."""
    fresh = ThrottledWarning(request_locks.logger)
    monkeypatch.setattr(request_locks, "_warn_overran", fresh)
    caplog.set_level(logging.DEBUG, logger="wsgisession")
    holders: list[Holder] = []
    middleware = SessionMiddleware(
        counting_app(holders), store, lock=True, lock_timeout=5, lock_ttl=1
    )
    key = saved_session(store, counter=0)
    cookie = f"sessionid={key}"
    with SERVINGS[server](middleware) as url:
        holders.append(Holder(url + "/long", cookie))
        with holders[-1]:
            added = timed_get(url + "/add", cookie)  # waits for lock_ttl
            assert added[0] == 200 and added[1] > 0.5
        assert holders[-1].answers[0][0] == 200
    assert middleware.open_session(key)["counter"] == 1  # one update lost
    warnings = [r for r in caplog.records if "lock_ttl" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in caplog.records]
    assert warnings[0].levelno == logging.WARNING
    assert warnings[0].name.startswith("wsgisession")


def long_poll_app(answered: threading.Event) -> Any:
    """/poll saves, releases the lock and waits (a long poll), then changes
    the session once more; /other changes another key."""

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        session = environ["wsgisession"]
        if environ["PATH_INFO"] != "/poll":
            session["other"] = 1
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok"]
        session["polls"] = 1
        session.save()
        session.release_lock()

        def events() -> Any:
            assert answered.wait(10)
            session["late"] = True
            yield b"event"

        start_response("200 OK", [("Content-Type", "text/event-stream")])
        return events()

    return app


def test_a_long_poll_that_released_the_lock_lets_the_others_run(store: Store) -> None:
    """troubleshooting.rst's advice: save(), then release_lock(), before a
    long wait. The other request runs at once; the poll's late change is
    merged in at its end."""
    answered = threading.Event()
    middleware = SessionMiddleware(
        long_poll_app(answered), store, lock=True, lock_timeout=1
    )
    key = saved_session(store, user="ada")
    cookie = f"sessionid={key}"
    with SERVINGS["werkzeug"](middleware) as url:
        polls: list[tuple[int, float, str]] = []
        poll = threading.Thread(
            target=lambda: polls.append(timed_get(url + "/poll", cookie))
        )
        poll.start()
        try:
            deadline = time.monotonic() + 5
            while "polls" not in middleware.open_session(key):
                assert time.monotonic() < deadline
                time.sleep(0.01)
            other = timed_get(url + "/other", cookie)
        finally:
            answered.set()
            poll.join(10)
    assert other[0] == 200 and other[1] < PROMPT
    assert polls[0][0] == 200
    session = dict(middleware.open_session(key))
    assert session == {"user": "ada", "polls": 1, "other": 1, "late": True}
