"""The memcached servers of a MemcachedStore: addresses, client pools, health.

Each :class:`Server` keeps a pool of pymemcache clients, each used by one
thread at a time, with TCP_NODELAY and acknowledged writes. A pooled
connection that the server closed (a restart) fails on its next command;
the command then runs once more on a new connection, so a restart costs no
error and no socket poll before every command. The reply timeout is the
kernel's (``SO_RCVTIMEO``), not Python's socket timeout, which polls the
socket before every send and every receive: two system calls more per
command (Python's on the green sockets of gevent and eventlet, which wait
in their event loop, never in the kernel). A server that cannot be reached
is remembered as down for a few seconds, so that new sessions can be placed
elsewhere meanwhile; until it answers again, one request at a time asks it
and the others fail at once, so that a stalled server holds one thread for
its timeout, not every thread whose session lives there.
"""

from __future__ import annotations

import _socket
import os
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from pymemcache.client.base import (  # type: ignore[import-untyped]
    Client,
    normalize_server_spec,
)
from pymemcache.exceptions import (  # type: ignore[import-untyped]
    MemcacheUnexpectedCloseError,
)

from ..errors import ConfigError
from ._kernel_timeouts import KERNEL_TIMEOUTS, set_kernel_timeouts, timeval

__all__ = ["KEEP_IDLE", "Server", "ServerDown", "server_specs"]

#: How long a server that failed to answer counts as down for new sessions.
DOWN_FOR = 5.0  # seconds
#: How long a command waits for the one asking a server that failed (s).
ASKER_WAIT = 0.05
#: Idle connections kept per server (as many as the Redis store's pool
#: holds); more, opened for a burst of concurrent requests, are closed as
#: they come back, instead of staying open for as long as the process runs.
KEEP_IDLE = 100
# A host name, an IPv4 address, or an IPv6 address (brackets already removed).
_HOST = re.compile(r"[A-Za-z0-9._-]+|[0-9A-Fa-f:.]+(%[A-Za-z0-9._-]+)?")
# What a pooled connection that the server closed meanwhile raises.
_STALE = (MemcacheUnexpectedCloseError, ConnectionResetError, BrokenPipeError)


class ServerDown(ConnectionError):
    """A server that failed is being asked by another request whether it
    answers again: this request does not wait for it too."""


class _BytesSerde:
    """Values travel as the bytes they are: nothing is pickled, flags stay 0."""

    def serialize(self, key: bytes, value: bytes) -> tuple[bytes, int]:
        return value, 0

    def deserialize(self, key: bytes, value: bytes, flags: int) -> bytes:
        return value


class _KernelTimeoutSockets:
    """The socket module pymemcache is given: its sockets wait at most
    ``timeout`` for the server by the kernel's send and receive timeouts
    (see :mod:`._kernel_timeouts`).

    pymemcache is then told no timeout, so Python leaves the connected
    socket blocking and calls ``send`` and ``recv`` without a ``poll``
    first. A timeout shows as ``BlockingIOError`` (``EAGAIN``), which
    :meth:`Server.run` reports as ``TimeoutError``.
    """

    def __init__(self, timeout: float) -> None:
        self._timeval = timeval(timeout)

    def __getattr__(self, name: str) -> Any:
        return getattr(socket, name)

    def socket(self, *args: Any) -> socket.socket:
        sock = socket.socket(*args)
        set_kernel_timeouts(sock, self._timeval)
        return sock

    def __repr__(self) -> str:
        return f"<sockets with kernel timeouts {self._timeval!r}>"


def _timeouts(kernel: _KernelTimeoutSockets | None, timeout: float) -> dict[str, Any]:
    """pymemcache's timeout arguments for a new client: the kernel's timeouts
    on the system's sockets, else Python's. gevent and eventlet replace
    ``socket.socket`` (looked up now: they may patch after this module was
    imported) with sockets that wait for the server in their event loop,
    which the kernel's timeouts never end: a stalled server hung every
    request that reached it for good."""
    if kernel is not None and issubclass(socket.socket, _socket.socket):
        return {"timeout": None, "socket_module": kernel}
    return {"timeout": timeout}


