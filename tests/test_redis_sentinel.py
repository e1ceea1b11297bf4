"""RedisStore on a client from redis-py's Sentinel support, as docs/stores.rst
shows it, with a master, two replicas and three Sentinels on loopback
(tests/redis_sentinel.py), and a real failover.

Four threads each increment their own key of one session through the
middleware while the master changes: by a graceful ``SENTINEL FAILOVER``,
or killed with SIGKILL. What they see: only ``StoreUnavailable``, only
until a replica is promoted, no increment acknowledged and then lost
while the replicas keep up, no two requests of the session at once with
``lock = true``, and the same store serving it all (no restart of the app).
What asynchronous replication costs when a replica lags (a save and a
request lock lost) is shown and must be documented; so must the way to
configure Sentinel from an ini file. Each test starts its own six
processes (~5 s).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
import webtest
from redis_replicas import ask
from redis_sentinel import MASTER_NAME, SentinelGroup

from wsgisession import SessionMiddleware
from wsgisession.cli import main
from wsgisession.errors import StoreUnavailable
from wsgisession.stores import RedisStore

pytestmark = pytest.mark.slow

DOCS = Path(__file__).parent.parent / "docs"
#: Seconds of traffic before and after the change of masters.
STEADY = 1.0
#: Seconds past the promotion by which every failure ends: redis-py asks
#: the Sentinels for the master again on each new connection.
RECOVERY = 1.0
THREADS = 4


@pytest.fixture
def sentinel_group(tmp_path: Path) -> Iterator[SentinelGroup]:
    group = SentinelGroup(tmp_path / "sentinel")
    try:
        group.start()
        yield group
    finally:
        group.stop()


def sentinel_store(group: SentinelGroup) -> RedisStore:
    """The store as docs/stores.rst builds it."""
    sentinel = group.client()
    return RedisStore(client=sentinel.master_for(MASTER_NAME, socket_timeout=2))


def incrementer(
    environ: dict[str, Any], start_response: Callable[..., Any]
) -> list[bytes]:
    """``/kN`` adds one to the session's key ``kN`` and answers its new value;
    ``/peek`` answers the session's keys. ``environ["test.in_flight"]`` counts
    the requests that have the session loaded (and with lock = true, locked)."""
    session = environ["wsgisession"]
    name = environ["PATH_INFO"].strip("/")
    session.get(name)  # loads the session, taking the lock first
    in_flight: InFlight = environ["test.in_flight"]
    with in_flight:
        if name == "peek":
            body = ",".join(f"{k}={v}" for k, v in sorted(session.items()))
        else:
            session[name] = session.get(name, 0) + 1
            body = str(session[name])
            time.sleep(0.002)  # a request's work, while the others wait or run
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body.encode()]


class InFlight:
    """How many requests are inside it at once, and the most seen."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = 0
        self.most = 0

    def __enter__(self) -> None:
        with self._lock:
            self.now += 1
            self.most = max(self.most, self.now)

    def __exit__(self, *exc_info: object) -> None:
        with self._lock:
            self.now -= 1


@dataclass
class OneSession:
    """Threads incrementing their own key of one session until :meth:`stop`."""

    middleware: SessionMiddleware
    acknowledged: dict[str, int] = field(default_factory=dict)
    #: (seconds since start, key, last acknowledged, answered): an answer
    #: not above the last is an acknowledged increment lost or counted twice.
    jumps: list[tuple[float, str, int, int]] = field(default_factory=list)
    #: (seconds since start, key, exception) of each request that raised.
    failures: list[tuple[float, str, BaseException]] = field(default_factory=list)
    in_flight: InFlight = field(default_factory=InFlight)

    def __post_init__(self) -> None:
        session = self.middleware.open_session()
        session["started"] = True
        session.save()
        assert session.session_key is not None
        self.key = session.session_key
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._loop, args=(f"k{i}",)) for i in range(THREADS)
        ]
        self.began = time.monotonic()

    def client(self) -> webtest.TestApp:
        client = webtest.TestApp(
            self.middleware, extra_environ={"test.in_flight": self.in_flight}
        )
        client.set_cookie("sessionid", self.key)
        return client

    def start(self) -> None:
        self.began = time.monotonic()
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
            assert not thread.is_alive()

    def _loop(self, name: str) -> None:
        client = self.client()
        while not self._stop.is_set():
            try:
                count = int(client.get(f"/{name}").text)
            except Exception as exc:  # noqa: BLE001 - recorded: the test judges its type
                self.failures.append((time.monotonic() - self.began, name, exc))
                time.sleep(0.01)
                continue
            last = self.acknowledged.get(name, 0)
            if count <= last:
                self.jumps.append((time.monotonic() - self.began, name, last, count))
            self.acknowledged[name] = count

    def stored(self) -> dict[str, int]:
        """The session's keys as the store has them now."""
        text = self.client().get("/peek").text
        pairs = (item.split("=") for item in text.split(",") if item.startswith("k"))
        return {name: int(value) for name, value in pairs}


