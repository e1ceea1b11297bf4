"""Throwaway memcached and redis-server processes on free loopback ports.

Each :class:`ServerProcess` owns exactly one child process: ``stop()`` and
teardown signal that PID only. ``start()`` after ``stop()`` brings the
server back on the same port, which the outage tests rely on.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

__all__ = ["MissingBinary", "ServerProcess", "free_port", "memcached", "redis_server"]

START_TIMEOUT = 10.0  # seconds for a server to accept connections
STOP_TIMEOUT = 5.0  # seconds between SIGTERM and SIGKILL


class MissingBinary(RuntimeError):
    """The server's executable is not installed."""


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _find(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        raise MissingBinary(
            f"{binary} is not installed (or not on PATH); the test command "
            f"installs it: apt-get install {binary}"
        )
    return path


class ServerProcess:
    """A server listening on ``127.0.0.1:port`` with its output in ``log_path``."""

    def __init__(self, name: str, argv: list[str], port: int, workdir: Path) -> None:
        self.name = name
        self.argv = argv
        self.host = "127.0.0.1"
        self.port = port
        self.workdir = workdir
        self.log_path = workdir / f"{name}-{port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self) -> None:
        """Start the server (again) and wait until it accepts connections."""
        if self.proc is not None and self.proc.poll() is None:
            return
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )
        self._wait_until_ready()

    def _wait_until_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode}: "
                    f"{self.log_path.read_text(errors='replace')[-2000:]}"
                )
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"{self.name} did not listen on {self.address} in time")

    def stop(self, *, crash: bool = False) -> None:
        """Stop this server's process (SIGTERM, then SIGKILL) and reap it.

        ``crash=True`` sends SIGKILL at once: a crash, and no wait for
        memcached's graceful exit (up to a second).
        """
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        if crash:
            proc.kill()
        else:
            proc.terminate()
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT)

    def __repr__(self) -> str:
        return f"<{self.name} at {self.address}>"


def memcached(workdir: Path) -> ServerProcess:
    """A memcached (TCP only, UDP off) on a free port, not yet started."""
    port = free_port()
    argv = [_find("memcached"), "-l", "127.0.0.1", "-p", str(port), "-U", "0"]
    if os.geteuid() == 0:  # memcached refuses to run as root without -u
        argv += ["-u", "nobody"]
    return ServerProcess("memcached", argv, port, workdir)


def redis_server(workdir: Path) -> ServerProcess:
    """A redis-server without persistence on a free port, not yet started."""
    port = free_port()
    argv = [
        _find("redis-server"),
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(workdir),
    ]
    return ServerProcess("redis-server", argv, port, workdir)
