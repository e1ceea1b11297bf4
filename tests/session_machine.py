"""The session model's state machine (tests/session_model.py is the model):
requests through SessionMiddleware, each running a few session operations
and ending in a 2xx, 3xx, 4xx or 5xx response or an exception; a second
tab's whole request in the middle of another; a fake clock. Run by
test_session_model.py and its variants on other stores and with users
(test_session_model_stores.py, test_session_model_users.py).
"""

from __future__ import annotations

import datetime
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from helpers import examples, fake_clock
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    rule,
)
from model_census import Census
from session_model import (
    COOKIE_AGE,
    COOKIE_NAME,
    Jar,
    ModelRequest,
    Policy,
    Stored,
)
from werkzeug.http import parse_date

from wsgisession import SessionMiddleware
from wsgisession.errors import SessionInterrupted
from wsgisession.stores import FileStore, MemoryStore, SQLiteStore
from wsgisession.stores.base import Store, storage_key

START = 1_700_000_000.0
KEYS = st.sampled_from(["a", "b", "c"])
VALUES = st.integers(0, 9) | st.lists(st.integers(0, 9), max_size=2)
EXPIRIES = st.sampled_from(
    [None, 0, 5, 300, 3000, -10, datetime.timedelta(seconds=500)]
)
OPS = st.one_of(
    st.tuples(st.just("get"), KEYS),
    st.tuples(st.just("set"), KEYS, VALUES),
    st.tuples(st.just("del"), KEYS),
    st.tuples(st.just("pop"), KEYS),
    st.tuples(st.just("setdefault"), KEYS, VALUES),
    st.tuples(st.just("update"), st.dictionaries(KEYS, VALUES, max_size=2)),
    st.tuples(st.just("append"), KEYS, st.integers(0, 9)),
    st.tuples(st.just("set_expiry"), EXPIRIES),
    st.sampled_from(
        [("clear",), ("flush",), ("cycle_key",), ("unaccess",), ("items",)]
    ),
)
SCRIPTS = st.lists(OPS, max_size=4)
#: How a request ends: its status (None: the app raises); "stream" is a
#: 200 whose body of unknown length sends its headers before the save.
ENDINGS = st.sampled_from(
    ["200 OK", "302 Found", "404 Not Found", "500 Error", None, "stream"]
)
POLICIES = {
    "defaults": Policy(),
    "browser-close": Policy(expire_at_browser_close=True),
    "timeouts": Policy(absolute_timeout=1500, reissue_time=200),
    "every-request": Policy(save_every_request=True),
}


class AppFailure(Exception):
    """The app's own exception (the ending None)."""


