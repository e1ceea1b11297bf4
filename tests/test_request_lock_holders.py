"""Which requests share a request lock (``lock = true``): only a request
the app makes to itself inside the one holding it, in the same thread and
greenlet (see wsgisession.request_locks).

The holder was named by ``threading.get_ident()``. Under gevent or eventlet
with ``threading`` unpatched (``monkey.patch_all(thread=False)``) every
request of a worker runs in one thread, so a second request of a session
took the first one's lock as its own, and the two ran side by side (two
increments counted once). A thread's id also goes to a new thread once it
ends: a request of the new thread took the lock of a request whose thread
ended with its response never closed.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import greenlet
import pytest
from helpers import saved_session

from wsgisession.config import Settings
from wsgisession.errors import LockTimeout
from wsgisession.session import Session
from wsgisession.stores import MemoryStore
from wsgisession.stores.base import Store

#: A lock held by another request is waited for this long (s), then LockTimeout.
SHORT_WAIT = 0.2

LOCKING = Settings(lock=True, lock_timeout=SHORT_WAIT, lock_ttl=60)


def load_outcome(store: Store, key: str) -> str:
    """What loading ``key`` with locking does while another request holds
    its lock: "waited" (LockTimeout), or "shared" (it took that lock)."""
    session = Session(store, LOCKING, key)
    try:
        session.load()
    except LockTimeout:
        return "waited"
    session.release_lock()
    return "shared"


def test_a_request_of_another_greenlet_of_the_thread_waits() -> None:
    """Two requests as greenlets of one thread (gevent with ``threading``
    unpatched): the second does not take the first one's lock."""
    store = MemoryStore()
    key = saved_session(store, visits=0)
    outcomes: list[str] = []
    first = Session(store, LOCKING, key)

    def holding_request() -> None:
        first.load()  # the lock taken
        other_request.switch()  # the worker runs another greenlet meanwhile
        first.release_lock()

    holder = greenlet.greenlet(holding_request)
    other_request = greenlet.greenlet(lambda: outcomes.append(load_outcome(store, key)))
    holder.switch()  # back here once the other request ended
    holder.switch()
    assert holder.dead
    assert outcomes == ["waited"]


def test_a_thread_given_the_id_of_one_that_ended_holding_the_lock_waits() -> None:
    """A request whose thread ended with the lock held (its response never
    closed, still referenced): a new thread with the same id waits."""
    store = MemoryStore()
    key = saved_session(store, visits=0)
    abandoned: list[Session] = []
    idents: list[int] = []

    def abandoned_request() -> None:
        session = Session(store, LOCKING, key)
        session.load()
        abandoned.append(session)
        idents.append(threading.get_ident())

    def next_request() -> None:
        if threading.get_ident() == idents[0]:
            outcomes.append(load_outcome(store, key))

    outcomes: list[str] = []
    run_in_thread(abandoned_request)
    for _ in range(500):  # Linux hands an ended thread's id out again soon
        run_in_thread(next_request)
        if outcomes:
            break
    assert outcomes == ["waited"]
    abandoned[0].release_lock()


def run_in_thread(work: object) -> None:
    """Run ``work`` in a new thread, to its end."""
    thread = threading.Thread(target=work)  # type: ignore[arg-type]
    thread.start()
    thread.join(10)


GEVENT_REQUESTS = """
from gevent import monkey

monkey.patch_all(thread=False)

import sys
import time

import gevent

sys.path.insert(0, sys.argv[1])
from helpers import saved_session

from wsgisession.config import Settings
from wsgisession.session import Session
from wsgisession.stores import SQLiteStore

store = SQLiteStore(sys.argv[2])
key = saved_session(store, visits=0)
settings = Settings(lock=True, lock_timeout=5.0, lock_ttl=60)


def request() -> None:
    session = Session(store, settings, key)
    visits = session["visits"]
    time.sleep(0.2)  # the app waits for I/O: the worker runs other requests
    session["visits"] = visits + 1
    session.save()
    session.release_lock()


gevent.joinall([gevent.spawn(request), gevent.spawn(request)])
print(Session(store, settings, key)["visits"])
"""


@pytest.mark.slow  # a process of its own, gevent's patching in it
def test_two_requests_of_a_gevent_worker_with_threading_unpatched_both_count(
    tmp_path: Path,
) -> None:
    """Two requests of one session, as greenlets of a gevent worker that
    patched all but ``threading``: the second waits for the first's lock,
    so both increments count (one did before)."""
    script = tmp_path / "requests.py"
    script.write_text(textwrap.dedent(GEVENT_REQUESTS))
    tests = str(Path(__file__).parent)
    done = subprocess.run(
        [sys.executable, str(script), tests, str(tmp_path / "sessions.sqlite3")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["2"]


GREENLET_LOADED_DURING_A_REQUEST = """
import sys

sys.path.insert(0, sys.argv[1])
from helpers import saved_session

from wsgisession.config import Settings
from wsgisession.errors import LockTimeout
from wsgisession.session import Session
from wsgisession.stores import MemoryStore

assert "greenlet" not in sys.modules, "the test needs greenlet not loaded yet"
store = MemoryStore()
key = saved_session(store, visits=0)
settings = Settings(lock=True, lock_timeout=0.2, lock_ttl=60)
outer = Session(store, settings, key)
outer.load()  # the outer request's lock, taken
import greenlet  # the app's first import of it (SQLAlchemy, gevent's tools)

inner = Session(store, settings, key)  # the app's request to itself
try:
    inner.load()
except LockTimeout:
    print("waited")
else:
    print("shared")
    inner.release_lock()
outer.release_lock()
"""


@pytest.mark.slow  # a process of its own, without greenlet loaded
def test_a_sub_request_after_greenlet_is_first_loaded_shares_the_lock(
    tmp_path: Path,
) -> None:
    """A thread's request that loads greenlet (the app imports SQLAlchemy
    or a tool of gevent's late) then makes a request to itself: that
    request is still the same thread's, and shares the outer lock (it
    waited out lock_timeout before: the holder was named by its thread,
    the waiter by its greenlet)."""
    script = tmp_path / "late_greenlet.py"
    script.write_text(textwrap.dedent(GREENLET_LOADED_DURING_A_REQUEST))
    tests = str(Path(__file__).parent)
    done = subprocess.run(
        [sys.executable, str(script), tests],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["shared"]