class Server:
    """One memcached server and a pool of clients, each used by one thread at once."""

    def __init__(self, spec: str, connect_timeout: float, timeout: float) -> None:
        self.spec = spec
        try:
            self.address = normalize_server_spec(spec)
        except ValueError as exc:
            raise ConfigError(f"invalid memcached server {spec!r}: {exc}") from exc
        if isinstance(self.address, tuple) and not (
            _HOST.fullmatch(self.address[0]) and 0 < self.address[1] < 65536
        ):
            raise ConfigError(
                f"invalid memcached server {spec!r}: expected host:port, "
                "[ipv6]:port or unix:/path"
            )

        self.timeout = timeout
        kernel = _KernelTimeoutSockets(timeout) if KERNEL_TIMEOUTS else None

        def create() -> Any:
            return Client(
                self.address,
                serde=_BytesSerde(),
                connect_timeout=connect_timeout,
                no_delay=True,
                default_noreply=False,
                **_timeouts(kernel, timeout),
            )

        self._create = create
        #: When the server's last failure stops counting as down for new
        #: sessions; 0.0 once it has answered since (see :meth:`run`).
        self._down_until = 0.0
        self._asking = threading.Lock()  # held by the request that asks it
        # Idle clients; deque's pop and append are atomic, so no lock is
        # needed. Clients connect on first use and after an error closed them.
        self._free: deque[Any] = deque()
        self._pid = os.getpid()
        #: Counts close() calls: a client taken before one is closed as it
        #: comes back, rather than kept after close() said all were closed.
        self._generation = 0

    def _idle(self) -> deque[Any]:
        """The idle clients of this process. A forked child must not talk
        over its parent's sockets: it closes its copies of them first. Found
        by the process id, not by an ``os.register_at_fork`` hook, which a
        server forking from C (uWSGI without ``lazy-apps``) never runs."""
        if self._pid != os.getpid():
            self._forget_inherited()
        return self._free

    def _forget_inherited(self) -> None:
        """Close this process's copies of the parent's idle clients.

        The first threads of a new worker may get here together: the pool
        is replaced before the process id is noted, so a thread that finds
        the id its own never takes a parent's client, and the clients are
        popped (each closed once), not iterated, while others pop too.
        """
        inherited, self._free = self._free, deque()
        self._asking = threading.Lock()  # a parent's thread may have held it
        self._pid = os.getpid()
        while True:
            try:
                client = inherited.pop()
            except IndexError:
                return
            client.close()  # this process's descriptor only: no FIN sent

    @property
    def node(self) -> str:
        """The name pymemcache's HashClient hashes this server under."""
        if isinstance(self.address, tuple):
            host, port = self.address
            return f"{host}:{port}"
        return str(self.address)

    @property
    def down(self) -> bool:
        """Whether the server failed to answer in the last few seconds."""
        return self._down_until > time.monotonic()

    def run(self, command: str, name: str, *args: Any) -> Any:
        """Run a pymemcache ``command`` with an idle client (a new one if none
        is idle); a client that failed is closed, not kept. A pooled
        connection the server closed meanwhile (it restarted) fails on its
        first command, which then runs once more on a new connection.

        After a failure, until the server answers again, one command at a
        time is sent to it; the others wait a moment for its answer (a
        server that answers at once costs them nothing), then raise
        :class:`ServerDown`.
        """
        if not self._down_until:  # the usual case: it answered last time
            return self._run(command, name, *args)
        self._idle()  # a forked child's lock is its own
        if self._asking.acquire(timeout=ASKER_WAIT):
            try:
                if self._down_until:  # not answered since: this command asks
                    return self._run(command, name, *args)
            finally:
                self._asking.release()
        elif self._down_until:
            raise ServerDown(
                f"it failed lately and another request is waiting for its "
                f"answer (at most {self.timeout} s)"
            )
        return self._run(command, name, *args)  # it answered meanwhile

    def _run(self, command: str, name: str, *args: Any) -> Any:
        """:meth:`run`, with no regard for an earlier failure."""
        free, generation = self._idle(), self._generation
        try:
            client = free.pop()
        except IndexError:
            client = self._create()
        reused = client.sock is not None
        try:
            try:
                result = getattr(client, command)(name, *args)
            except _STALE:
                if not reused:
                    raise
                client.close()
                result = getattr(client, command)(name, *args)
        except BaseException as exc:
            client.close()
            if isinstance(exc, OSError | MemcacheUnexpectedCloseError):
                self._down_until = time.monotonic() + DOWN_FOR
            if isinstance(exc, BlockingIOError):  # the kernel's timeout
                raise TimeoutError(f"no answer within {self.timeout} s") from exc
            raise
        if generation == self._generation:
            free.append(client)
            if len(free) > KEEP_IDLE:  # a burst is over: not all kept
                _trim(free)
        else:  # close() ran meanwhile: not kept
            client.close()
        self._down_until = 0.0
        return result

    def close(self) -> None:
        """Close every idle connection, and those in use as their commands
        end; the next command opens a new one."""
        self._generation += 1
        free = self._idle()
        while free:
            try:
                free.pop().close()
            except IndexError:  # another thread took the last one
                break

    def __repr__(self) -> str:
        return f"<memcached server {self.spec}>"


def _trim(free: deque[Any]) -> None:
    """Close idle clients, the longest idle first, until :data:`KEEP_IDLE` are
    left. Threads returning clients at once each append, then trim: checking
    the count before appending let all of them append past it."""
    while len(free) > KEEP_IDLE:
        try:
            client = free.popleft()
        except IndexError:  # taken meanwhile
            return
        client.close()


def server_specs(servers: str | Sequence[str]) -> list[str]:
    """The server list of ``servers`` (a list or one whitespace-separated string)."""
    specs = servers.split() if isinstance(servers, str) else list(servers)
    if not specs:
        raise ConfigError("MemcachedStore needs at least one server")
    for spec in specs:
        if not isinstance(spec, str) or not spec.strip():
            raise ConfigError(f"invalid memcached server {spec!r}")
    if len(set(specs)) != len(specs):
        raise ConfigError(f"memcached servers listed twice: {specs!r}")
    return specs
