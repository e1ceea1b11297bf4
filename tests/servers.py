"""Throwaway memcached and redis-server processes (one, a pool, a cluster)
on loopback; the SQL databases' are in ``database_servers.py``, and this
module passes them on, so that a test imports every server from here.

Each is a :class:`ServerProcess` (``server_process.py``): one child process,
signalled by its PID only, on a port another process cannot pass off as
its own; a restart keeps the port.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

from database_servers import (
    DB_PASSWORD,
    DatabaseServer,
    mariadb,
    mariadb_root,
    mariadb_setup,
    pgbouncer,
    postgresql,
)
from listening_ports import free_port
from server_process import MissingBinary, PortTaken, ServerProcess, find_binary

__all__ = [
    "DB_PASSWORD",
    "DatabaseServer",
    "MemcachedPool",
    "MissingBinary",
    "PortTaken",
    "RedisCluster",
    "ServerProcess",
    "find_binary",
    "free_port",
    "mariadb",
    "mariadb_root",
    "mariadb_setup",
    "memcached",
    "pgbouncer",
    "postgresql",
    "redis_cluster_node",
    "redis_server",
]


def memcached(workdir: Path) -> ServerProcess:
    """A memcached (TCP only, UDP off) on a free port, not yet started."""
    port = free_port()
    argv = [find_binary("memcached"), "-l", "127.0.0.1", "-U", "0"]
    if os.geteuid() == 0:  # memcached refuses to run as root without -u
        argv += ["-u", "nobody"]
    return ServerProcess(
        "memcached", argv, port, workdir, listen_arguments=lambda p: ["-p", str(p)]
    )


def redis_server(workdir: Path) -> ServerProcess:
    """A redis-server without persistence on a free port, not yet started."""
    port = free_port()
    argv = [
        find_binary("redis-server"),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(workdir),
    ]
    return ServerProcess(
        "redis-server",
        argv,
        port,
        workdir,
        listen_arguments=lambda p: ["--port", str(p)],
    )


def redis_cluster_node(workdir: Path) -> ServerProcess:
    """A redis-server ready to join a cluster, on a free port, not yet started.

    It keeps its data in an append-only file (a restarted node comes back
    with its sessions), fails over nothing (no replicas), and serves its own
    slots while another master is down (``cluster-require-full-coverage no``).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    node = redis_server(workdir)
    node.name = "redis-cluster-node"
    node.argv[node.argv.index("--appendonly") + 1] = "yes"
    node.argv += [
        "--appendfsync",
        "always",
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        str(workdir / "nodes.conf"),
        "--cluster-node-timeout",
        "1000",
        "--cluster-require-full-coverage",
        "no",
    ]

    def listen_on(port: int) -> list[str]:
        """The cluster bus listens on a port of its own: a fresh one per port tried."""
        node.side_ports = [free_port()]
        return ["--port", str(port), "--cluster-port", str(node.side_ports[0])]

    node.listen_arguments = listen_on
    node.use_port(node.port)
    return node


class RedisCluster:
    """Three (or more) redis-server masters joined by ``redis-cli --cluster create``.

    Each node is a :class:`ServerProcess` of its own, stopped by its PID;
    ``restart()`` brings every node back with its data and an empty script
    cache, and waits until the cluster is whole again.
    """

    def __init__(self, workdir: Path, masters: int = 3) -> None:
        self.nodes = [redis_cluster_node(workdir / f"node{i}") for i in range(masters)]
        self.cli = find_binary("redis-cli")

    @property
    def url(self) -> str:
        """The ini form: one startup node, the client discovers the rest."""
        return f"redis+cluster://{self.nodes[0].address}"

    @property
    def addresses(self) -> list[str]:
        return [node.address for node in self.nodes]

    def start(self) -> None:
        """Start the nodes, join them (once), wait until every slot is served."""
        for node in self.nodes:
            node.start()
        if not (self.nodes[0].workdir / "nodes.conf").read_text().count("master") > 1:
            subprocess.run(
                [self.cli, "--cluster", "create", *self.addresses]
                + ["--cluster-replicas", "0", "--cluster-yes"],
                check=True,
                capture_output=True,
                timeout=60,
            )
        self.wait_until_ok()

    def wait_until_ok(self) -> None:
        """Wait until every running node reports ``cluster_state:ok`` and sees
        every other running node connected."""
        import redis

        deadline = time.monotonic() + 30
        running = [node for node in self.nodes if node.proc is not None]
        while time.monotonic() < deadline:
            if all(self._settled(redis, node, len(running)) for node in running):
                return
            time.sleep(0.05)
        raise RuntimeError(f"redis cluster {self.addresses} did not settle in time")

    @staticmethod
    def _settled(redis: Any, node: ServerProcess, running: int) -> bool:
        client = redis.Redis(host=node.host, port=node.port, socket_timeout=1)
        try:
            state = client.execute_command("CLUSTER INFO")["cluster_state"]
            peers = client.execute_command("CLUSTER NODES").values()
        except redis.RedisError:
            return False
        finally:
            client.close()
        connected = sum(
            peer["connected"] and "fail" not in peer["flags"] for peer in peers
        )
        return bool(state == "ok" and connected == running)

    def node_of(self, name: str) -> ServerProcess:
        """The master that serves the slot of key ``name``."""
        import redis

        client = redis.Redis(host=self.nodes[0].host, port=self.nodes[0].port)
        try:
            slot = int(client.execute_command("CLUSTER KEYSLOT", name))
            for address, peer in client.execute_command("CLUSTER NODES").items():
                if any(int(a) <= slot <= int(b) for a, b in peer["slots"]):
                    port = int(address.rsplit(":", 1)[1])
                    return next(n for n in self.nodes if n.port == port)
        finally:
            client.close()
        raise LookupError(f"no node serves slot {slot}")

    def restart(self) -> None:
        """Stop every node, start them again (empty script caches), wait."""
        self.stop()
        self.start()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def __repr__(self) -> str:
        return f"<redis cluster at {', '.join(self.addresses)}>"


class MemcachedPool:
    """Several memcached servers, each its own :class:`ServerProcess`."""

    def __init__(self, workdir: Path, size: int = 3) -> None:
        self.servers = [memcached(workdir) for _ in range(size)]

    @property
    def addresses(self) -> list[str]:
        return [server.address for server in self.servers]

    @property
    def spec(self) -> str:
        """The ini form: whitespace-separated ``host:port``."""
        return " ".join(self.addresses)

    def start(self) -> None:
        for server in self.servers:
            server.start()

    def stop(self) -> None:
        for server in self.servers:
            server.stop(crash=True)

    def __repr__(self) -> str:
        return f"<memcached pool at {self.spec}>"
