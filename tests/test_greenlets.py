"""The stores under cooperative concurrency: gunicorn's gevent and eventlet
workers, with the socket, threading and time modules monkey-patched.

gevent and eventlet are test dependencies (the ``test`` extra), not the
library's; patching this test process would change every test after
these. So each test runs a script in a subprocess of this interpreter,
patched by the library it names.
The server that never answers is a real socket, listening and never
accepting: the system completes the connection and nothing replies.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

LIBRARIES = ["gevent", "eventlet"]

PATCH = {
    "gevent": "from gevent import monkey; monkey.patch_all()",
    "eventlet": "import eventlet; eventlet.monkey_patch()",
}

#: Seconds a script may take; a hung request takes them all.
SCRIPT_TIMEOUT = 20

STALLED_SERVER = """
import socket
stalled = socket.socket()
stalled.bind(("127.0.0.1", 0))
stalled.listen(16)
port = stalled.getsockname()[1]
"""


def run_script(library: str, script: str) -> subprocess.CompletedProcess[str]:
    """Run ``script`` (formatted with ``patch``, the library's monkey-patching,
    and ``stalled``, a server that never answers on ``port``) in a subprocess."""
    if importlib.util.find_spec(library) is None:
        pytest.fail(f"needs {library}: pip install -e '.[test]'", pytrace=False)
    source = textwrap.dedent(script).format(
        patch=PATCH[library], stalled=STALLED_SERVER, timeout=SCRIPT_TIMEOUT
    )
    try:
        return subprocess.run(
            [sys.executable, "-W", "ignore", "-c", source],
            capture_output=True,
            check=False,
            text=True,
            timeout=SCRIPT_TIMEOUT + 10,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"the {library} script hung for {SCRIPT_TIMEOUT + 10} s")


STALLED_STORE_SCRIPT = """
{patch}
import time
from wsgisession.errors import StoreUnavailable
from wsgisession.stores import MemcachedStore, RedisStore
{stalled}
if sys.argv[1] == "memcached":
    store = MemcachedStore(["127.0.0.1:%d" % port], timeout=0.5)
else:
    store = RedisStore("redis://127.0.0.1:%d/0" % port, socket_timeout=0.5)
start = time.monotonic()
try:
    store.load("a" * 32)
except StoreUnavailable:
    print("unavailable after %.1f s" % (time.monotonic() - start))
"""


@pytest.mark.parametrize("kind", ["memcached", "redis"])
@pytest.mark.parametrize("library", LIBRARIES)
def test_timeout_ends_a_stalled_request_under(library: str, kind: str) -> None:
    """The reply timeout is the kernel's (SO_RCVTIMEO) on the system's
    sockets, which a green socket, waiting in the event loop, never meets: a
    server that stopped answering hung every request that reached it for
    good (memcached did). Green sockets keep Python's timeout."""
    script = STALLED_STORE_SCRIPT.replace("sys.argv[1]", repr(kind))
    done = run_script(library, script)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("unavailable after "), done.stderr
    assert float(done.stdout.split()[2]) < 5


PRELOADED_SCRIPT = """
import faulthandler, os, sys, threading
from wsgisession.errors import StoreUnavailable
from wsgisession.stores import RedisStore, SQLStore
{stalled}
if sys.argv[1] == "redis-cluster":
    url = "redis+cluster://127.0.0.1:%d" % port
    store = RedisStore(url, socket_timeout=0.5)
else:
    store = SQLStore("mysql+pymysql://u:p@127.0.0.1:%d/db" % port, timeout=0.5)
child = os.fork()  # gunicorn --preload: built in the master, then a worker
if child:
    sys.exit(os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]))
{patch}
faulthandler.dump_traceback_later({timeout}, exit=True)  # a deadlock ends
outcomes = []

def request():
    try:
        store.load("a" * 32)
    except StoreUnavailable:
        outcomes.append("unavailable")

requests = [threading.Thread(target=request) for _ in range(2)]
for thread in requests:
    thread.start()
for thread in requests:
    thread.join()
print(" ".join(outcomes))
sys.stdout.flush()
os._exit(0)
"""


@pytest.mark.parametrize("kind", ["redis-cluster", "sql"])
@pytest.mark.parametrize("library", LIBRARIES)
def test_first_requests_of_a_preloaded_store_do_not_deadlock(
    library: str, kind: str
) -> None:
    """``gunicorn --preload -k gevent`` builds the store in the master and
    patches in the worker. The lock that makes one request connect (the
    cluster) or create the tables (SQL) was made with the store, an OS lock:
    the first request held it while its I/O yielded, and the second, asking
    for it, blocked the worker's only thread, the first's with it, for good
    (a healthy MariaDB through PyMySQL too). Both must get their answer."""
    script = PRELOADED_SCRIPT.replace("sys.argv[1]", repr(kind))
    done = run_script(library, script)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["unavailable", "unavailable"]


