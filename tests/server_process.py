"""One server process on a loopback port: start, readiness, restart and stop.

A :class:`ServerProcess` owns exactly one child process: ``stop()`` and
teardown signal that PID only. ``start()`` after ``stop()`` brings the
server back on the same port, which the outage tests rely on.

Another process may take a server's port between ``free_port``'s probe
and the server's bind (another pytest run, any program). The first start
then moves to another free port; a restart, whose clients know the port,
raises :class:`PortTaken`. A server is ready once its own process holds
the listening socket: a connection alone may reach the stranger.
"""

from __future__ import annotations

import logging
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from listening_ports import free_port, listening_sockets, listens

__all__ = [
    "ListenArguments",
    "MissingBinary",
    "PortTaken",
    "ServerProcess",
    "find_binary",
]

logger = logging.getLogger(__name__)

START_TIMEOUT = 10.0  # seconds for a server to accept connections
STOP_TIMEOUT = 5.0  # seconds between SIGTERM and SIGKILL
#: Ports a first start tries while other processes hold them.
START_ATTEMPTS = 5
#: What every server here logs when its bind() finds the port taken (EADDRINUSE).
PORT_IN_USE = "Address already in use"


class PortTaken(RuntimeError):
    """Another process listens on the port a server was to listen on."""


#: The options that make a server listen on a port (and on any other port
#: it needs, picked here); a server whose config file names its port writes
#: the file and returns no options.
ListenArguments = Callable[[int], list[str]]


class ServerProcess:
    """A server listening on ``127.0.0.1:port`` with its output in ``log_path``.

    ``argv`` is its command without the listening options, which
    ``listen_arguments(port)`` gives (``listen_argv``, kept for restarts);
    it records in ``side_ports`` any other port it picks for the server (a
    cluster node's bus): the server is up once it listens on all of them.
    """

    def __init__(
        self,
        name: str,
        argv: list[str],
        port: int,
        workdir: Path,
        *,
        listen_arguments: ListenArguments,
    ) -> None:
        self.name = name
        self.argv = argv
        self.host = "127.0.0.1"
        self.workdir = workdir
        self.listen_arguments = listen_arguments
        self.proc: subprocess.Popen[bytes] | None = None
        self._has_run = False
        self._log_start = 0
        self.use_port(port)

    def use_port(self, port: int) -> None:
        """Listen on ``port`` (and on fresh side ports) from the next start on."""
        self.port = port
        self.log_path = self.workdir / f"{self.name}-{port}.log"
        self.side_ports: list[int] = []
        self.listen_argv = self.listen_arguments(port)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self) -> None:
        """Start the server (again) and wait until it listens.

        While another process holds the port, a first start moves to another
        free port (up to :data:`START_ATTEMPTS`); a restart keeps its port,
        which its clients know, and raises :class:`PortTaken`.
        """
        if self.proc is not None and self.proc.poll() is None:
            return
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                self._launch()
                self._wait_until_ready()
            except PortTaken as taken:
                if self._has_run:
                    raise PortTaken(f"{taken}; a restart keeps its port") from None
                if attempt == START_ATTEMPTS:
                    raise
                logger.info("%s; starting on another port", taken)
                self.use_port(free_port())
            else:
                self._has_run = True
                return

    def _launch(self) -> None:
        self._log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv + self.listen_argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )

    def _wait_until_ready(self) -> None:
        """Wait until this server's own process listens on its port: a
        connection alone may reach another process that took the port."""
        assert self.proc is not None
        deadline = time.monotonic() + START_TIMEOUT
        while not self._listening():
            if self.proc.poll() is not None:
                raise self._start_failure(f"exited with {self.proc.returncode}")
            if time.monotonic() > deadline:
                self.stop()
                raise self._start_failure(f"did not listen on {self.address} in time")
            time.sleep(0.005)

    def _listening(self) -> bool:
        """Whether this server's own process listens on each of its ports."""
        assert self.proc is not None
        ports = [self.port, *self.side_ports]
        return all(listens(self.proc.pid, self.host, port) for port in ports)

    def _start_failure(self, what: str) -> RuntimeError:
        """:class:`PortTaken` if the server found its port held (its log
        says so, or another listener holds it now), else ``what`` happened."""
        with open(self.log_path, "rb") as log:
            log.seek(self._log_start)
            output = log.read().decode(errors="replace")
        held = [
            port for port in (self.port, *self.side_ports) if listening_sockets(port)
        ]
        if PORT_IN_USE in output or held:
            ports = ", ".join(map(str, held or (self.port, *self.side_ports)))
            return PortTaken(f"port {ports} of {self.name} is taken by another process")
        return RuntimeError(f"{self.name} {what}: {output[-2000:]}")

    def pause(self) -> None:
        """Stall the server (SIGSTOP) and wait until the kernel has stopped
        every thread of it: ``kill()`` returns once the signal is queued, and
        until one of its threads takes it, the others still answer clients."""
        assert self.proc is not None, f"{self} is not running"
        self.proc.send_signal(signal.SIGSTOP)
        deadline = time.monotonic() + START_TIMEOUT
        while not _all_threads_stopped(self.proc.pid):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self} did not stop in time")
            time.sleep(0.001)

    def resume(self) -> None:
        """Let a server :meth:`pause` stalled go on (SIGCONT)."""
        assert self.proc is not None, f"{self} is not running"
        self.proc.send_signal(signal.SIGCONT)

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


def _all_threads_stopped(pid: int) -> bool:
    """Whether every thread of process ``pid`` is in the stopped state."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:  # the thread ended since the listing
            continue
        if stat.rpartition(")")[2].split()[0] not in ("T", "t"):
            return False
    return True


class MissingBinary(RuntimeError):
    """The server's executable is not installed."""


def find_binary(binary: str) -> str:
    """The path of ``binary`` on PATH; MissingBinary, saying how to install it, if none."""
    path = shutil.which(binary)
    if path is None:
        raise MissingBinary(
            f"{binary} is not installed (or not on PATH); the test command "
            f"installs it: apt-get install {binary}"
        )
    return path
