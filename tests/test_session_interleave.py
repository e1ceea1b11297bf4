"""Overlapping requests of one session (``lock = false``), against the model.

Two or three requests carry the same cookie; each loads its session, then
waits on an event, so the test decides when it runs its operations and
saves (the middleware's save at the end of the request). Every order of
loads and ends is played: A loads, B loads, A ends, B ends; the reverse;
three requests; a request that starts after another ended. The model
(tests/session_model.py) is what docs/session.rst promises: each key a
request set, deleted or changed in place keeps that request's value (the
last save wins per key), untouched keys stay, a ``clear()`` empties the
record as it is at save time, a ``flush()`` elsewhere is never undone, a
``cycle_key()`` (or ``bind_user()``) takes along what was saved before it
and its old key never comes back, ``set_expiry()`` is merged like a key,
and the owner stays the stored one unless the request cleared or bound the
session. After the requests, the store must hold exactly what the model
holds (data, expiry, owner), on every store.
"""

from __future__ import annotations

import copy
import datetime
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import FakeClock, build_store, fake_clock, store_argument
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from session_model import COOKIE_AGE, COOKIE_NAME, Jar, ModelRequest, Policy, Stored

from wsgisession import SessionMiddleware
from wsgisession.errors import SessionInterrupted
from wsgisession.stores.base import Store

pytestmark = pytest.mark.slow  # hypothesis over every store, with threads

KEYS = st.sampled_from(["a", "b", "c"])
#: Few distinct values, so that a request often sets the value a key has.
VALUES = (
    st.integers(0, 2)
    | st.lists(st.integers(0, 2), max_size=2)
    | st.fixed_dictionaries({"n": st.lists(st.integers(0, 2), max_size=2)})
    | st.sets(st.integers(0, 2), max_size=2)
    | st.tuples(st.integers(0, 2))
)
EXPIRIES = st.sampled_from([None, 0, 300, 3000, -10, datetime.timedelta(seconds=500)])
#: Operations without arguments ("modified": ``session.modified = True``).
BARE = ["clear", "flush", "cycle_key", "bind_user", "items", "save"]
BARE += ["values", "modified"]
OPS = st.one_of(
    st.tuples(st.just("get"), KEYS),
    st.tuples(st.just("set"), KEYS, VALUES),
    st.tuples(st.just("same"), KEYS),
    st.tuples(st.just("del"), KEYS),
    st.tuples(st.just("pop"), KEYS),
    st.tuples(st.just("setdefault"), KEYS, VALUES),
    st.tuples(st.just("update"), st.dictionaries(KEYS, VALUES, max_size=2)),
    st.tuples(st.just("append"), KEYS, st.integers(0, 2)),
    st.tuples(st.just("undo"), KEYS),
    st.tuples(st.just("set_expiry"), EXPIRIES),
    st.sampled_from(BARE).map(lambda name: (name,)),
)
SCRIPTS = st.lists(OPS, max_size=4)
#: Each request's index twice: its first place in the order is its load,
#: its second its end (operations and save).
ORDERS = st.sampled_from([2, 3]).flatmap(
    lambda n: st.permutations([i for i in range(n) for _ in "le"])
)
ENDINGS = st.sampled_from(["200 OK", "200 OK", "500 Error", "stream"])
STORE_KINDS = ["memory", "file", "sqlite", "redis", "memcached", "sql-postgresql"]
WAIT = 10


class Model(ModelRequest):
    """One request on the model, with an explicit ``save()`` in the middle,
    and the session's owner: the one stored, None after a ``clear()`` of
    this request, the user a ``bind_user()`` of this request named."""

    owner: str | None = None

    def load(self) -> dict[str, Any]:
        if not self.loaded:
            super().load()
            stored = self.live(self.key)
            self.owner = None if stored is None else getattr(stored, "owner", None)
        return self.data

    def clear(self) -> None:
        super().clear()
        self.owner = None

    def flush(self) -> None:
        super().flush()
        self.owner = None

    def merged(self, current: Stored) -> tuple[dict[str, Any], Any]:
        self.owner = None if self.cleared else getattr(current, "owner", None)
        return super().merged(current)

    def _write(self, key: str, data: dict[str, Any], expiry: Any) -> None:
        super()._write(key, data, expiry)
        if key in self.store:
            self.store[key].owner = self.owner  # type: ignore[attr-defined]

    def bind(self, user: str) -> None:
        """After ``cycle_key()`` on the model: the move was ``bind_user()``."""
        self.owner = user
        if self.key in self.store:  # not expired at once
            self.store[self.key].owner = user  # type: ignore[attr-defined]

    def save(self, new_key: str | None) -> None:
        """``session.save()``, which gave the session ``new_key``."""
        self.load()
        self.modified = True
        if self.key is not None:
            current = self.live(self.key)
            if current is None:
                raise SessionInterrupted()
            data, self.expiry = self.merged(current)
        else:
            data, self.key = self.data, new_key
        assert self.key is not None
        self._write(self.key, data, self.expiry)
        self.data, self.saved_at = copy.deepcopy(data), self.now
        self._fresh_changes()


