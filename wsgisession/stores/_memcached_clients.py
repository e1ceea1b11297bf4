"""The pymemcache clients of a MemcachedStore's servers: how they are made
(values as bytes, the kernel's reply timeouts), how many a process has
made (:class:`Slots`), and what a server that refuses a new connection is
reported as.

An exception raised asynchronously (a signal handler's, such as a
``SIGALRM`` request timeout, or one sent with ``PyThreadState_SetAsyncExc``)
can land after the pool handed a client over and before the ``try`` that
gives it back. The client is then dropped, never given back: as Python
frees it, :meth:`PooledClient.__del__` frees its slot, where it was lost
for the life of the process (after :data:`~._memcached_servers.MAX_CONNECTIONS`
such losses every command waited and failed). Nothing is added to a
command's path: the client's own end does the work.
"""

from __future__ import annotations

import _socket
import socket
import threading
from collections import deque
from typing import Any

from pymemcache.client.base import Client  # type: ignore[import-untyped]

from ._kernel_timeouts import set_kernel_timeouts, timeval

__all__ = [
    "LOST_RECHECK",
    "REFUSED",
    "BytesSerde",
    "KernelTimeoutSockets",
    "PooledClient",
    "ServerRefused",
    "Slots",
    "timeouts",
]

#: Why memcached answers a new connection's first command with ``ERROR``
#: and closes it: it holds as many connections as its ``-c`` allows.
REFUSED = "memcached refused the connection: too many open connections (its -c limit)"


#: Seconds between the looks of a command waiting for a connection at the
#: slots dropped clients freed: a finalizer that found the lock taken could
#: wake no one (see :meth:`Slots.lost`). One waiter at a time looks.
LOST_RECHECK = 0.05


class ServerRefused(ConnectionError):
    """memcached refused a new connection. Past its ``-c`` it sends ``ERROR
    Too many open connections`` and closes, which pymemcache reads as the
    reply to the first command: ``MemcacheUnknownCommandError: b'gets'``."""


class Slots:
    """The clients one process has made to one server, in use or idle, and
    the lock and condition of the commands waiting for one to come back. A
    forked child counts its own (its parent's threads are not in it)."""

    __slots__ = ("_lost", "_made", "_watched", "lock", "returned")

    def __init__(self) -> None:
        self._made = 0
        # A mark per client dropped, left by its finalizer, which may not
        # wait for the lock: a deque's append is atomic. Never emptied: a
        # step that pops a mark and then lowers the count could be cut in
        # two by a signal. Clients are dropped only by such interrupts
        # (and with their store, or a forked child's copy of its pool).
        self._lost: deque[None] = deque()
        # A C lock, entered and left by ``with`` with no point between its
        # acquire and the block (Condition's own __enter__ is Python's).
        self.lock = threading.Lock()
        self.returned = threading.Condition(self.lock)
        self._watched = False  # a waiter looks at _lost every LOST_RECHECK s

    @property
    def made(self) -> int:
        """Clients made and not dropped."""
        return self._made - len(self._lost)

    def count_one(self, client: PooledClient) -> None:
        """Count ``client``, just made. Call with :attr:`lock` held; no point
        for a signal between telling it where it counts and counting it."""
        client.wsgisession_slots = self
        self._made += 1

    def lost(self) -> None:
        """One client counted here was dropped without being given back:
        its slot is free. Run by a finalizer, perhaps in a thread that holds
        :attr:`lock`: never waits for it, so wakes a waiting command only
        if it is free; else the waiter that watches (:meth:`wait`) sees the
        slot within :data:`LOST_RECHECK` seconds."""
        self._lost.append(None)
        if self.lock.acquire(blocking=False):
            try:
                self.returned.notify()
            finally:
                self.lock.release()

    def wait(self, seconds: float) -> None:
        """Wait, with :attr:`lock` held, up to ``seconds`` for a client to come
        back. The first waiter also wakes every :data:`LOST_RECHECK` seconds,
        its caller then looking at :attr:`made` again: the finalizer of a
        dropped client cannot always wake one. The others sleep."""
        if self._watched:
            self.returned.wait(seconds)
            return
        try:
            self._watched = True
            self.returned.wait(min(seconds, LOST_RECHECK))
        finally:
            self._watched = False

    def left(self, waiting: int) -> None:
        """A command leaves the wait, ``waiting`` others still in it (with
        :attr:`lock` held): one of them is woken to watch if none does."""
        if waiting and not self._watched:
            self.returned.notify()


class PooledClient(Client):  # type: ignore[misc]
    """A pymemcache client counted in the :class:`Slots` it is given (set
    with no point for a signal between it and the count's increment): one
    freed without coming back to its pool frees its slot."""

    wsgisession_slots: Slots | None = None

    def __del__(self) -> None:
        slots = self.wsgisession_slots
        if slots is not None:
            slots.lost()
        if getattr(self, "sock", None) is not None:  # None: made, never used
            self.close()


class BytesSerde:
    """Values travel as the bytes they are: nothing is pickled, flags stay 0."""

    def serialize(self, key: bytes, value: bytes) -> tuple[bytes, int]:
        return value, 0

    def deserialize(self, key: bytes, value: bytes, flags: int) -> bytes:
        return value


class KernelTimeoutSockets:
    """The socket module pymemcache is given: its sockets wait at most
    ``timeout`` for the server by the kernel's send and receive timeouts
    (see :mod:`._kernel_timeouts`).

    pymemcache is then told no timeout, so Python leaves the connected
    socket blocking and calls ``send`` and ``recv`` without a ``poll``
    first. A timeout shows as ``BlockingIOError`` (``EAGAIN``), which
    :meth:`.Server.run` reports as ``TimeoutError``.
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


def timeouts(kernel: KernelTimeoutSockets | None, timeout: float) -> dict[str, Any]:
    """pymemcache's timeout arguments for a new client: the kernel's timeouts
    on the system's sockets, else Python's. gevent and eventlet replace
    ``socket.socket`` (looked up now: they may patch after this module was
    imported) with sockets that wait for the server in their event loop,
    which the kernel's timeouts never end: a stalled server hung every
    request that reached it for good."""
    if kernel is not None and issubclass(socket.socket, _socket.socket):
        return {"timeout": None, "socket_module": kernel}
    return {"timeout": timeout}
