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
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import servers

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


MEMCACHED_CROWD_SCRIPT = """
{patch}
import faulthandler, os, sys, threading
from collections import Counter
from wsgisession import SessionMiddleware
from wsgisession.stores import MemcachedStore
faulthandler.dump_traceback_later({timeout}, exit=True)  # a deadlock ends

CROWD, ONE_SESSION = 1000, sys.argv[2] == "one-session"
arrived, everyone = [0], threading.Event()

def app(environ, start_response):
    session = environ["wsgisession"]
    session["r" + environ["PATH_INFO"][1:]] = len(session)  # loaded first
    arrived[0] += 1
    if arrived[0] == CROWD:
        everyone.set()
    everyone.wait(2)  # the request's own I/O: all of them are under way
    start_response("200 OK", [])
    return [b""]

store = MemcachedStore([sys.argv[1]])

def opened():
    import pymemcache
    stats = pymemcache.Client(sys.argv[1]).stats()
    return {{k.decode(): v for k, v in stats.items() if b"conn" in k or b"listen" in k}}

middleware = SessionMiddleware(app, store=store)

def request(cookie, number):
    environ = {{"REQUEST_METHOD": "GET", "SERVER_NAME": "x", "SERVER_PORT": "80",
               "wsgi.url_scheme": "http", "HTTP_COOKIE": cookie,
               "PATH_INFO": "/%d" % number}}
    headers = []
    b"".join(middleware(environ, lambda status, sent, info=None: headers.extend(sent)))
    return [v.split(";")[0] for k, v in headers if k == "Set-Cookie"]

everyone.set()  # the first requests, one at a time, wait for nobody
if ONE_SESSION:
    cookies = request("", -1) * CROWD
else:
    cookies = [request("", -1)[0] for _ in range(CROWD)]
arrived[0] = 0
everyone.clear()
peak, failures, done = [0], Counter(), []
print("ready", flush=True)
sys.stdin.readline()  # memcached is stalled: every command waits for it

def crowd_member(number):
    try:
        request(cookies[number], number)
    except Exception as exc:
        failures[type(exc).__name__ + ": " + str(exc)[:40]] += 1
    else:
        done.append(number)
    peak[0] = max(peak[0], len(os.listdir("/proc/self/fd")))

crowd = [threading.Thread(target=crowd_member, args=(n,)) for n in range(CROWD)]
for thread in crowd:
    thread.start()
for thread in crowd:
    thread.join()
saved = set()
for number in range(CROWD) if not ONE_SESSION else [0]:
    session = middleware.open_session(cookies[number].split("=", 1)[1])
    saved.update(int(key[1:]) for key in session if key != "r-1")
lost = set(done) - saved
print(sum(failures.values()), peak[0], len(lost))
print(dict(failures))
print(opened())
sys.stdout.flush()
os._exit(0)
"""


def run_crowd(
    server: servers.ServerProcess, mode: str, library: str, *, stall: bool = True
) -> list[str]:
    """Run the crowd script under ``library``'s monkey-patching, with ``server`` stalled for a
    second as the crowd starts if ``stall``, so that every request's command
    waits for it at once, however fast the server answers; what it prints:
    failures, peak descriptors, merges lost, and the failures' kinds with
    the server's connection counts."""
    script = MEMCACHED_CROWD_SCRIPT.replace("sys.argv[1]", repr(server.address))
    script = script.replace("sys.argv[2]", repr(mode))
    source = textwrap.dedent(script).format(
        patch=PATCH[library], timeout=SCRIPT_TIMEOUT
    )
    with subprocess.Popen(
        [sys.executable, "-W", "ignore", "-c", source],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as child:
        assert child.stdout is not None and child.stdin is not None
        ready = child.stdout.readline()
        if ready != "ready\n":
            child.kill()
            pytest.fail(f"the script failed before its crowd: {child.stderr.read()}")
        if stall:
            server.pause()
        child.stdin.write("go\n")
        child.stdin.flush()
        if stall:
            time.sleep(1)
            server.resume()
        try:
            output, errors = child.communicate(timeout=SCRIPT_TIMEOUT + 10)
        except subprocess.TimeoutExpired:
            child.kill()
            pytest.fail(f"the crowd script hung for {SCRIPT_TIMEOUT + 10} s")
    assert child.returncode == 0, errors[-3000:]
    figures, kinds, stats = output.splitlines()
    return [*figures.split(), f"{kinds} (server: {stats})"]


@pytest.fixture
def memcached_of_256(tmp_path: Path) -> Iterator[servers.ServerProcess]:
    """A memcached that accepts at most 256 connections (``-c 256``)."""
    server = servers.memcached(tmp_path)
    server.argv += ["-c", "256"]
    server.start()
    yield server
    server.stop(crash=True)


@pytest.mark.parametrize("library", LIBRARIES)
def test_memcached_serves_a_crowd_of_greenlets_under_its_connection_limit(
    memcached_of_256: servers.ServerProcess, library: str
) -> None:
    """A gevent worker's 1,000 requests under way at once, each of a session
    of its own: a green socket yields as it waits for memcached, so each
    request's command opened a connection of its own, and memcached, started
    with ``-c 256``, refused those past it: 643-768 requests failed with the
    server stalled a second as they started. The store opens 100 per server
    at most; the others wait for one."""
    failures, peak, lost, kinds = run_crowd(memcached_of_256, "own-sessions", library)
    assert int(failures) == 0, kinds
    assert int(lost) == 0
    assert int(peak) < 150  # descriptors of the whole process, the pool's included


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("stall", [False, True], ids=["answering", "stalled"])
def test_memcached_merges_a_crowd_of_greenlets_writing_one_session(
    memcached_of_256: servers.ServerProcess, stall: bool, library: str
) -> None:
    """1,000 requests under way at once, each reading one session and
    adding a key to it (no lock): every request that succeeded has its key
    in the session (the merge loses nothing), and none fails. Before the
    connection limit, memcached refused the connections past its ``-c``
    (37-768 requests failed); under it, a ``gets`` and its ``cas`` each
    waiting their turn for a connection could lose the compare-and-swap
    race again and again (258-282 failed, a review measured), and so did a
    hundred writers that conflicted, fighting at once (248 of 1,000 failed
    in one of three runs with the server stalled): a save that conflicted
    now reads and writes on one connection, after this process's earlier
    writers of the session."""
    failures, _peak, lost, kinds = run_crowd(
        memcached_of_256, "one-session", library, stall=stall
    )
    assert int(lost) == 0
    assert int(failures) == 0, kinds
