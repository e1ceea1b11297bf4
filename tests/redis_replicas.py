"""A Redis Cluster of three masters with one replica each, on loopback.

:class:`servers.RedisCluster` joins masters only: a replica taking over
from a master has no place to happen there. This one starts six
:func:`servers.redis_cluster_node` processes (``cluster-node-timeout``
1000 ms, ``cluster-require-full-coverage no``), joins them with
``redis-cli --cluster create ... --cluster-replicas 1``, and offers the
three ways a master stops being one: a replica's graceful ``CLUSTER
FAILOVER``, a master killed with SIGKILL (its replica promoted by the
cluster), and the old master started again (it rejoins as a replica).
Each node is a :class:`servers.ServerProcess`, stopped by its PID.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import redis
from servers import RedisCluster, ServerProcess, redis_cluster_node

__all__ = ["ReplicatedCluster", "ask"]

#: Seconds a failover, a promotion or a rejoin may take before the test fails.
SETTLE_TIMEOUT = 20.0


class ReplicatedCluster(RedisCluster):
    """Six nodes: three masters, each with one replica."""

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir, masters=0)
        self.nodes = [redis_cluster_node(workdir / f"node{i}") for i in range(6)]

    def start(self) -> None:
        """Start the six nodes, join them, wait until every replica is synced."""
        for node in self.nodes:
            node.start()
        subprocess.run(
            [self.cli, "--cluster", "create", *self.addresses]
            + ["--cluster-replicas", "1", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        self.wait_until_ok()
        self.wait_until(lambda: len(self.synced_replicas()) == 3, "replicas to sync")

    def peers(self, via: ServerProcess | None = None) -> dict[str, dict[str, Any]]:
        """``CLUSTER NODES`` as one running node sees it."""
        node = via or next(n for n in self.nodes if n.proc is not None)
        return ask(node, "CLUSTER NODES")  # type: ignore[no-any-return]

    def masters(self) -> list[ServerProcess]:
        """The running nodes that serve slots, as each says of itself."""
        return [n for n in self.running() if _role(n) == "master" and _slots(n)]

    def running(self) -> list[ServerProcess]:
        return [node for node in self.nodes if node.proc is not None]

    def replica_of(self, master: ServerProcess) -> ServerProcess:
        """The node that replicates ``master`` (by its own INFO)."""
        for node in self.running():
            info = ask(node, "INFO", "replication")
            if info.get("role") == "slave" and info.get("master_port") == master.port:
                return node
        raise LookupError(f"no replica of {master}")

    def synced_replicas(self) -> list[ServerProcess]:
        """The running replicas whose link to their master is up."""
        synced = []
        for node in self.running():
            info = ask(node, "INFO", "replication")
            if info.get("role") == "slave" and info.get("master_link_status") == "up":
                synced.append(node)
        return synced

    def replicated(self, master: ServerProcess) -> bool:
        """Whether ``master``'s replica has every write made so far (``WAIT``)."""
        return bool(ask(master, "WAIT", "1", "2000") == 1)

    def failover(self, replica: ServerProcess) -> None:
        """``CLUSTER FAILOVER`` on ``replica``; wait until it took over."""
        ask(replica, "CLUSTER FAILOVER")
        self.wait_promoted(replica)

    def wait_promoted(self, replica: ServerProcess) -> float:
        """Seconds until every running node lists ``replica`` as a master
        serving slots (a client may ask any of them for the map)."""

        def promoted() -> bool:
            views = [self.peers(via=node) for node in self.running()]
            return all(
                "master" in view[replica.address]["flags"]
                and view[replica.address]["slots"]
                for view in views
            )

        return self.wait_until(promoted, f"{replica} to take over")

    def wait_until(self, condition: Any, what: str) -> float:
        """Seconds until ``condition()`` held (polled); RuntimeError past
        :data:`SETTLE_TIMEOUT`."""
        start = time.monotonic()
        while time.monotonic() - start < SETTLE_TIMEOUT:
            try:
                if condition():
                    return time.monotonic() - start
            except redis.RedisError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"waited {SETTLE_TIMEOUT} s for {what}")


def ask(node: ServerProcess, *command: str) -> Any:
    """``command``'s reply from ``node`` alone, on a connection of its own."""
    client = redis.Redis(host=node.host, port=node.port, socket_timeout=2)
    try:
        return client.execute_command(*command)
    finally:
        client.close()


def _role(node: ServerProcess) -> str:
    return str(ask(node, "INFO", "replication")["role"])


def _slots(node: ServerProcess) -> bool:
    """Whether ``node`` serves a slot, by its own ``CLUSTER NODES`` line."""
    mine = next(
        p for p in ask(node, "CLUSTER NODES").values() if "myself" in p["flags"]
    )
    return bool(mine["slots"])