class SessionMachine(RuleBasedStateMachine):
    """Requests through the middleware, checked against the model."""

    make_store: Any = None  # set per store kind: () -> (store, where)
    model_request = ModelRequest
    policy = Policy()

    def __init__(self) -> None:
        super().__init__()
        self.store, self.where = self.make_store()
        self.middleware = SessionMiddleware(
            self.app,
            self.store,
            cookie_age=COOKIE_AGE,
            cleanup_interval=0,
            **self.policy.options(),
        )
        self.census = Census(self.store, self.where)
        self.model: dict[str, Stored] = {}
        self.jar = Jar()
        self.clock_context = fake_clock(START)
        self.clock = self.clock_context.__enter__()

    def teardown(self) -> None:
        self.clock_context.__exit__(None, None, None)
        self.census.close()
        self.middleware.close()

    # -- the app -------------------------------------------------------------

    def app(self, environ, start_response):
        ops, status, model = environ["model.request"]
        session = environ["wsgisession"]
        for op in ops:
            self.run_op(op, session, model)
        if status is None:
            raise AppFailure()
        if status == "stream":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return iter([b"o", b"k"])
        start_response(status, [("Content-Type", "text/plain")])
        return [b"ok"]

    def run_op(self, op: tuple, session: Any, model: ModelRequest) -> None:
        name, *args = op
        if name == "tab2":
            self.request(*args)
        elif name == "get":
            assert session.get(args[0]) == model.load().get(args[0]), op
        elif name == "items":
            assert dict(session.items()) == model.load(), op
        elif name == "set":
            session[args[0]] = args[1]
            model.set(*args)
        elif name == "setdefault":
            if args[0] not in model.load():
                model.set(*args)
            assert session.setdefault(*args) == model.data[args[0]], op
        elif name == "update":
            session.update(args[0])
            for key, value in args[0].items():
                model.set(key, value)
            model.load()
            model.modified = True
        elif name in ("del", "pop"):
            present = args[0] in model.load()
            if present:
                model.delete(args[0])
            if name == "pop":
                session.pop(args[0], None)
                return
            try:
                del session[args[0]]
            except KeyError:
                assert not present, op
            else:
                assert present, op
        elif name == "append":
            value = session.get(args[0])
            if isinstance(value, list):
                value.append(args[1])
                model.load()[args[0]].append(args[1])
                model.changed.add(args[0])
                model.modified = True
            else:
                model.load()
        elif name == "unaccess":
            session.accessed = model.accessed = False
        elif name == "cycle_key":
            self.cycle_key(session, model)
        else:  # clear, flush, set_expiry
            getattr(session, name)(*args)
            getattr(model, name)(*args)

    def cycle_key(self, session: Any, model: ModelRequest) -> None:
        try:
            session.cycle_key()
        except SessionInterrupted:
            with pytest.raises(SessionInterrupted):
                model.cycle_key(None)
            raise
        model.cycle_key(session.session_key)
        self.census.seen.add(session.session_key)

    # -- one request -------------------------------------------------------------

    def request(self, ops: list[tuple], status: str | None) -> None:
        now = self.clock.now
        cookie = self.jar.sent(now)
        model = self.model_request(self.model, cookie, now, self.policy)
        model.offered_cookie = cookie is not None
        environ = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": "/",
            "SERVER_NAME": "localhost",
            "SERVER_PORT": "80",
            "wsgi.url_scheme": "http",
            "model.request": (ops, status, model),
        }
        if cookie is not None:
            environ["HTTP_COOKIE"] = f"{COOKIE_NAME}={cookie}"
        nested = any(op[0] == "tab2" for op in ops)
        before = self.census(now)
        seen: list = []

        def start_response(status, headers, exc_info=None):
            seen[:] = [status, list(headers)]
            return lambda data: None

        try:
            body = self.middleware(environ, start_response)
            b"".join(body)
            getattr(body, "close", lambda: None)()
        except (AppFailure, SessionInterrupted):
            status = None
        headers = seen[1] if status is not None else []
        cookies = [v for k, v in headers if k == "Set-Cookie"]
        set_key = None
        if cookies and cookies[0].split(";")[0] != f"{COOKIE_NAME}=":
            set_key = cookies[0].split(";")[0].split("=", 1)[1]
        if status == "stream":
            expected = model.finish("200 OK", set_key, streamed=True)
        else:
            expected = model.finish(status, set_key)
        self.check_cookie(cookies, expected.cookie, expected.max_age, now)
        vary = any(k == "Vary" and "Cookie" in v for k, v in headers)
        assert vary == expected.vary, (headers, expected)
        if not model.wrote and not nested:
            assert self.census(now) == before
        self.take_cookie(cookies, now)

    def check_cookie(
        self, cookies: list[str], key: str | None, age: int | None, now: float
    ) -> None:
        if key is None:
            assert cookies == []
            return
        assert len(cookies) == 1, cookies
        attributes = dict(
            (part.strip().partition("=")[::2]) for part in cookies[0].split(";")[1:]
        )
        assert cookies[0].startswith(f"{COOKIE_NAME}={key};"), (cookies, key)
        if key == "":  # deleting
            assert attributes.get("Max-Age") == "0", cookies
            return
        if age is None:
            assert "Max-Age" not in attributes and "Expires" not in attributes
            return
        assert attributes.get("Max-Age") == str(age), (cookies, age)
        expires = parse_date(attributes["Expires"])
        assert expires is not None
        assert expires.timestamp() == int(now) + age, cookies

    def take_cookie(self, cookies: list[str], now: float) -> None:
        """The browser stores what the response set."""
        for header in cookies:
            value = header.split(";")[0].split("=", 1)[1]
            self.census.seen.add(value)
            ages = [p.split("=")[1] for p in header.split(";") if "Max-Age" in p]
            if not value or (ages and int(ages[0]) <= 0):
                self.jar = Jar()
            else:
                self.jar = Jar(value, now + int(ages[0]) if ages else None)

    # -- rules -----------------------------------------------------------------

    @rule(ops=SCRIPTS, status=ENDINGS)
    def one_request(self, ops: list[tuple], status: str | None) -> None:
        self.request(ops, status)

    @rule(
        before=SCRIPTS.filter(bool),
        other=SCRIPTS,
        other_status=ENDINGS,
        after=SCRIPTS,
        status=ENDINGS,
    )
    def two_tabs(self, before, other, other_status, after, status) -> None:
        """The second tab's whole request runs in the middle of the first's."""
        self.request([*before, ("tab2", other, other_status), *after], status)

    @rule(seconds=st.sampled_from([1, 299, 301, 499, 999, 1001, 2999]))
    def time_passes(self, seconds: int) -> None:
        self.clock.advance(seconds)

    @rule()
    def browser_closes(self) -> None:
        if self.jar.ends is None:
            self.jar = Jar()

    # -- invariants ----------------------------------------------------------

    @invariant()
    def store_is_model(self) -> None:
        now = self.clock.now
        live = {k: s for k, s in self.model.items() if s.expires_at > now}
        stored = self.census(now)
        assert set(stored) == {storage_key(k) for k in live}, (stored, live)
        for key, expected in live.items():
            assert abs(stored[storage_key(key)][1] - expected.expires_at) < 1e-3
            session = self.middleware.open_session(key)
            assert dict(session) == expected.data
            assert session.user_id == expected.owner, (key, expected)


def local_store(kind: str, root: Path) -> Any:
    """A maker of fresh local stores of ``kind`` (memory, file, sqlite)."""
    counter = iter(range(10**9))

    def make() -> tuple[Store, str]:
        where = str(Path(tempfile.mkdtemp(dir=root)) / f"s{next(counter)}")
        if kind == "memory":
            return MemoryStore(), ""
        if kind == "file":
            return FileStore(where), where
        return SQLiteStore(where), where

    return make


MACHINE_SETTINGS = settings(
    max_examples=int(os.environ.get("MODEL_EXAMPLES", examples(25))),
    stateful_step_count=int(os.environ.get("MODEL_STEPS", "12")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
