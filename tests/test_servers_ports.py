"""The test servers' ports against another process that takes them.

``servers.free_port()`` probes a port, and the server binds it a moment
later: another pytest run, or any program, may take it in between. The
first start then moves to another free port; a restart keeps its port
(its clients know it) and raises :class:`servers.PortTaken`. Readiness
asks whose listener holds the port, never merely whether something
accepts connections there: a stranger's server must not pass for ours.
Here ``free_port`` is made to hand out a port already held, by a plain
listening socket or by a real second server.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import database_servers
import listening_ports
import pytest
import redis
import servers
from listening_ports import dead_port
from pymemcache.client.base import Client  # type: ignore[import-untyped]
from servers import DatabaseServer, ServerProcess

Factory = Callable[[Path], ServerProcess]
FACTORIES = {"memcached": servers.memcached, "redis": servers.redis_server}


def _listening_socket(port: int = 0) -> socket.socket:
    """A plain socket listening on loopback ``port`` (a free one if 0)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port or servers.free_port()))
    listener.listen()
    return listener


@pytest.fixture
def stranger_socket() -> Iterator[socket.socket]:
    """A plain socket listening on a loopback port (it never answers)."""
    with _listening_socket() as listener:
        yield listener


def _hand_out_first(monkeypatch: pytest.MonkeyPatch, port: int) -> None:
    """``free_port`` returns ``port`` once, then free ports again, to the
    servers of servers.py and of database_servers.py."""
    real = servers.free_port
    ports = [port]
    for module in (servers, database_servers):
        monkeypatch.setattr(
            module, "free_port", lambda: ports.pop() if ports else real()
        )


def _pid_answering(server: ServerProcess) -> int:
    """The PID of whichever server answers on ``server``'s port, by its own word."""
    if server.name == "memcached":
        client = Client((server.host, server.port), timeout=2)
        try:
            return int(client.stats()[b"pid"])
        finally:
            client.close()
    with redis.Redis(host=server.host, port=server.port, socket_timeout=2) as client:
        return int(client.info("server")["process_id"])


def _started_on(
    factory: Factory, port: int, monkeypatch: pytest.MonkeyPatch, workdir: Path
) -> ServerProcess:
    with monkeypatch.context() as patch:
        _hand_out_first(patch, port)
        server = factory(workdir)
        assert server.port == port
        server.start()
    return server