def in_place(value: Any, item: int) -> bool:
    """Add ``item`` inside ``value`` (a list or set, or a dict holding a list)."""
    if isinstance(value, dict) and isinstance(value.get("n"), list):
        value = value["n"]
    if isinstance(value, list):
        value.append(item)
        return True
    if isinstance(value, set) and item not in value:
        value.add(item)
        return True
    return False


def run_op(op: tuple, session: Any, model: Model) -> None:
    """One operation on the real session and on the model."""
    name, *args = copy.deepcopy(op)
    data = model.load()
    if name == "get":
        assert session.get(args[0]) == data.get(args[0]), op
    elif name == "items":
        assert dict(session.items()) == data, op
    elif name == "values":  # every value handed out, one changed through the view
        for value in session.values():
            if in_place(value, 9):
                key = next(k for k, v in session.items() if v is value)
                in_place(data[key], 9)
                model.changed.add(key)
                model.modified = True
                break
    elif name == "modified":
        session.modified = model.modified = True
    elif name == "set":
        session[args[0]] = args[1]
        model.set(*args)
    elif name == "same":  # the value it has, assigned again
        if args[0] in data:
            session[args[0]] = copy.deepcopy(session[args[0]])
            model.set(args[0], data[args[0]])
    elif name == "setdefault":
        if args[0] not in data:
            model.set(*args)
        assert session.setdefault(*args) == model.data[args[0]], op
    elif name == "update":
        session.update(args[0])
        for key, value in args[0].items():
            model.set(key, value)
        model.modified = True
    elif name in ("del", "pop"):
        if args[0] in data:
            model.delete(args[0])
            if name == "del":
                del session[args[0]]
            else:
                session.pop(args[0])
    elif name == "append":  # a change in place
        if in_place(session.get(args[0]), args[1]):
            in_place(data[args[0]], args[1])
            model.changed.add(args[0])
            model.modified = True
    elif name == "undo":  # changed in place and back: no change
        value = session.get(args[0])
        if in_place(value, 7):
            inner = value["n"] if isinstance(value, dict) else value
            inner.remove(7)
    elif name in ("cycle_key", "bind_user"):
        cycle_key(session, model, name)
    elif name == "save":
        save(session, model)
    else:  # clear, flush, set_expiry
        getattr(session, name)(*args)
        getattr(model, name)(*args)


def cycle_key(session: Any, model: Model, name: str) -> None:
    """``cycle_key()``, or ``bind_user()``, which moves the data alike."""
    try:
        session.cycle_key() if name == "cycle_key" else session.bind_user("ann")
    except SessionInterrupted:
        with pytest.raises(SessionInterrupted):
            model.cycle_key(None)
        raise
    model.cycle_key(session.session_key)
    if name == "bind_user":
        model.bind("ann")


def save(session: Any, model: Model) -> None:
    try:
        session.save()
    except SessionInterrupted:
        with pytest.raises(SessionInterrupted):
            model.save(None)
        raise
    model.save(session.session_key)


class Flight:
    """One request on a thread of its own: it loads its session, then waits
    for :meth:`end` to run its operations and finish."""

    def __init__(
        self,
        middleware: SessionMiddleware,
        cookie: str | None,
        ops: list,
        ending: str = "200 OK",
    ) -> None:
        self.middleware, self.cookie, self.ops = middleware, cookie, ops
        self.ending = ending
        self.loaded, self.go = threading.Event(), threading.Event()
        self.headers: list[tuple[str, str]] = []
        self.failed: BaseException | None = None
        self.interrupted = False
        self.model: Model
        self.thread = threading.Thread(target=self._run, daemon=True)

    def app(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        session = environ["wsgisession"]
        session.load()
        self.model.load()
        self.loaded.set()
        assert self.go.wait(WAIT)
        for op in self.ops:
            run_op(op, session, self.model)
        if self.ending == "stream":  # the headers go out before the save
            start_response("200 OK", [("Content-Type", "text/plain")])
            return iter([b"o", b"k"])
        start_response(self.ending, [("Content-Type", "text/plain")])
        return [b"ok"]

    def _run(self) -> None:
        environ = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": "/",
            "SERVER_NAME": "localhost",
            "SERVER_PORT": "80",
            "wsgi.url_scheme": "http",
            "interleave.flight": self,
        }
        if self.cookie is not None:
            environ["HTTP_COOKIE"] = f"{COOKIE_NAME}={self.cookie}"

        def start_response(status, headers, exc_info=None):
            self.headers = list(headers)
            return lambda data: None

        try:
            body = self.middleware(environ, start_response)
            b"".join(body)
        except SessionInterrupted:
            self.interrupted = True
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            self.failed = exc
        finally:
            self.loaded.set()

    def start(self, store: dict[str, Stored], now: float) -> None:
        self.model = Model(store, self.cookie, now, Policy())
        self.model.offered_cookie = self.cookie is not None
        self.thread.start()
        assert self.loaded.wait(WAIT)

    def end(self, now: float) -> str | None:
        """Run the request to its end; the cookie the browser then holds."""
        model = self.model
        model.now = now
        if model.key is None:  # a new session is created when first saved
            model.created = now
        self.go.set()
        self.thread.join(WAIT)
        assert not self.thread.is_alive()
        if self.failed is not None:
            raise self.failed
        cookies = [v for k, v in self.headers if k == "Set-Cookie"]
        set_key = None
        if cookies and not cookies[0].startswith(f"{COOKIE_NAME}=;"):
            set_key = cookies[0].split(";")[0].split("=", 1)[1]
        streamed = self.ending == "stream"
        status = "200 OK" if streamed else self.ending
        expected = self.model.finish(
            None if self.interrupted else status, set_key, streamed=streamed
        )
        check_cookie(cookies, expected.cookie, expected.max_age)
        return expected.cookie