def test_the_docs_client_serves_sessions_users_and_the_lock(
    sentinel_group: SentinelGroup,
) -> None:
    store = sentinel_store(sentinel_group)
    middleware = SessionMiddleware(incrementer, store=store, lock=True)
    session = middleware.open_session()
    session.bind_user("alice")
    session.save()
    traffic = OneSession(middleware)
    client = traffic.client()
    client.set_cookie("sessionid", session.session_key)  # type: ignore[arg-type]
    assert [client.get("/k0").text for _ in range(3)] == ["1", "2", "3"]
    assert traffic.in_flight.most == 1
    assert len(middleware.user_sessions("alice")) == 1
    assert middleware.revoke_user_sessions("alice") == 1
    assert middleware.user_sessions("alice") == []
    assert store.load(session.session_key) is None  # type: ignore[arg-type]
    lock_key = "wsgisession:{wsgisession:"
    master = sentinel_group.master()
    assert not [k for k in _keys(master) if k.startswith(lock_key)]  # released


def _keys(server: Any) -> list[str]:
    return [key.decode() for key in ask(server, "KEYS", "*")]


def _run_through(
    group: SentinelGroup, lock: bool, change: Callable[[], float]
) -> tuple[OneSession, float]:
    """Traffic on one session while ``change()`` replaces the master;
    returns it stopped, and when (since it began) the replica took over."""
    middleware = SessionMiddleware(
        incrementer, store=sentinel_store(group), lock=lock, lock_timeout=5
    )
    traffic = OneSession(middleware)
    traffic.start()
    try:
        time.sleep(STEADY)
        change()
        promoted_at = time.monotonic() - traffic.began
        time.sleep(STEADY)
    finally:
        traffic.stop()
    return traffic, promoted_at


@pytest.mark.parametrize("lock", [False, True])
def test_a_graceful_failover_fails_no_request_and_loses_nothing(
    sentinel_group: SentinelGroup, lock: bool
) -> None:
    traffic, _ = _run_through(sentinel_group, lock, sentinel_group.failover)
    assert traffic.failures == []
    assert traffic.jumps == []
    assert sum(traffic.acknowledged.values()) > 100
    assert traffic.stored() == traffic.acknowledged
    assert traffic.in_flight.most == (1 if lock else THREADS)


@pytest.mark.parametrize("lock", [False, True])
def test_a_killed_master_fails_requests_until_a_replica_takes_over(
    sentinel_group: SentinelGroup, lock: bool
) -> None:
    def kill() -> float:
        old = sentinel_group.master()
        old.stop(crash=True)
        return sentinel_group.wait_promoted(old)

    traffic, promoted_at = _run_through(sentinel_group, lock, kill)
    failures = traffic.failures
    escaped = [exc for _, _, exc in failures if not isinstance(exc, StoreUnavailable)]
    assert escaped == [], [repr(exc) for exc in escaped]
    assert failures, "the dead master failed no request"
    last_failure = max(at for at, _, _ in failures)
    assert last_failure < promoted_at + RECOVERY, (last_failure, promoted_at)
    # The replicas had every write (loopback, no lag): no acknowledged
    # increment lost or counted twice. A request that failed as the master
    # died may have saved first: its increment is there, unacknowledged.
    assert traffic.jumps == []
    stored = traffic.stored()
    for name, acknowledged in traffic.acknowledged.items():
        failed = sum(1 for _, key, _ in failures if key == name)
        assert acknowledged <= stored[name] <= acknowledged + failed, name
    assert traffic.in_flight.most == (1 if lock else THREADS)


