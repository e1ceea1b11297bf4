"""Requests waiting for a held session lock in a gevent or eventlet worker
take turns asking the store, as threads do (``tests/test_lock_waits.py``).

Each script runs in a subprocess patched by the library it names, as in
``tests/test_greenlets.py``. Under the former polling every waiting
greenlet asked the store every 2-20 ms: 1,000 of them waiting 5 s for a
lock on Redis cost 25,700-38,100 commands and 4.7-5.1 s of the worker's
CPU (its only core); taking turns, 306-315 commands and 0.3 s.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_greenlets import LIBRARIES, run_script

from wsgisession.stores._lockwaits import LONGEST_PAUSE

pytestmark = pytest.mark.slow

WAITERS = 200
HOLD = 1.0  # seconds the lock is held while the greenlets wait
#: Each waiter tries once as it arrives, then one at a time asks, at least
#: LONGEST_PAUSE / 2 apart, plus the first pauses of a turn. Before:
#: about 10,000 (each waiter every 2-20 ms).
MOST_TAKINGS = WAITERS + 2 * HOLD / LONGEST_PAUSE + 16

WAITING_GREENLETS_SCRIPT = """
{patch}
import faulthandler, sys, threading, time
from wsgisession import SessionMiddleware
from wsgisession.stores import SQLiteStore
faulthandler.dump_traceback_later({timeout}, exit=True)  # a lost wake-up ends

WAITERS, HOLD = sys.argv[2], sys.argv[3]
store = SQLiteStore(sys.argv[1])
takings = [0]
take_lock = store._take_lock

def counted(name, token, ttl):
    takings[0] += 1
    return take_lock(name, token, ttl)

store._take_lock = counted

def app(environ, start_response):
    session = environ["wsgisession"]
    session["counter"] = session.get("counter", 0) + 1
    start_response("200 OK", [])
    return [b""]

middleware = SessionMiddleware(app, store=store, lock=True, lock_timeout=10)

def request(cookie):
    environ = {{"REQUEST_METHOD": "GET", "SERVER_NAME": "x", "SERVER_PORT": "80",
               "wsgi.url_scheme": "http", "HTTP_COOKIE": cookie}}
    headers = []
    b"".join(middleware(environ, lambda status, sent, info=None: headers.extend(sent)))
    return [v.split(";")[0] for k, v in headers if k == "Set-Cookie"]

cookie = request("")[0]
key = cookie.split("=", 1)[1]
failures = []

def waiter():
    try:
        request(cookie)
    except Exception as exc:
        failures.append(type(exc).__name__)

waiters = [threading.Thread(target=waiter) for _ in range(WAITERS)]
with store.lock(key, 1.0, 60.0):
    before = takings[0]
    for thread in waiters:
        thread.start()
    time.sleep(HOLD)
    during = takings[0] - before
for thread in waiters:
    thread.join()
print(during, len(failures), middleware.open_session(key)["counter"])
"""


@pytest.mark.parametrize("library", LIBRARIES)
def test_waiting_greenlets_take_turns_asking_the_store(
    library: str, tmp_path: Path
) -> None:
    """WAITERS greenlets of one session wait HOLD s for its lock on SQLite:
    the lock takings they cost meanwhile stay within one asker's, and each
    gets the lock once it is freed (the counter counts every request)."""
    script = (
        WAITING_GREENLETS_SCRIPT.replace("sys.argv[1]", repr(str(tmp_path / "s.db")))
        .replace("sys.argv[2]", repr(WAITERS))
        .replace("sys.argv[3]", repr(HOLD))
    )
    done = run_script(library, script)
    assert done.returncode == 0, done.stderr[-3000:]
    takings, failures, counter = map(int, done.stdout.split())
    print(f"{library}: {WAITERS} greenlets waiting {HOLD} s: {takings} takings")
    assert failures == 0
    assert counter == 1 + WAITERS
    assert takings <= MOST_TAKINGS
