"""The memcached servers of a MemcachedStore: addresses, client pools, health.

Each :class:`Server` keeps a pool of pymemcache clients, each used by one
thread at a time, with TCP_NODELAY and acknowledged writes. A process opens
at most :data:`MAX_CONNECTIONS` to a server; past them a command waits for
one to come back (:data:`POOL_WAIT` at most). The pool's usual path takes
no lock: an idle client is popped and appended back. A pooled
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

import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any

from pymemcache.client.base import (  # type: ignore[import-untyped]
    Client,
    normalize_server_spec,
)
from pymemcache.exceptions import (  # type: ignore[import-untyped]
    MemcacheUnexpectedCloseError,
    MemcacheUnknownCommandError,
)

from ..errors import ConfigError
from ._kernel_timeouts import KERNEL_TIMEOUTS
from ._memcached_clients import (
    REFUSED,
    BytesSerde,
    KernelTimeoutSockets,
    ServerRefused,
    timeouts,
)

__all__ = [
    "MAX_CONNECTIONS",
    "POOL_WAIT",
    "PoolExhausted",
    "Server",
    "ServerDown",
    "server_specs",
]

#: How long a server that failed to answer counts as down for new sessions.
DOWN_FOR = 5.0  # seconds
#: How long a command waits for the one asking a server that failed (s).
ASKER_WAIT = 0.05
#: Connections a process opens to one server at most, in use or idle (as
#: many as the Redis store's pool): more concurrent commands (a gevent
#: worker's thousand requests) wait for one to come back rather than open
#: more, which a memcached started with a low ``-c`` refused.
MAX_CONNECTIONS = 100
#: Seconds a command waits for one of them before ``StoreUnavailable`` (as
#: long as the Redis store's pool waits).
POOL_WAIT = 10.0
# A host name, an IPv4 address, or an IPv6 address (brackets already removed).
_HOST = re.compile(r"[A-Za-z0-9._-]+|[0-9A-Fa-f:.]+(%[A-Za-z0-9._-]+)?")
# What a pooled connection that the server closed meanwhile raises.
_STALE = (MemcacheUnexpectedCloseError, ConnectionResetError, BrokenPipeError)


class ServerDown(ConnectionError):
    """A server that failed is being asked by another request whether it
    answers again: this request does not wait for it too."""


class PoolExhausted(ConnectionError):
    """Every connection this process may open to the server stayed in use
    for :data:`POOL_WAIT` seconds."""


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
        kernel = KernelTimeoutSockets(timeout) if KERNEL_TIMEOUTS else None

        def create() -> Any:
            return Client(
                self.address,
                serde=BytesSerde(),
                connect_timeout=connect_timeout,
                no_delay=True,
                default_noreply=False,
                **timeouts(kernel, timeout),
            )

        self._create = create
        #: When the server's last failure stops counting as down for new
        #: sessions; 0.0 once it has answered since (see :meth:`run`).
        self._down_until = 0.0
        self._asking = threading.Lock()  # held by the request that asks it
        # Idle clients; deque's pop and append are atomic, so no lock is
        # needed. Clients connect on first use and after an error closed them.
        self._free: deque[Any] = deque()
        self._made = 0  # clients made, in use or idle: MAX_CONNECTIONS at most
        self._waiting = 0  # commands waiting for one of them to come back
        self._returned = threading.Condition(threading.Lock())
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
        self._made, self._waiting = 0, 0  # the parent's threads are not here
        self._returned = threading.Condition(threading.Lock())
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
        # The body of _run_on and _give_back, not calls to them: this runs
        # for every command, and two calls more cost 3 % of a save's work.
        free, generation = self._idle(), self._generation
        try:
            client = free.pop()
        except IndexError:
            client = self._take_new()
        reused = client.sock is not None
        try:
            try:
                result = getattr(client, command)(name, *args)
            except _STALE:
                if not reused:
                    raise
                client.close()
                reused = False
                result = getattr(client, command)(name, *args)
        except BaseException as exc:
            client.close()
            self._give_back(client, generation)
            failure = self._failure(exc, reused)
            if failure is exc:
                raise
            raise failure from exc
        if generation != self._generation:  # close() ran meanwhile: closed
            client.close()
        free.append(client)
        if self._waiting:
            self._wake()
        self._down_until = 0.0
        return result

    @contextmanager
    def held(self) -> Iterator[Callable[..., Any]]:
        """A ``run(command, name, *args)`` whose commands all go over one
        connection, taken once: ``update``'s ``gets`` and ``cas``, which,
        each waiting its turn for a connection, lost the compare-and-swap
        race to other requests again and again under :data:`MAX_CONNECTIONS`.
        """
        free, generation = self._idle(), self._generation
        try:
            client = free.pop()
        except IndexError:
            client = self._take_new()
        try:
            yield partial(self._run_on, client)
        finally:
            self._give_back(client, generation)

    def _run_on(self, client: Any, command: str, name: str, *args: Any) -> Any:
        """Run a pymemcache ``command`` with ``client``, once more on a new
        connection if its pooled one was closed by the server; a client
        that failed is closed (it reconnects on its next command)."""
        reused = client.sock is not None
        try:
            try:
                result = getattr(client, command)(name, *args)
            except _STALE:
                if not reused:
                    raise
                client.close()
                reused = False
                result = getattr(client, command)(name, *args)
        except BaseException as exc:
            client.close()
            failure = self._failure(exc, reused)
            if failure is exc:
                raise
            raise failure from exc
        self._down_until = 0.0
        return result

    def _failure(self, exc: BaseException, reused: bool) -> BaseException:
        """What a command's ``exc`` is reported as; the server counts as down
        after a failure to reach it, not after a refusal (it is up, but full)."""
        if isinstance(exc, MemcacheUnknownCommandError) and not reused:
            # Every command sent is one memcached knows: an ERROR as the
            # first reply on a new connection is its refusal of it.
            return ServerRefused(REFUSED)
        if isinstance(exc, OSError | MemcacheUnexpectedCloseError):
            self._down_until = time.monotonic() + DOWN_FOR
        if isinstance(exc, BlockingIOError):  # the kernel's timeout
            return TimeoutError(f"no answer within {self.timeout} s")
        return exc

    def _take_new(self) -> Any:
        """A new client while fewer than :data:`MAX_CONNECTIONS` are made,
        else the first to come back within :data:`POOL_WAIT` seconds."""
        deadline = time.monotonic() + POOL_WAIT
        with self._returned:
            self._waiting += 1
            try:
                while True:
                    try:  # one may have come back since the caller looked
                        return self._free.pop()
                    except IndexError:
                        pass
                    if self._made < MAX_CONNECTIONS:
                        self._made += 1
                        return self._create()
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise PoolExhausted(
                            f"all {MAX_CONNECTIONS} connections of this process "
                            f"stayed in use for {POOL_WAIT} s"
                        )
                    self._returned.wait(left)
            finally:
                self._waiting -= 1

    def _give_back(self, client: Any, generation: int) -> None:
        """Put ``client`` back among the idle ones (closed if :meth:`close`
        ran since it was taken), and wake a command waiting for one."""
        if generation != self._generation:
            client.close()
        self._free.append(client)
        if self._waiting:
            self._wake()

    def _wake(self) -> None:
        """Wake one command waiting for a connection to come back."""
        with self._returned:
            self._returned.notify()

    def close(self) -> None:
        """Close every idle connection, and those in use as their commands
        end; the next command opens a new one."""
        self._generation += 1
        free = self._idle()
        closed = []
        while free:
            try:
                client = free.pop()
            except IndexError:  # another thread took the last one
                break
            client.close()
            closed.append(client)
        free.extend(closed)  # closed clients: they reconnect when used
        if self._waiting:
            with self._returned:
                self._returned.notify_all()

    def __repr__(self) -> str:
        return f"<memcached server {self.spec}>"


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