MEMORY_LOCK_SCRIPT = """
import faulthandler, os, sys, threading, time
from wsgisession.stores import MemoryStore
store = MemoryStore()
child = os.fork()  # gunicorn --preload: built in the master, then a worker
if child:
    sys.exit(os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]))
{patch}
faulthandler.dump_traceback_later({timeout}, exit=True)  # a deadlock ends
outcomes = []

def request():
    try:
        with store.lock("a" * 32, 5, 60):
            time.sleep(0.05)  # the other request waits meanwhile
    except Exception as exc:
        outcomes.append(type(exc).__name__)
    else:
        outcomes.append("done")

requests = [threading.Thread(target=request) for _ in range(2)]
for thread in requests:
    thread.start()
for thread in requests:
    thread.join()
print(" ".join(outcomes))
sys.stdout.flush()
os._exit(0)
"""


@pytest.mark.parametrize("library", LIBRARIES)
def test_session_lock_of_a_preloaded_memory_store_works_under(library: str) -> None:
    """The memory store's request locks wait on a condition that was made
    with the store: in an eventlet worker of ``gunicorn --preload`` an OS
    one, which eventlet refuses, so that every request of an app with
    ``lock = true`` failed with ``RuntimeError: cannot notify on
    un-acquired lock``, as it released its lock."""
    done = run_script(library, MEMORY_LOCK_SCRIPT)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["done", "done"]


SQLITE_CROWD_SCRIPT = """
{patch}
import faulthandler, os, resource, sys, threading, time
from wsgisession import SessionMiddleware
from wsgisession.stores import SQLiteStore
faulthandler.dump_traceback_later({timeout}, exit=True)  # a deadlock ends
resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

CROWD = 500
arrived, everyone = [0], threading.Event()

def app(environ, start_response):
    session = environ["wsgisession"]
    session["visits"] = session.get("visits", 0) + 1
    arrived[0] += 1
    if arrived[0] == CROWD:
        everyone.set()
    everyone.wait(2)  # the request's own I/O: all of them are under way
    start_response("200 OK", [])
    return [b""]

middleware = SessionMiddleware(app, store=SQLiteStore(sys.argv[1]))

def request(cookie):
    environ = {{"REQUEST_METHOD": "GET", "SERVER_NAME": "x", "SERVER_PORT": "80",
               "wsgi.url_scheme": "http", "HTTP_COOKIE": cookie}}
    headers = []
    b"".join(middleware(environ, lambda status, sent, info=None: headers.extend(sent)))
    return [v.split(";")[0] for k, v in headers if k == "Set-Cookie"]

everyone.set()  # the first request, alone, waits for nobody
cookie = request("")[0]
arrived[0] = 0
everyone.clear()
peak, failures = [0], []

def crowd_member():
    try:
        request(cookie)
    except Exception as exc:
        failures.append(type(exc).__name__)
    peak[0] = max(peak[0], len(os.listdir("/proc/self/fd")))

crowd = [threading.Thread(target=crowd_member) for _ in range(CROWD)]
for thread in crowd:
    thread.start()
for thread in crowd:
    thread.join()
print(len(failures), peak[0])
sys.stdout.flush()
os._exit(0)
"""


@pytest.mark.parametrize("library", LIBRARIES)
def test_sqlite_store_serves_a_crowd_of_greenlets_on_a_few_connections(
    library: str, tmp_path: Path
) -> None:
    """gevent and eventlet patch ``threading.local``: the SQLite store's
    connection per thread was one per greenlet, held for the whole request.
    500 requests under way at once (gunicorn's gevent worker takes up to
    1,000) wanted 500 connections, two descriptors each: under a limit of
    256, 376-377 of the 500 failed ("unable to open database file"). A statement
    now takes a pooled connection for its length only: 11 descriptors."""
    script = SQLITE_CROWD_SCRIPT.replace("sys.argv[1]", repr(str(tmp_path / "s.db")))
    done = run_script(library, script)
    assert done.returncode == 0, done.stderr[-3000:]
    failures, peak = map(int, done.stdout.split())
    assert failures == 0
    assert peak < 64  # descriptors of the whole process, the pool's included
