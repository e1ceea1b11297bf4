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

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

from pymemcache.exceptions import (  # type: ignore[import-untyped]
    MemcacheUnexpectedCloseError,
    MemcacheUnknownCommandError,
)

from ._kernel_timeouts import KERNEL_TIMEOUTS
from ._memcached_addresses import node_name, server_address
from ._memcached_clients import (
    REFUSED,
    BytesSerde,
    KernelTimeoutSockets,
    PooledClient,
    ServerRefused,
    Slots,
    timeouts,
)

__all__ = [
    "MAX_CONNECTIONS",
    "POOL_WAIT",
    "PoolExhausted",
    "Server",
    "ServerDown",
]

logger = logging.getLogger("wsgisession.stores.memcached")

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
        self.address = server_address(spec)
        self.timeout = timeout
        kernel = KernelTimeoutSockets(timeout) if KERNEL_TIMEOUTS else None

        def create() -> Any:
            return PooledClient(
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
        self._asked_at = 0.0  # when it was last taken (time.monotonic())
        self._connect_timeout = connect_timeout
        # Idle clients; deque's pop and append are atomic, so no lock is
        # needed. Clients connect on first use and after an error closed them.
        self._free: deque[Any] = deque()
        self._slots = Slots()  # clients made, in use or idle: MAX_CONNECTIONS at most
        self._waiting = 0  # commands waiting for one of them to come back
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
        self._slots, self._waiting = Slots(), 0  # the parent's threads are not here
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
        return node_name(self.address)

    @property
    def _longest_ask(self) -> float:
        """Seconds a request asking the server holds the asking lock at
        most: a wait for a connection, then up to three connections made
        and answers awaited (``update``'s ``gets`` and ``cas``, one of them
        once more on a new connection)."""
        return POOL_WAIT + 3 * (self._connect_timeout + self.timeout)

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
        asking = self._may_ask()
        if asking is not None:
            try:
                return self._run(command, name, *args)
            finally:
                asking.release()
        return self._run(command, name, *args)  # it answered meanwhile

    def _may_ask(self) -> threading.Lock | None:
        """For a server that failed lately: the asking lock if this caller
        is now the one that asks it (to release when done), None if the
        server answered meanwhile. :class:`ServerDown` if another caller
        is asking and has had no answer within :data:`ASKER_WAIT`.

        A lock held longer than any asker holds one was kept by an
        asynchronous exception between its acquire and its ``try``: this
        caller replaces it, else no command would reach the server again.
        """
        self._idle()  # a forked child's lock is its own
        asking = self._asking
        if asking.acquire(timeout=ASKER_WAIT):
            self._asked_at = time.monotonic()
            if self._down_until:  # not answered since: this caller asks
                return asking
            asking.release()
        elif self._down_until:
            if time.monotonic() - self._asked_at <= self._longest_ask:
                raise ServerDown(
                    f"it failed lately and another request is waiting for its "
                    f"answer (at most {self.timeout} s)"
                )
            logger.warning(
                "%r: a request's turn to ask it lasted past %.1f s: taken over "
                "(an interrupt as it began may have left it held)",
                self,
                self._longest_ask,
            )
            self._asking = threading.Lock()
            return self._may_ask()
        return None

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
        except BaseException as exc:  # noqa: BLE001 - raised again below
            client.close()
            self._give_back(client, generation)
            failure = self._failure(exc, reused)
            try:
                if failure is exc:
                    raise
                raise failure from exc
            finally:  # else a cycle (it, its traceback, this frame) kept
                del failure  # the client until a garbage collection
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
        A server that failed lately is asked as :meth:`run` asks it, once on
        entry: one request at a time, the others raise :class:`ServerDown`.
        """
        asking = self._may_ask() if self._down_until else None  # as run() asks
        try:
            yield from self._hold()
        finally:
            if asking is not None:
                asking.release()

    def _hold(self) -> Iterator[Callable[..., Any]]:
        """:meth:`held`, with no regard for an earlier failure."""
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
        except BaseException as exc:  # noqa: BLE001 - raised again below
            client.close()
            failure = self._failure(exc, reused)
            try:
                if failure is exc:
                    raise
                raise failure from exc
            finally:
                del failure  # no cycle through this frame (see _run)
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
        else the first to come back within :data:`POOL_WAIT` seconds.

        A client is counted only once made, and in the same step as it is
        told where it is counted: an interrupt while it is made costs no
        slot, one after it is made drops it, which frees its slot (see
        :class:`PooledClient`).
        """
        deadline = time.monotonic() + POOL_WAIT
        slots = self._slots
        with slots.lock:
            self._waiting += 1
            try:
                while True:
                    try:  # one may have come back since the caller looked
                        return self._free.pop()
                    except IndexError:
                        pass
                    if slots.made < MAX_CONNECTIONS:
                        client = self._create()
                        slots.count_one(client)
                        return client
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise PoolExhausted(
                            f"all {MAX_CONNECTIONS} connections of this process "
                            f"stayed in use for {POOL_WAIT} s"
                        )
                    slots.wait(left)
            finally:
                self._waiting -= 1
                slots.left(self._waiting)

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
        slots = self._slots
        with slots.lock:
            slots.returned.notify()

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
            slots = self._slots
            with slots.lock:
                slots.returned.notify_all()

    def __repr__(self) -> str:
        return f"<memcached server {self.spec}>"