def check_cookie(cookies: list[str], key: str | None, age: int | None) -> None:
    """The response set ``key`` (None: no cookie, "": a deleting one) with ``age``."""
    if key is None:
        assert cookies == []
        return
    assert len(cookies) == 1, cookies
    ages = [p.strip() for p in cookies[0].split(";") if "Max-Age" in p]
    if key == "":  # deleted, or set already expired (a save of set_expiry(-10))
        assert ages and int(ages[0].removeprefix("Max-Age=")) <= 0, cookies
    else:
        assert cookies[0].startswith(f"{COOKIE_NAME}={key};"), (cookies, key)
        assert ages == ([] if age is None else [f"Max-Age={age}"]), (cookies, age)


class Scenario:
    """A session started by a first request, then overlapping requests of it."""

    def __init__(self, middleware: SessionMiddleware, clock: FakeClock) -> None:
        self.middleware, self.clock = middleware, clock
        self.model: dict[str, Stored] = {}
        self.jar = Jar()
        self.keys: set[str] = set()

    def play(
        self, first: list, scripts: list[list], endings: list[str], order: list[int]
    ) -> None:
        self.request(Flight(self.middleware, None, first), started=False)
        flights: dict[int, Flight] = {}
        for index in order:
            self.clock.advance(1)
            if index not in flights:
                flights[index] = Flight(
                    self.middleware, self.jar.value, scripts[index], endings[index]
                )
                flights[index].start(self.model, self.clock.now)
            else:
                self.request(flights[index], started=True)

    def request(self, flight: Flight, *, started: bool) -> None:
        if not started:
            flight.start(self.model, self.clock.now)
        cookie = flight.end(self.clock.now)
        if cookie == "":
            self.jar = Jar()
        elif cookie is not None:
            self.jar = Jar(cookie)
            self.keys.add(cookie)

    def check(self, store: Store) -> None:
        """The store holds what the model holds; no other key of the scenario lives."""
        live = {k: s for k, s in self.model.items() if s.expires_at > self.clock.now}
        for key in self.keys - set(live):
            assert not store.exists(key), key
        for key, expected in live.items():
            record = store.load(key)
            assert record is not None, key
            assert abs(record.expires_at - expected.expires_at) < 1e-3, key
            session = self.middleware.open_session(key)
            assert dict(session) == expected.data, key
            assert session.user_id == getattr(expected, "owner", None), key


@pytest.fixture(params=STORE_KINDS)
def shared_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """One store for all the examples of a test: each plays a session of its own."""
    store = build_store(request.param, store_argument(request.param, request, tmp_path))
    yield store
    store.close()


@settings(  # examples: the profile's (20 in the quick loop, 100 in a full run)
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    first=st.lists(
        st.tuples(st.just("set"), KEYS, VALUES), min_size=1, max_size=3
    ).flatmap(lambda sets: st.sampled_from([sets, [*sets, ("bind_user",)]])),
    scripts=st.lists(SCRIPTS, min_size=3, max_size=3),
    endings=st.lists(ENDINGS, min_size=3, max_size=3),
    order=ORDERS,
)
@example(  # a logout by clear() while a request that loaded before cycles the key
    first=[("set", "a", 0), ("bind_user",)],
    scripts=[[("cycle_key",)], [("clear",)], []],
    endings=["200 OK"] * 3,
    order=[0, 1, 1, 0],
)
def test_overlapping_requests_merge_as_the_docs_say(
    shared_store: Store,
    first: list,
    scripts: list[list],
    endings: list[str],
    order: list[int],
) -> None:
    middleware = SessionMiddleware(
        lambda environ, start: environ["interleave.flight"].app(environ, start),
        shared_store,
        cookie_age=COOKIE_AGE,
        cleanup_interval=0,
    )
    with fake_clock(float(int(time.time()))) as clock:
        scenario = Scenario(middleware, clock)
        scenario.play(first, scripts, endings, order)
        scenario.check(shared_store)
