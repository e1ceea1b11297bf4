"""Worker processes of one host sharing the file, SQLite and SQL-on-SQLite stores.

As under gunicorn or uWSGI prefork workers: real processes (forked, or
spawned afresh) serve requests through ``SessionMiddleware`` on one store
at once, while their own sweeps run every second and ``wsgisession
clear-expired`` runs in yet another process. No change may be lost (own
keys merged with ``lock = false``, one key counted under ``lock = true``),
no request may fail, and a session flushed or revoked stays gone. A worker
killed while it holds a session's lock frees it after ``lock_ttl``, and a
worker forked while a thread of its parent was sweeping sweeps on its own.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import pytest
from helpers import build_store, call, get, new_session, store_argument, user_app

from wsgisession import SessionMiddleware
from wsgisession.errors import SessionInterrupted
from wsgisession.keys import generate_key
from wsgisession.stores import FileStore
from wsgisession.stores.base import storage_key

pytestmark = pytest.mark.slow  # several processes, sweeps, forks, lock_ttl waits

#: The stores several processes of one host share, without a server.
LOCAL = ["file", "sqlite", "sql-sqlite"]
WORKERS = 3
ROUNDS = 25
#: The ``wsgisession clear-expired`` options of each kind, given its argument.
CLI_OPTIONS = {
    "file": ["--store", "file", "--file-path"],
    "sqlite": ["--store", "sqlite", "--sqlite-path"],
    "sql-sqlite": ["--store", "sql", "--sql-url"],
}


def mixed_app(environ, start_response):
    """``?NAME`` adds 1 to NAME; ``?short`` lives a second; ``?login=U``
    binds to U; ``?cycle`` cycles the key (a revocation meanwhile is the
    app's to handle); ``?logout`` flushes."""
    session = environ["wsgisession"]
    action, _, value = environ["QUERY_STRING"].partition("=")
    if action == "short":
        session["short"] = True
        session.set_expiry(1)
    elif action == "login":
        session["agent"] = "worker"
        session.bind_user(value)
    elif action == "cycle":
        session["cycled"] = session.get("cycled", 0) + 1
        try:
            session.cycle_key()
        except SessionInterrupted:  # revoked meanwhile: the session is empty
            pass
    elif action == "logout":
        session.flush()
    else:
        session[action] = session.get(action, 0) + 1
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def session_cookie(headers: list[tuple[str, str]], default: str) -> str:
    """The ``name=value`` of the session cookie the response set, else ``default``."""
    for name, value in headers:
        if name == "Set-Cookie" and not value.startswith("sessionid=;"):
            return value.split(";", 1)[0]
    return default


def churn(app: SessionMiddleware, index: int, turn: int) -> None:
    """Requests of sessions of this worker's own, and a revocation of another's."""
    short = new_session(app)
    call(app, "short", short)  # expires in a second: for the sweeps
    cookie = session_cookie(call(app, f"login=user{index}", new_session(app)), "")
    cookie = session_cookie(call(app, "cycle", cookie), cookie)
    call(app, "counter", cookie)
    if turn % 3 == 0:
        call(app, "logout", cookie)
    if turn % 4 == 0:
        app.revoke_user_sessions(f"user{(index + 1) % WORKERS}")
        app.user_sessions(f"user{index}")


def worker(
    kind: str, argument: str, cookies: tuple[str, str], index: int, queue: Any
) -> None:
    """``ROUNDS`` rounds of requests; puts the tracebacks of failed ones."""
    failures: list[str] = []
    try:
        store = build_store(kind, argument)
        app = SessionMiddleware(mixed_app, store=store, cleanup_interval=1)
        locked = SessionMiddleware(
            mixed_app, store=store, cleanup_interval=1, lock=True, lock_timeout=20
        )
        for turn in range(ROUNDS):
            try:
                call(app, f"worker{index}", cookies[0])
                call(locked, "shared", cookies[1])
                churn(app, index, turn)
            except Exception:  # noqa: BLE001 - reported by the test
                failures.append(traceback.format_exc())
        store.close()
    except Exception:  # noqa: BLE001 - reported by the test
        failures.append(traceback.format_exc())
    queue.put(failures)


def clear_expired_until(kind: str, argument: str, done: threading.Event) -> list[str]:
    """Run ``wsgisession clear-expired`` in a process of its own, again and
    again until ``done``; the output of the runs that failed."""
    argv = [sys.executable, "-m", "wsgisession", "clear-expired"]
    argv += [*CLI_OPTIONS[kind], argument]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    failed = []
    while not done.is_set():
        run = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
        if run.returncode != 0:
            failed.append(run.stdout + run.stderr)
    return failed


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
@pytest.mark.parametrize("method", ["fork", "spawn"])
@pytest.mark.parametrize("kind", LOCAL)
def test_worker_processes_lose_no_change_while_sweeps_run(
    kind: str, method: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    argument = store_argument(kind, request, tmp_path)
    store = build_store(kind, argument)  # used before the fork, as a master may
    app = SessionMiddleware(mixed_app, store=store)
    cookies = (new_session(app), new_session(app))
    context = multiprocessing.get_context(method)
    queue = context.Queue()
    processes = [
        context.Process(target=worker, args=(kind, argument, cookies, i, queue))
        for i in range(WORKERS)
    ]
    done, cli_failures = threading.Event(), []
    cli = threading.Thread(
        target=lambda: cli_failures.extend(clear_expired_until(kind, argument, done))
    )
    cli.start()
    try:
        for process in processes:
            process.start()
        failures = [f for _ in processes for f in queue.get(timeout=60)]
    finally:
        done.set()
        cli.join()
        for process in processes:
            process.join(timeout=10)
    assert failures == []
    assert cli_failures == []
    assert [process.exitcode for process in processes] == [0] * WORKERS
    own = app.open_session(cookies[0].split("=", 1)[1])
    assert {f"worker{i}": own.get(f"worker{i}") for i in range(WORKERS)} == {
        f"worker{i}": ROUNDS for i in range(WORKERS)
    }
    shared = app.open_session(cookies[1].split("=", 1)[1])
    assert shared.get("shared") == WORKERS * ROUNDS
    store.close()


def saving_until_killed(app: SessionMiddleware, cookie: str, ready: int) -> None:
    """In a child: a request holding ``cookie``'s lock that never ends."""

    def stuck(environ, start_response):
        environ["wsgisession"]["stuck"] = True
        os.write(ready, b"1")
        time.sleep(60)
        start_response("200 OK", [])
        return [b""]

    try:
        get(
            SessionMiddleware(stuck, store=app.store, lock=True, lock_ttl=1.0),
            "",
            cookie,
        )
    finally:
        os._exit(1)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
@pytest.mark.parametrize("kind", LOCAL)
def test_a_worker_killed_holding_a_lock_frees_it_after_lock_ttl(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    store = build_store(kind, store_argument(kind, request, tmp_path))
    app = SessionMiddleware(
        mixed_app, store=store, lock=True, lock_ttl=1.0, lock_timeout=5.0
    )
    cookie = new_session(app)
    ready, told = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        saving_until_killed(app, cookie, told)
    os.read(ready, 1)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    start = time.monotonic()
    call(app, "after", cookie)
    assert time.monotonic() - start < 3.0
    session = app.open_session(cookie.split("=", 1)[1])
    assert (session.get("after"), session.get("stuck")) == (1, None)
    os.close(ready)
    os.close(told)
    store.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
@pytest.mark.parametrize("kind", LOCAL)
def test_saves_in_other_processes_never_bring_back_a_flushed_or_revoked_session(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    store = build_store(kind, store_argument(kind, request, tmp_path))
    app = SessionMiddleware(user_app, store=store, cleanup_interval=1)
    flushed = session_cookie(call(app, "set=start", None), "")
    revoked = session_cookie(call(app, "login=alice", None), "")
    start, go = os.pipe()
    children = []
    for cookie in (flushed, revoked) * 2:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            code = 1
            try:
                os.read(start, 1)
                for number in range(40):
                    call(app, f"set={number}", cookie)
                code = 0
            finally:
                os._exit(code)
        children.append(pid)
    os.write(go, b"go" * len(children))
    time.sleep(0.05)  # the children's saves have begun
    call(app, "logout", flushed)
    assert app.revoke_user_sessions("alice") == 1
    codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children]
    assert codes == [0] * len(children)
    for cookie in (flushed, revoked):
        assert app.open_session(cookie.split("=", 1)[1]).session_key is None
    assert app.user_sessions("alice") == []
    os.close(start)
    os.close(go)
    store.close()


def expired_records(store: FileStore, count: int) -> list[str]:
    """``count`` records that expired a minute ago; their keys."""
    keys = [generate_key() for _ in range(count)]
    for key in keys:
        store.create(key, b"{}", time.time() - 60)
    return keys


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_worker_forked_while_its_parent_sweeps_sweeps_and_closes(
    tmp_path: Path,
) -> None:
    """A thread of the parent is in a sweep (waiting for a shard another
    process holds) when the parent forks: the child has no such thread,
    yet its sweeps must run, and its ``close()`` must return."""
    store = FileStore(tmp_path / "sessions")
    store.lock_timeout = 5.0
    [key] = expired_records(store, 1)
    holder = FileStore(tmp_path / "sessions")  # descriptors of its own
    release = holder._shard_locks.acquire(storage_key(key)[:2], 1.0)
    sweeping = threading.Thread(target=store.sweep_expired, args=(100,))
    sweeping.start()
    deadline = time.monotonic() + 5
    while not store._walk.guard.locked() and time.monotonic() < deadline:
        time.sleep(0.01)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            signal.alarm(5)  # a close() that waits for the parent's sweep
            keys = expired_records(store, 20)
            for _ in range(300):  # a sweep reads 100 files at most
                store.sweep_expired(100)
            code = 2 if any(os.path.exists(path(store, k)) for k in keys) else 0
            store.close()
        finally:
            os._exit(code)
    release()
    sweeping.join()
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    holder.close()
    store.close()


def path(store: FileStore, key: str) -> str:
    name = storage_key(key)
    return os.path.join(store.path, name[:2], name)