def cut_replicas(group: SentinelGroup) -> None:
    """The master's link to its replicas cut, their reconnection refused
    (they have no password): a lagging or partitioned replica. Connections
    already signed in (the stores', the Sentinels') keep working."""
    master = group.master()
    cut = redis.Redis(host=master.host, port=master.port, single_connection_client=True)
    cut.execute_command("ACL SETUSER default resetpass >not-the-replicas")
    assert cut.execute_command("CLIENT KILL TYPE replica") == 2
    cut.close()


def test_a_lagging_replica_promoted_loses_a_save_and_the_lock(
    sentinel_group: SentinelGroup,
) -> None:
    """Redis replicates asynchronously: what the master acknowledged and had
    not yet sent to a replica is gone once that replica takes over; a save
    and a request lock alike. Another process then takes the lock a
    request still holds: two requests of the session run at once.
    docs/stores.rst must say both."""
    app_server = sentinel_store(sentinel_group)
    other_app_server = sentinel_store(sentinel_group)
    middleware = SessionMiddleware(incrementer, store=app_server, lock=True)
    traffic = OneSession(middleware)
    client = traffic.client()
    assert client.get("/k0").text == "1"
    assert other_app_server.load(traffic.key) is not None  # its connection signed in
    assert sentinel_group.replicated()
    cut_replicas(sentinel_group)
    assert client.get("/k0").text == "2"  # acknowledged: the master has it
    with app_server.lock(traffic.key, timeout=1, ttl=60):
        old = sentinel_group.master()
        old.stop(crash=True)
        sentinel_group.wait_promoted(old)
        sentinel_group.wait_until(lambda: _serves(other_app_server), "a new master")
        with other_app_server.lock(traffic.key, timeout=1, ttl=60):
            pass  # taken while the first request holds it
    assert traffic.stored() == {"k0": 1}  # the second save is lost
    text = " ".join((DOCS / "stores.rst").read_text().split())
    assert "promoted by Sentinel" in text
    assert "two requests of one session may then run at once" in text


def _serves(store: RedisStore) -> bool:
    try:
        store.load("probe")
    except StoreUnavailable:
        return False
    return True


def test_an_ini_file_reaches_sentinel_through_the_docs_function(
    sentinel_group: SentinelGroup,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """redis_url has no URL for Sentinel; docs/stores.rst's function, named
    as the ini's store, is what ``wsgisession check`` and the app build."""
    block = _docs_block_defining("def sentinel_store(")
    addresses = '[("10.0.0.5", 26379), ("10.0.0.6", 26379)]'
    assert addresses in block
    package = tmp_path / "myapp"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "sessions.py").write_text(
        block.replace(addresses, repr(sentinel_group.addresses))
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    ini = tmp_path / "app.ini"
    ini.write_text(
        "[filter:session]\nuse = egg:wsgisession#session\n"
        "store = myapp.sessions:sentinel_store\nkey_prefix = myapp:\n"
    )
    assert main(["check", "--config", f"{ini}#session"]) == 0
    assert "store reached: RedisStore(<Redis>, key_prefix='myapp:')" in (
        capsys.readouterr().out
    )


def _docs_block_defining(line: str) -> str:
    """The dedented Python block of docs/stores.rst that holds ``line``."""
    text = (DOCS / "stores.rst").read_text()
    for block in text.split(".. code-block:: python\n")[1:]:
        body = []
        for source_line in block.splitlines()[1:]:
            if source_line and not source_line.startswith("    "):
                break
            body.append(source_line[4:])
        if any(source_line.startswith(line) for source_line in body):
            return "\n".join(body) + "\n"
    raise AssertionError(f"no block of docs/stores.rst defines {line!r}")
