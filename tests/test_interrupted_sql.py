"""SQLStore's connections when an exception arrives in the middle of its
work: a signal handler's ``KeyboardInterrupt`` or ``SystemExit``, a
``gevent.Timeout`` around the request, an exception sent to an overrunning
request's thread (see interrupting.py for how each point is reached).

An engine the store built has at most ``MAX_OPEN`` connections open; a
request waits for one of them (up to the store's timeout) past that. A
connection that an interrupt took from the store without closing it, or
closed without giving its place back, kept that place for good: once all
were lost, every request waited the timeout and failed.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import later
from interrupting import (
    Interrupt,
    in_module,
    interrupted_at,
    interrupted_on,
    returned_from,
)
from sql_support import sql_url

from wsgisession.errors import StoreUnavailable
from wsgisession.keys import generate_key
from wsgisession.stores import SQLStore, _sqlrun, _sqlslots
from wsgisession.stores._sqlrun import KEEP_IDLE, MAX_OPEN, Cursor, Runner

#: The store on a database server and on a file: both run on Runner.
KINDS = ["sql-postgresql", "sql-sqlite"]


@pytest.fixture(params=KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SQLStore]:
    with SQLStore(sql_url(request.param, request, tmp_path), timeout=0.5) as store:
        store.create_tables()
        yield store


Request = Callable[[SQLStore, str], None]


def bad_statement(cursor: Cursor) -> None:
    """A statement the database refuses: the connection is fine."""
    cursor.raw.execute("SELECT * FROM wsgisession_no_such_table")


def load(store: SQLStore, key: str) -> None:
    store.load(key)


def load_twice(store: SQLStore, key: str) -> None:
    """The second load takes the connection the first left idle."""
    store.load(key)
    store.load(key)


def fail(store: SQLStore, key: str) -> None:
    with contextlib.suppress(Exception):
        store._runner.run(bad_statement)


def load_past_idle(store: SQLStore, key: str) -> None:
    """A load while KEEP_IDLE other requests hold a connection: its own
    is one too many to keep, and is closed as it comes back."""
    with contextlib.ExitStack() as others:
        for _ in range(KEEP_IDLE):
            others.enter_context(store._runner.cursor())
        store.load(key)


#: point -> (what the interrupted request does, where it is interrupted)
POINTS: dict[
    str, tuple[Request, Callable[[], contextlib.AbstractContextManager[Any]]]
] = {
    # as the connection leaves the idle ones (the C call has returned)
    "checkout": (
        load_twice,
        lambda: interrupted_on(returned_from(Runner._checkout, "pop")),
    ),
    # as the statement's connection goes back
    "put back": (load, lambda: interrupted_at(Runner._put_back)),
    # after a statement the database refused (connection kept)
    "failed": (fail, lambda: interrupted_at(Runner._failed)),
    # as a connection one too many to keep is closed
    "close": (load_past_idle, lambda: interrupted_at(_sqlslots._close)),
}


@pytest.mark.parametrize("point", sorted(POINTS))
def test_interrupts_never_cost_the_sql_store_a_connection(
    store: SQLStore, point: str
) -> None:
    """Each interrupt at ``point`` kept one of the MAX_OPEN connections'
    places for good; after MAX_OPEN of them every request waited the
    store's timeout and failed with StoreUnavailable ("all 15 connections
    busy")."""
    key = generate_key()
    assert store.create(key, b"data", later()) == key
    request, interrupt = POINTS[point]
    for _ in range(MAX_OPEN):
        with pytest.raises(Interrupt), interrupt():
            request(store, key)
    record = store.load(key)
    assert record is not None
    assert record.payload == b"data"


def every_path(store: SQLStore, key: str) -> None:
    """A load while KEEP_IDLE cursors are held (its connection is new, and
    one too many to keep as it comes back), a statement the database
    refuses, and the held ones going back."""
    load_past_idle(store, key)
    fail(store, key)
    store.load(key)


def slots_all_work(store: SQLStore, count: int = MAX_OPEN) -> None:
    """``count`` connections can be had at once, and each one works: none
    was closed while it waited among the idle ones (the first taken)."""
    with contextlib.ExitStack() as held:
        cursors = [held.enter_context(store._runner.cursor()) for _ in range(count)]
        for cursor in cursors:
            cursor.raw.execute("SELECT 1")
            assert list(cursor.raw.fetchall()) == [(1,)]


# An interrupt in a lost connection's __del__ is reported and dropped, as
# Python does for any exception there.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_an_interrupt_anywhere_in_the_runner_releases_each_slot_once(
    store: SQLStore,
) -> None:
    """An interrupt at each point of the Runner's code in turn (every call,
    return and C call of its module): afterwards all MAX_OPEN connections
    can be had and work, and no more than MAX_OPEN (a slot released twice
    would let one more open). ``gc.collect()`` stands for the exception
    going: what its traceback's frames held goes with them."""
    key = generate_key()
    assert store.create(key, b"data", later()) == key
    hits = 0
    while True:
        hits += 1
        with (
            contextlib.suppress(Interrupt),
            interrupted_on(
                in_module(_sqlrun.__file__, _sqlslots.__file__), hits
            ) as shot,
        ):
            every_path(store, key)
        if not shot.fired:
            break
        gc.collect()
        slots_all_work(store, KEEP_IDLE)
    assert hits > 50  # the sweep went through the module
    slots_all_work(store)  # none lost, none closed while idle
    with contextlib.ExitStack() as held:
        for _ in range(MAX_OPEN):
            held.enter_context(store._runner.cursor())
        with pytest.raises(StoreUnavailable, match="busy"):
            store.load(key)