@pytest.mark.parametrize("kind", sorted(FACTORIES))
def test_a_port_a_plain_socket_holds_is_left_for_another(
    kind: str,
    stranger_socket: socket.socket,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    held = stranger_socket.getsockname()[1]
    server = _started_on(FACTORIES[kind], held, monkeypatch, tmp_path)
    try:
        assert server.port != held
        assert server.proc is not None
        assert _pid_answering(server) == server.proc.pid
    finally:
        server.stop(crash=True)


@pytest.mark.parametrize("kind", sorted(FACTORIES))
def test_a_port_another_server_holds_is_left_for_another(
    kind: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    stranger = FACTORIES[kind](tmp_path / "stranger")
    stranger.workdir.mkdir()
    stranger.start()
    try:
        server = _started_on(FACTORIES[kind], stranger.port, monkeypatch, tmp_path)
        try:
            assert server.port != stranger.port
            assert server.proc is not None
            assert _pid_answering(server) == server.proc.pid
        finally:
            server.stop(crash=True)
    finally:
        stranger.stop(crash=True)


@pytest.mark.parametrize("kind", sorted(FACTORIES))
def test_a_restart_on_a_port_taken_meanwhile_fails_loudly(
    kind: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    server = FACTORIES[kind](tmp_path)
    server.start()
    port = server.port
    server.stop(crash=True)
    (tmp_path / "other").mkdir()
    stranger = _started_on(FACTORIES[kind], port, monkeypatch, tmp_path / "other")
    try:
        with pytest.raises(servers.PortTaken, match=f"{port}.*restart keeps its port"):
            server.start()
        assert server.port == port
        assert server.proc is None or server.proc.poll() is not None  # not running
    finally:
        server.stop(crash=True)
        stranger.stop(crash=True)


def test_a_restart_keeps_its_port(tmp_path: Path) -> None:
    server = servers.redis_server(tmp_path)
    server.start()
    try:
        port = server.port
        server.stop(crash=True)
        server.start()
        assert server.port == port
        assert server.proc is not None
        assert _pid_answering(server) == server.proc.pid
    finally:
        server.stop(crash=True)


def test_a_restart_on_a_port_a_plain_socket_took_fails_loudly(
    tmp_path: Path,
) -> None:
    server = servers.memcached(tmp_path)
    server.start()
    server.stop(crash=True)
    with (
        _listening_socket(server.port),
        pytest.raises(servers.PortTaken, match="restart keeps its port"),
    ):
        server.start()
    server.stop(crash=True)


def test_a_dead_port_refuses_connections_and_strangers(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Tests that must fail to connect hold their port: another run's server
    (which binds with SO_REUSEADDR, as redis-server does) cannot take it."""
    with dead_port() as port:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        with pytest.raises(OSError, match="in use"):
            _listening_socket(port).close()
        stranger = _started_on(servers.redis_server, port, monkeypatch, tmp_path)
        stranger.stop(crash=True)
        assert stranger.port != port


def test_the_kernels_list_of_listeners_agrees_with_proc(
    stranger_socket: socket.socket,
) -> None:
    """Readiness asks the kernel (sock_diag); where netlink is refused it
    reads /proc/net/tcp and tcp6, which must find the same sockets."""
    port = stranger_socket.getsockname()[1]
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as six:
        six.bind(("::1", 0))
        six.listen()
        six_port = six.getsockname()[1]
        families = [socket.AF_INET, socket.AF_INET6]
        from_proc = listening_ports._proc_listeners(families)
        for wanted in (port, six_port):
            found = listening_ports.listening_sockets(wanted)
            assert len(found) == 1
            assert found == {inode for _, at, inode in from_proc if at == wanted}
        assert listening_ports.listening_sockets(port, "127.0.0.1") == _found_v4(port)
        assert listening_ports.listening_sockets(six_port, "127.0.0.1") == set()
        assert listening_ports.listens(os.getpid(), "127.0.0.1", port)
        assert not listening_ports.listens(os.getppid(), "127.0.0.1", port)


def _found_v4(port: int) -> set[int]:
    return {
        inode
        for address, at, inode in listening_ports._proc_listeners([socket.AF_INET])
        if (address, at) == ("127.0.0.1", port)
    }


def test_a_server_that_fails_otherwise_is_not_moved(tmp_path: Path) -> None:
    """Only a port held by another process moves a server: a bad option
    fails at once, on its first port, with the server's own words."""
    server = servers.memcached(tmp_path)
    server.argv += ["--no-such-option"]
    port = server.port
    with pytest.raises(RuntimeError, match="exited") as failure:
        server.start()
    assert not isinstance(failure.value, servers.PortTaken)
    assert server.port == port


def test_cluster_node_whose_bus_port_is_held_moves_both_ports(
    stranger_socket: socket.socket,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """A cluster node listens twice (clients, and the cluster bus): either
    port taken moves the node to a fresh pair."""
    real = servers.free_port
    ports = [stranger_socket.getsockname()[1], real()]  # popped: client, then bus
    with monkeypatch.context() as patch:
        patch.setattr(servers, "free_port", lambda: ports.pop() if ports else real())
        node = servers.redis_cluster_node(tmp_path / "node")
        node.start()
    try:
        assert str(stranger_socket.getsockname()[1]) not in node.listen_argv
        assert node.listen_argv[:2] == ["--port", str(node.port)]
        assert node.proc is not None
        assert _pid_answering(node) == node.proc.pid
    finally:
        node.stop(crash=True)


@pytest.mark.slow  # a PostgreSQL server's initdb and start: seconds
def test_postgresql_moves_off_a_held_port(
    stranger_socket: socket.socket,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    held = stranger_socket.getsockname()[1]
    server = _database_on(servers.postgresql, held, monkeypatch, tmp_path)
    try:
        assert server.port != held
        assert f":{server.port}/" in server.url
        server.probe()  # logs in through the URL's port
    finally:
        server.remove()


@pytest.mark.slow  # a MariaDB server's install and start: seconds
def test_mariadb_moves_off_a_held_port(
    stranger_socket: socket.socket,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    import sqlalchemy

    held = stranger_socket.getsockname()[1]
    server = _database_on(servers.mariadb, held, monkeypatch, tmp_path)
    try:
        assert server.port != held
        servers.mariadb_setup(server)
        engine = sqlalchemy.create_engine(server.url)
        with engine.connect() as conn:
            assert conn.execute(sqlalchemy.text("SELECT 1")).scalar() == 1
        engine.dispose()
    finally:
        server.remove()


@pytest.mark.slow  # uses the run's PostgreSQL server
def test_pgbouncer_moves_off_a_held_port(
    postgresql_server: DatabaseServer,
    stranger_socket: socket.socket,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    import psycopg

    held = stranger_socket.getsockname()[1]
    with monkeypatch.context() as patch:
        _hand_out_first(patch, held)
        bouncer = servers.pgbouncer(tmp_path, postgresql_server)
        bouncer.start()
    try:
        assert bouncer.port != held
        assert f":{bouncer.port}/" in bouncer.url
        url = bouncer.url.replace("postgresql+psycopg", "postgresql")
        psycopg.connect(url, connect_timeout=5).close()
    finally:
        bouncer.remove()


def _database_on(
    factory: Callable[[Path], DatabaseServer],
    port: int,
    monkeypatch: pytest.MonkeyPatch,
    workdir: Path,
) -> DatabaseServer:
    with monkeypatch.context() as patch:
        _hand_out_first(patch, port)
        server = factory(workdir)
        assert server.port == port
        try:
            server.start()
        except BaseException:
            server.remove()
            raise
    return server


@pytest.mark.slow  # joins a Redis Cluster: a second or two
def test_a_cluster_forms_and_restarts_around_held_ports(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The first node's client port and the second's bus port are held: the
    cluster joins on the ports its nodes moved to, and a restart keeps them."""
    holders = [_listening_socket() for _ in range(2)]
    held = [holder.getsockname()[1] for holder in holders]
    real = servers.free_port
    # Each node asks for its client port, then its bus port.
    ports = [held[1], real(), real(), held[0]]
    with monkeypatch.context() as patch:
        patch.setattr(servers, "free_port", lambda: ports.pop() if ports else real())
        cluster = servers.RedisCluster(tmp_path)
        assert cluster.nodes[0].port == held[0]
        assert f"--cluster-port {held[1]}" in " ".join(cluster.nodes[1].listen_argv)
        try:
            cluster.start()
            moved = [node.port for node in cluster.nodes]
            assert held[0] not in moved
            cluster.restart()
            assert [node.port for node in cluster.nodes] == moved
            with redis.RedisCluster(host="127.0.0.1", port=moved[0]) as client:
                client.set("k", b"v")
                assert client.get("k") == b"v"
        finally:
            cluster.stop()
            for holder in holders:
                holder.close()
