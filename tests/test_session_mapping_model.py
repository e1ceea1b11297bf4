"""The session as a mapping over many requests, against a plain dict
(tests/mapping_model.py).

A hypothesis state machine sends requests through SessionMiddleware, each
running mapping operations on the session and on a dict next to it: every
accessor, ``update`` in its three forms, ``popitem``, ``clear``, ``flush``,
``cycle_key``, ``save``, in-place changes to values received through each
accessor (also values aliased under two keys, and values changed after a
save, in a streamed body), and a second tab's whole request in the middle
of another. Values include what JSON bends (int and bool keys of nested
dicts, tuples, -0.0, NaN, big ints, NUL). Every read must answer as the
dict does, and after every request a fresh request must read what the
model stored.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from helpers import examples
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)
from mapping_model import AppFailure, ModelRequest, Request, canon, normalize

from wsgisession import SessionMiddleware
from wsgisession.errors import UnserializableValue
from wsgisession.stores import FileStore, MemoryStore, SQLiteStore

pytestmark = pytest.mark.slow  # a hypothesis state machine over three stores

COOKIE = "sessionid"
KEYS = st.sampled_from(["a", "b", "c", " d"])
LEAVES = st.sampled_from(
    [0, 1, -1, 2**63, -(2**64), 10**30, True, False, None, 0.5, 0.0, -0.0]
    + [math.nan, math.inf, -math.inf, 1e308, "", "x", "\x00", "\u00e9", " dict", "1"]
)
INNER_KEYS = st.sampled_from(["k", "1", "true", " t", 1, True, 0, None, 2.5])
VALUES = st.recursive(
    LEAVES,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.lists(inner, max_size=2).map(tuple)
        | st.dictionaries(INNER_KEYS, inner, max_size=3)
    ),
    max_leaves=6,
)
#: Values to change in place: containers, mostly.
CONTAINERS = st.lists(VALUES, max_size=2) | st.dictionaries(
    INNER_KEYS, VALUES, max_size=2
)
PATHS = st.sampled_from(
    ["item", "get", "values", "items", "iter", "setdefault", "pop", "popitem"]
)
MUTATE = st.tuples(st.just("mutate"), PATHS, KEYS, LEAVES, INNER_KEYS)
OPS = st.one_of(
    st.tuples(st.sampled_from(["get", "item", "del", "pop", "pop_default"]), KEYS),
    st.tuples(st.sampled_from(["contains", "setdefault_new"]), KEYS),
    st.tuples(st.just("set"), KEYS, VALUES | CONTAINERS),
    st.tuples(st.just("setdefault"), KEYS, VALUES),
    st.tuples(
        st.sampled_from(["update_map", "update_pairs", "update_kwargs"]),
        st.dictionaries(st.sampled_from(["a", "b", "c"]), VALUES, max_size=2),
    ),
    MUTATE,
    MUTATE,
    st.tuples(st.just("alias"), KEYS, KEYS),
    st.tuples(st.just("hold"), KEYS),
    st.tuples(st.just("mutate_held"), LEAVES, INNER_KEYS),
    st.sampled_from(
        [("len",), ("keys",), ("values",), ("items",), ("popitem",), ("save",)]
        + [("clear",), ("flush",), ("cycle_key",), ("eq",)]
    ),
)
SCRIPTS = st.lists(OPS, max_size=6)
ENDINGS = st.sampled_from(["200 OK", "500 Error", "raise", "stream"])
#: What a second tab may do in the middle of another request: change keys.
TAB2_OPS = st.one_of(
    st.tuples(st.just("set"), KEYS, VALUES | CONTAINERS),
    st.tuples(st.sampled_from(["del", "get"]), KEYS),
    MUTATE,
    st.just(("clear",)),
)


class MappingMachine(RuleBasedStateMachine):
    """Requests through the middleware, checked against a dict per record."""

    make_store: Any = None  # set per store kind: () -> store

    def __init__(self) -> None:
        super().__init__()
        self.store = self.make_store()
        self.middleware = SessionMiddleware(self.app, self.store, cleanup_interval=0)
        self.records: dict[str, tuple[int, dict[str, Any]]] = {}
        self.cookie: str | None = None

    def teardown(self) -> None:
        self.middleware.close()

    def app(self, environ: dict[str, Any], start_response: Any) -> Any:
        request: Request = environ["mapping.request"]
        ops, body_ops, ending = environ["mapping.script"]
        request.session = environ["wsgisession"]
        request.run(ops)
        if ending == "raise":
            raise AppFailure()
        status = "200 OK" if ending == "stream" else ending
        start_response(status, [("Content-Type", "text/plain")])
        if ending != "stream":
            return [b"ok"]

        def body() -> Any:
            yield b"o"
            request.run(body_ops)  # after the headers went out
            yield b"k"

        return body()

    def request(
        self, ops: list[tuple], ending: str, body_ops: list[tuple] = ()
    ) -> None:
        cookie = self.cookie
        model = ModelRequest(self.records, cookie)
        environ = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": "/",
            "SERVER_NAME": "localhost",
            "SERVER_PORT": "80",
            "wsgi.url_scheme": "http",
            "mapping.request": Request(self, None, model),
            "mapping.script": (ops, list(body_ops), ending),
        }
        if cookie is not None:
            environ["HTTP_COOKIE"] = f"{COOKIE}={cookie}"
        seen: list[Any] = []

        def start_response(status: str, headers: list, exc_info: Any = None) -> Any:
            seen[:] = [status, list(headers)]
            return lambda data: None

        refused = False
        try:
            body = self.middleware(environ, start_response)
            try:
                b"".join(body)
            finally:
                getattr(body, "close", lambda: None)()
        except AppFailure:
            return self.take_cookies(seen)
        except UnserializableValue:
            refused = True
        saved = ending in ("200 OK", "stream")
        if saved and model.has_changes():
            assert refused == model.refused(), (refused, model.data)
            if not refused and (model.key is not None or model.data):
                key = environ["wsgisession"]._record.key
                model.save(key)
        else:
            assert not refused, "a 5xx response saves nothing: nothing to refuse"
        self.take_cookies(seen)

    def take_cookies(self, seen: list[Any]) -> None:
        for name, value in seen[1] if seen else []:
            if name == "Set-Cookie":
                text = value.split(";")[0].split("=", 1)[1]
                self.cookie = text or None

    # -- rules -----------------------------------------------------------------

    @rule(ops=SCRIPTS, ending=ENDINGS, body_ops=SCRIPTS)
    def one_request(self, ops: list[tuple], ending: str, body_ops: list[tuple]) -> None:
        if ending == "stream":  # the client holds the key throughout
            if self.cookie is None or self.cookie not in self.records:
                ending = "200 OK"
            moves = {"flush", "cycle_key"}
            ops = [op for op in ops if op[0] not in moves]
            body_ops = [op for op in body_ops if op[0] not in moves]
        self.request(ops, ending, body_ops)

    @rule(
        before=SCRIPTS,
        other=st.lists(TAB2_OPS, min_size=1, max_size=3),
        after=SCRIPTS,
    )
    def two_tabs(self, before: list, other: list, after: list) -> None:
        """The second tab's whole request runs in the middle of the first's."""
        if self.cookie is None or self.cookie not in self.records:
            return
        moves = {"flush", "cycle_key"}
        before = [op for op in before if op[0] not in moves]
        # The first tab loads its session before the second tab runs.
        self.request([("len",), *before, ("tab2", other), *after], "200 OK")

    # -- invariants ----------------------------------------------------------

    @invariant()
    def fresh_requests_read_the_model(self) -> None:
        for key, (_, data) in self.records.items():
            got = dict(self.middleware.open_session(key).items())
            assert canon(got) == canon(normalize(data)), (key, got, data)
        fresh = self.middleware.open_session(self.cookie)
        expected = self.records.get(self.cookie, (0, {}))[1] if self.cookie else {}
        assert canon(dict(fresh.items())) == canon(expected)


def _local_store(kind: str, root: Path) -> Any:
    def make() -> Any:
        where = Path(tempfile.mkdtemp(dir=root))
        if kind == "memory":
            return MemoryStore()
        if kind == "file":
            return FileStore(where / "files")
        return SQLiteStore(where / "sessions.sqlite3")

    return make


MACHINE_SETTINGS = settings(
    max_examples=int(os.environ.get("MAPPING_EXAMPLES", examples(25))),
    stateful_step_count=int(os.environ.get("MAPPING_STEPS", "8")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@pytest.mark.parametrize(
    "kind",
    [
        "memory",
        "file",
        "sqlite",
    ],
)
def test_the_session_is_a_dict_across_requests(kind: str, tmp_path: Path) -> None:
    machine = type(
        "Machine",
        (MappingMachine,),
        {"make_store": staticmethod(_local_store(kind, tmp_path))},
    )
    run_state_machine_as_test(machine, settings=MACHINE_SETTINGS)
