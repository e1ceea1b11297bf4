"""A Redis master with two replicas watched by three Sentinels, on loopback.

Each is a :class:`servers.ServerProcess` (a ``redis-server``, the Sentinels
``redis-server --sentinel`` with a config file of their own, which they
rewrite), stopped by its PID. The Sentinels declare a master down after
1000 ms without a reply (``down-after-milliseconds``) and a quorum of 2
agrees; :meth:`SentinelGroup.failover` asks for a graceful
``SENTINEL FAILOVER``, and killing the master with SIGKILL makes them
promote a replica themselves.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import redis
from redis.sentinel import Sentinel
from redis_replicas import SETTLE_TIMEOUT, ask
from servers import ServerProcess, find_binary, free_port, redis_server

__all__ = ["MASTER_NAME", "SentinelGroup"]

#: The name the Sentinels know the master by (as in docs/stores.rst).
MASTER_NAME = "mymaster"
#: Milliseconds without a reply before a Sentinel deems the master down.
DOWN_AFTER_MS = 1000


def sentinel_process(workdir: Path, master: ServerProcess) -> ServerProcess:
    """A ``redis-server --sentinel`` watching ``master``, not yet started."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "sentinel.conf"
    config.write_text(
        f"sentinel monitor {MASTER_NAME} {master.host} {master.port} 2\n"
        f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n"
        f"sentinel failover-timeout {MASTER_NAME} 5000\n"
        f"sentinel parallel-syncs {MASTER_NAME} 2\n"
    )
    argv = [find_binary("redis-server"), str(config), "--sentinel"]
    return ServerProcess(
        "redis-sentinel",
        argv,
        free_port(),
        workdir,
        listen_arguments=lambda port: ["--port", str(port), "--bind", "127.0.0.1"],
    )


class SentinelGroup:
    """A master, two replicas (``replicaof``) and three Sentinels."""

    def __init__(self, workdir: Path) -> None:
        self.servers = [redis_server(_made(workdir / f"redis{i}")) for i in range(3)]
        master = self.servers[0]
        for replica in self.servers[1:]:
            replica.argv += ["--replicaof", master.host, str(master.port)]
        self.sentinels = [
            sentinel_process(workdir / f"sentinel{i}", master) for i in range(3)
        ]

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """The Sentinels' addresses, as ``redis.sentinel.Sentinel`` takes them."""
        return [(s.host, s.port) for s in self.sentinels]

    def start(self) -> None:
        """Start every process; wait until the replicas are synced and every
        Sentinel knows both replicas and the other Sentinels."""
        for process in self.servers + self.sentinels:
            process.start()
        self.wait_until(lambda: len(self.synced_replicas()) == 2, "replicas to sync")
        self.wait_until(self._sentinels_agree, "the sentinels to meet")

    def stop(self) -> None:
        for process in self.sentinels + self.servers:
            process.stop(crash=True)

    def client(self, **options: Any) -> Sentinel:
        """A redis-py ``Sentinel`` on the three Sentinels (docs/stores.rst)."""
        return Sentinel(self.addresses, socket_timeout=2, **options)

    def master(self) -> ServerProcess:
        """The server the first running Sentinel names as the master."""
        sentinel = next(s for s in self.sentinels if s.proc is not None)
        port = self._named_master(sentinel)
        return next(server for server in self.servers if server.port == port)

    def running(self) -> list[ServerProcess]:
        return [server for server in self.servers if server.proc is not None]

    def synced_replicas(self) -> list[ServerProcess]:
        """The running replicas whose link to their master is up."""
        synced = []
        for server in self.running():
            info = ask(server, "INFO", "replication")
            if info.get("role") == "slave" and info.get("master_link_status") == "up":
                synced.append(server)
        return synced

    def replicated(self) -> bool:
        """Whether both replicas have every write made so far (``WAIT``)."""
        return bool(ask(self.master(), "WAIT", "2", "2000") == 2)

    def failover(self) -> float:
        """``SENTINEL FAILOVER``; seconds until a replica took over."""
        old = self.master()
        ask(self.sentinels[0], "SENTINEL", "FAILOVER", MASTER_NAME)
        return self.wait_promoted(old)

    def wait_promoted(self, old: ServerProcess) -> float:
        """Seconds until every running Sentinel names a master other than
        ``old``, and that server says it is the master."""

        def promoted() -> bool:
            named = {self._named_master(s) for s in self.sentinels if s.proc}
            if len(named) != 1 or old.port in named:
                return False
            new = next(s for s in self.servers if s.port in named)
            return bool(ask(new, "INFO", "replication").get("role") == "master")

        return self.wait_until(promoted, f"a replica to replace {old}")

    def _named_master(self, sentinel: ServerProcess) -> int:
        reply = ask(sentinel, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME)
        return int(reply[1])

    def _sentinels_agree(self) -> bool:
        for sentinel in self.sentinels:
            client = redis.Redis(host=sentinel.host, port=sentinel.port)
            try:
                state = client.sentinel_master(MASTER_NAME)
            finally:
                client.close()
            if int(state["num-slaves"]) != 2 or int(state["num-other-sentinels"]) != 2:
                return False
        return True

    def wait_until(self, condition: Any, what: str) -> float:
        """Seconds until ``condition()`` held (polled); RuntimeError past
        :data:`redis_replicas.SETTLE_TIMEOUT`."""
        start = time.monotonic()
        while time.monotonic() - start < SETTLE_TIMEOUT:
            try:
                if condition():
                    return time.monotonic() - start
            except (redis.RedisError, LookupError, StopIteration):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"waited {SETTLE_TIMEOUT} s for {what}")


def _made(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
