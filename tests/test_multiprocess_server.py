"""A real multi-process server: gunicorn sync workers sharing one session store.

One gunicorn (3 sync workers, loopback, a free port) serves a small app
wrapped by ``SessionMiddleware`` on the file, SQLite, memcached and Redis
stores, each under its own path. Concurrent clients (threads with
``http.client``) all send the cookie of ONE session:

* each client increments its own key of that session: every count must be
  exact, whichever worker served which request (changes to different keys
  are merged, never overwritten);
* with ``lock = True`` all clients increment the SAME key: requests of one
  session run one at a time, so every count must be exact too.

Run with ``-s`` to see the counts.
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from listening_ports import listens
from servers import ServerProcess, free_port

from wsgisession import SessionMiddleware
from wsgisession.stores import FileStore, MemcachedStore, RedisStore, SQLiteStore
from wsgisession.stores.base import Store

#: Starts real multi-process servers (gunicorn, waitress).
pytestmark = pytest.mark.slow

WORKERS = 3
CLIENTS = 4
INCREMENTS = 20
STORES = ["file", "sqlite", "memcached", "redis"]
GUNICORN = Path(sys.executable).with_name("gunicorn")
REPO = Path(__file__).resolve().parents[1]

APP_MODULE = textwrap.dedent(
    """
    import os
    from wsgisession import SessionMiddleware
    from wsgisession.stores import FileStore, MemcachedStore, RedisStore, SQLiteStore

    def increment(environ, start_response):
        session = environ["wsgisession"]
        name = environ["QUERY_STRING"] or "counter"
        session[name] = session.get(name, 0) + 1
        body = str(session[name]).encode()
        headers = [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]
        start_response("200 OK", headers)
        return [body]

    def make_store(kind):
        if kind == "file":
            return FileStore(os.environ["WSS_FILE"])
        if kind == "sqlite":
            return SQLiteStore(os.environ["WSS_SQLITE"])
        if kind == "memcached":
            return MemcachedStore([os.environ["WSS_MEMCACHED"]])
        return RedisStore(os.environ["WSS_REDIS"])

    ROUTES = {}
    for kind in ("file", "sqlite", "memcached", "redis"):
        store = make_store(kind)
        ROUTES["/" + kind] = SessionMiddleware(increment, store=store)
        ROUTES["/" + kind + "-lock"] = SessionMiddleware(
            increment, store=store, lock=True, lock_timeout=10.0
        )

    def application(environ, start_response):
        return ROUTES[environ["PATH_INFO"]](environ, start_response)
    """
)


@dataclass
class Server:
    port: int
    env: dict[str, str]
    log: Path


def _wait_listening(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        assert process.poll() is None, f"gunicorn exited: {log.read_text()[-3000:]}"
        if listens(process.pid, "127.0.0.1", port):  # its own: not a stranger's
            return
        time.sleep(0.05)
    raise AssertionError(f"gunicorn did not listen in time: {log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop gunicorn by its PID: SIGTERM (its workers go with it), then SIGKILL."""
    if process.poll() is not None:
        return
    os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
    memcached_server: ServerProcess,
    redis_server: ServerProcess,
) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("gunicorn")
    (root / "sessionapp.py").write_text(APP_MODULE)
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "WSS_FILE": str(root / "sessions"),
        "WSS_SQLITE": str(root / "sessions.sqlite3"),
        "WSS_MEMCACHED": memcached_server.address,
        "WSS_REDIS": redis_server.url.rsplit("/", 1)[0] + "/3",
    }
    port = free_port()
    log = root / "gunicorn.log"
    argv = [str(GUNICORN), "--workers", str(WORKERS), "--worker-class", "sync"]
    argv += ["--bind", f"127.0.0.1:{port}", "--chdir", str(root)]
    argv += ["--graceful-timeout", "2", "--timeout", "30", "sessionapp:application"]
    with open(log, "wb") as out:
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=out)
    try:
        _wait_listening(port, process, log)
        yield Server(port, env, log)
    finally:
        _stop(process)


def request(
    port: int, path: str, query: str, cookie: str | None
) -> tuple[int, str, str | None]:
    """One GET; returns (status, body, the ``sessionid`` cookie set or None)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(
            "GET", f"{path}?{query}", headers={"Cookie": cookie} if cookie else {}
        )
        response = conn.getresponse()
        body = response.read().decode()
        set_cookie = None
        for header in response.headers.get_all("Set-Cookie") or []:
            if header.startswith("sessionid="):
                set_cookie = header.split(";", 1)[0]
        return response.status, body, set_cookie
    finally:
        conn.close()


def local_store(kind: str, server: Server) -> Store:
    """The same store as the server's, opened in this process to check the counts."""
    env = server.env
    if kind == "file":
        return FileStore(env["WSS_FILE"])
    if kind == "sqlite":
        return SQLiteStore(env["WSS_SQLITE"])
    if kind == "memcached":
        return MemcachedStore([env["WSS_MEMCACHED"]])
    return RedisStore(env["WSS_REDIS"])


def hammer(server: Server, path: str, keys: list[str]) -> tuple[str, list[str]]:
    """Start one session, then CLIENTS threads increment ``keys[i]`` concurrently."""
    status, body, cookie = request(server.port, path, "start", None)
    assert status == 200 and cookie is not None, body
    errors: list[str] = []
    start = threading.Barrier(CLIENTS)

    def client(key: str) -> None:
        start.wait()
        for _ in range(INCREMENTS):
            try:
                status, body, _ = request(server.port, path, key, cookie)
            except OSError as exc:
                errors.append(f"{key}: {exc!r}")
                continue
            if status != 200:
                errors.append(f"{key}: HTTP {status}: {body[:200]}")

    threads = [threading.Thread(target=client, args=(key,)) for key in keys]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return cookie.split("=", 1)[1], errors


def counts_of(kind: str, server: Server, session_key: str, names: set[str]):
    session = SessionMiddleware(lambda e, s: [], store=local_store(kind, server))
    loaded = session.open_session(session_key)
    return {name: loaded.get(name) for name in sorted(names)}


@pytest.mark.parametrize("kind", STORES)
def test_each_client_its_own_key_of_one_session(kind: str, server: Server) -> None:
    keys = [f"client{i}" for i in range(CLIENTS)]
    session_key, errors = hammer(server, f"/{kind}", keys)
    counts = counts_of(kind, server, session_key, set(keys))
    lost = sum(INCREMENTS - (n or 0) for n in counts.values())
    print(
        f"\n[gunicorn x{WORKERS}] {kind}, own keys: attempted {CLIENTS * INCREMENTS}, "
        f"lost {lost}, errors {len(errors)}, counts {counts}"
    )
    assert errors == []
    assert counts == {key: INCREMENTS for key in keys}


@pytest.mark.parametrize("kind", STORES)
def test_same_key_with_lock(kind: str, server: Server) -> None:
    session_key, errors = hammer(server, f"/{kind}-lock", ["shared"] * CLIENTS)
    counts = counts_of(kind, server, session_key, {"shared"})
    expected = CLIENTS * INCREMENTS
    lost = expected - (counts["shared"] or 0)
    print(
        f"\n[gunicorn x{WORKERS}] {kind}, same key, lock=True: attempted {expected}, "
        f"lost {lost}, errors {len(errors)}"
    )
    assert errors == []
    assert counts == {"shared": expected}
