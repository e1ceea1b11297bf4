"""The connection pool of a client RedisStore makes: redis-py's blocking
pool, made safe against exceptions that arrive between redis-py's steps.

A signal handler's ``KeyboardInterrupt`` or ``SystemExit``, a
``gevent.Timeout`` or ``eventlet.Timeout`` around a request, or an
exception a server sends a thread with ``PyThreadState_SetAsyncExc`` can
land anywhere in Python code. redis-py cleans up after one raised while it
sends or reads, not after one raised in between:

* after a command went out and before its reply was read, the connection
  went back to the pool with the reply still coming, and the next command
  on it (another request's) read that reply as its own: another session's
  record, or a lock's answer. A connection here counts the replies the
  server owes it (:class:`Accounted`); one that is owed any is closed as
  it comes back, not kept.
* after a connection left the pool's queue and before redis-py's
  ``try``, it never went back: every such interrupt lost one of the pool's
  slots for good, and once all were lost every command waited the pool's
  timeout and failed. The queue (:class:`_Slots`) remembers what each
  thread (each greenlet, under gevent or eventlet) took and has not put
  back, moving a connection between itself and that record in one C call
  (no point for a signal in between); :func:`reclaim`, called as such an
  exception leaves the store (twice if a second one lands as the first
  call begins), gives it back in one C call too, to the next taker, which
  closes it first: closing each there, in Python code, lost every one a
  second interrupt kept from the queue. A finalizer on the connection,
  as the memcached store's pool has, would never run here: redis-py's
  pool keeps every connection it made (``_connections``), and a slot not
  connected yet is a ``None`` in the queue.

Its plain TCP and Unix socket connections wait for the server by the
kernel's timeouts (:class:`KernelTimeouts`): no ``poll`` before each send
and each receive.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from itertools import chain
from typing import Any

import redis
from redis.exceptions import ResponseError

from ._kernel_timeouts import (
    KERNEL_TIMEOUTS,
    set_kernel_timeouts,
    system_socket,
    timeval,
)

__all__ = [
    "POOL_SIZE",
    "POOL_WAIT",
    "Accounted",
    "KernelTimeouts",
    "Pool",
    "let_go",
    "reclaim",
]

#: Connections the store's pool opens at most (per node of a cluster); more
#: threads than this wait for a free one instead of failing at once (redis-py
#: 8's plain pool raises "Too many connections" past 100).
POOL_SIZE = 100
#: Seconds a thread waits for a free pooled connection before the store
#: raises ``StoreUnavailable``.
POOL_WAIT = 10.0


class Accounted:
    """Mixed into the pool's connection class: counts the replies the server
    owes the connection (commands sent, minus replies read)."""

    wsgisession_owed = 0
    _wsgisession_batch = 1  # commands in the next packed send (a pipeline's)

    def pack_commands(self, commands: Any) -> Any:
        commands = list(commands)
        self._wsgisession_batch = len(commands)
        return super().pack_commands(commands)  # type: ignore[misc]

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        # Counted before sending: a send cut short owes a reply too (or
        # disconnects, which settles the count).
        self.wsgisession_owed += self._wsgisession_batch
        self._wsgisession_batch = 1
        super().send_packed_command(command, check_health)  # type: ignore[misc]

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            response = super().read_response(*args, **kwargs)  # type: ignore[misc]
        except ResponseError:  # an error reply: read all the same
            self.wsgisession_owed -= 1
            raise
        self.wsgisession_owed -= 1
        return response

    def disconnect(self, *args: Any, **kwargs: Any) -> None:
        # Not settled until closed: one cut short (its parser's buffer gone,
        # its socket not) is closed again as it comes back to the pool.
        self.wsgisession_owed = -1
        super().disconnect(*args, **kwargs)  # type: ignore[misc]
        self.wsgisession_owed = 0


class KernelTimeouts:
    """Mixed into the pool's plain TCP and Unix socket connections: redis-py's
    ``socket_timeout`` is kept by the kernel on the connected socket (see
    :mod:`._kernel_timeouts`), which redis-py then leaves blocking, with no
    ``poll`` before each send and receive. A green socket (gevent,
    eventlet) keeps Python's timeout. A timeout raises redis-py's
    ``TimeoutError``, as Python's does."""

    socket_timeout: float | None
    wsgisession_timeout: float | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.wsgisession_timeout = self.socket_timeout

    def _connect(self) -> Any:
        sock = super()._connect()  # type: ignore[misc]
        timeout = self.wsgisession_timeout
        kernel = timeout is not None and system_socket(sock)
        if kernel:
            assert timeout is not None
            set_kernel_timeouts(sock, timeval(timeout))
        # What redis-py's parser sets the socket back to after its own
        # non-blocking reads.
        self.socket_timeout = None if kernel else timeout
        sock.settimeout(self.socket_timeout)
        return sock

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        try:
            super().send_packed_command(command, check_health)  # type: ignore[misc]
        except redis.ConnectionError as exc:
            if isinstance(exc.__context__, BlockingIOError):
                raise redis.TimeoutError("Timeout writing to socket") from exc
            raise

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().read_response(*args, **kwargs)  # type: ignore[misc]
        except redis.ConnectionError as exc:
            if isinstance(exc.__context__, BlockingIOError):
                raise redis.TimeoutError("Timeout reading from socket") from exc
            raise


_POOLED: dict[type, type] = {}


def _pooled(connection_class: type) -> type:
    """``connection_class`` with :class:`Accounted` mixed in, and
    :class:`KernelTimeouts` unless its socket is TLS (made once)."""
    if issubclass(connection_class, Accounted):
        return connection_class
    made = _POOLED.get(connection_class)
    if made is None:
        mixins: tuple[type, ...] = (Accounted,)
        if KERNEL_TIMEOUTS and not issubclass(connection_class, redis.SSLConnection):
            mixins += (KernelTimeouts,)
        name = f"Accounted{connection_class.__name__}"
        made = _POOLED.setdefault(
            connection_class, type(name, (*mixins, connection_class), {})
        )
    return made


class _Slots:
    """The pool's queue of idle connections, last in first out (None: a slot
    not connected yet), which remembers what each thread took and has not
    put back: what of ``queue.LifoQueue`` redis-py's pool uses (not one of
    its subclasses: under gevent's monkey-patching ``queue.LifoQueue`` is
    gevent's, a queue with no lock).

    Nowhere between a connection leaving the queue and its taker's record
    of it (or leaving that record and coming back) may a signal's exception
    land, or the slot is lost: each move is one C call, in which Python
    checks for none. The lock is entered by ``with`` itself, never through
    a Condition's ``__enter__`` (Python code, where an exception landing
    after the acquire left the lock held: the thread's :meth:`reclaim`
    then waited for it for good, and so did every later command)."""

    def __init__(self, maxsize: int = 0) -> None:
        self.maxsize = maxsize
        self.queue: list[Any] = []
        self.mutex = threading.Lock()  # looked up now: gevent's if patched
        self.not_empty = threading.Condition(self.mutex)
        self.taken: dict[int, list[Any]] = {}
        # Connections reclaim() took back, closed by their next taker.
        self.reclaimed: list[Any] = []
        self._waiting = 0  # threads waiting for a slot: put() wakes one

    def qsize(self) -> int:
        """Idle connections and slots not connected yet."""
        return len(self.queue) + len(self.reclaimed)

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """Take the idle connection last put back; if none, wait up to
        ``timeout`` (if ``block``) or raise ``queue.Empty``."""
        with self.mutex:
            if not self.queue and not self.reclaimed:
                if not block:
                    raise queue.Empty
                self._wait_for_one(timeout)
            return self._get()

    def get_nowait(self) -> Any:
        return self.get(block=False)

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        """Put ``item`` back, never waiting: the pool holds no more items
        than its slots (``queue.Full`` past them, which ends the pool's
        filling of a new queue)."""
        with self.mutex:
            if 0 < self.maxsize <= len(self.queue):
                raise queue.Full
            self._put(item)
            if self._waiting:
                self.not_empty.notify()

    def put_nowait(self, item: Any) -> None:
        self.put(item, block=False)

    def _wait_for_one(self, timeout: float | None) -> None:
        """Wait, with :attr:`mutex` held, until an item is back; ``queue.Empty``
        after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self._waiting += 1
        try:
            while not self.queue and not self.reclaimed:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise queue.Empty
                self.not_empty.wait(left)
        finally:
            self._waiting -= 1

    # _get and _put run under the queue's mutex.
    def _get(self) -> Any:
        held = self.taken.setdefault(threading.get_ident(), [])
        if self.reclaimed:
            return self._get_reclaimed(held)
        held.extend(map(list.pop, (self.queue,)))  # queue to record: one C call
        return held[-1]

    def _get_reclaimed(self, held: list[Any]) -> Any:
        """Take a connection :meth:`reclaim` took back, closed first (a reply
        may be on its way to it): in the taker's record as it closes, which
        an interrupt meanwhile leaves to the taker's own reclaim."""
        held.extend(map(list.pop, (self.reclaimed,)))  # one C call
        connection = held[-1]
        if connection is not None:
            connection.disconnect()
        return connection

    def _put(self, item: Any) -> None:
        taker = threading.get_ident()
        held = self.taken.get(taker)
        if not held:
            self.queue.append(item)
            return
        held[-1] = item  # the record holds what comes back, then gives it
        self.queue.extend(map(list.pop, (held,)))  # record to queue: one C call
        if not held:
            del self.taken[taker]

    def reclaim(self) -> None:
        """Give what this thread took and did not return to the next takers,
        who close each first (see :meth:`_get_reclaimed`). All of it moves
        from the thread's record in one C call: a second interrupt, landing
        as this runs, finds it in one place or the other, never in neither
        (closing each here, in Python code, lost those not closed yet)."""
        taker = (threading.get_ident(),)
        with self.mutex:
            # record to reclaimed: one C call (the maps and chain are lazy)
            self.reclaimed.extend(
                chain.from_iterable(map(self.taken.pop, taker, ((),)))
            )
            if self._waiting:
                self.not_empty.notify(len(self.reclaimed))


class Pool(redis.BlockingConnectionPool):
    """redis-py's blocking pool, whose connections count the replies owed
    to them and whose queue knows who took what (see the module's text),
    and which lets go of its connections as :func:`let_go` says: redis-py's
    ``disconnect()`` also closes those in use, under their command, which
    then raised ValueError ("I/O operation on closed file") out of
    redis-py, not even a RedisError."""

    _let_go = 0  # let_go() calls so far: a connection taken before is closed

    def __init__(
        self, connection_class: type = redis.Connection, **kwargs: Any
    ) -> None:
        kwargs.setdefault("queue_class", _Slots)
        super().__init__(connection_class=_pooled(connection_class), **kwargs)  # type: ignore[no-untyped-call]

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        # The count before taking it: a new connection's handshake waits for
        # the server, and a let_go() meanwhile must close this one too.
        let_go = self._let_go
        connection = super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]
        connection.wsgisession_let_go = let_go
        return connection

    def release(self, connection: Any) -> None:
        if getattr(connection, "wsgisession_owed", 0):
            connection.disconnect()  # interrupted before a reply: never reused
        elif getattr(connection, "wsgisession_let_go", self._let_go) != self._let_go:
            connection.disconnect()  # taken before let_go(): not kept
        super().release(connection)  # type: ignore[no-untyped-call]

    def let_go(self) -> None:
        """Disconnect the idle connections (taken out while closed: no
        other thread starts a command on one), and those in use as their
        commands end."""
        self._let_go += 1
        self.disconnect_free_connections()

    def disconnect(self, inuse_connections: bool = True) -> None:
        """:meth:`let_go`: redis-py's closes the connections in use under
        their commands, and redis-py 6's RedisCluster calls it on every map
        refresh (later releases call :meth:`disconnect_free_connections`)."""
        self.let_go()

    def disconnect_free_connections(self, moving_address_src: Any = None) -> None:
        """Disconnect the idle connections, each taken out of the queue
        first. redis-py's closes them where they lie, and RedisCluster calls
        it on every node error and map refresh: a thread that took one
        meanwhile (a healthy master's) had its command cut short, and
        ValueError ("I/O operation on closed file") left redis-py."""
        idle: list[Any] = []
        with contextlib.suppress(queue.Empty):
            while True:
                idle.append(self.pool.get_nowait())
        for connection in idle:
            if connection is not None:  # None: a slot not connected yet
                connection.disconnect()
            self.pool.put_nowait(connection)


def let_go(pool: Any) -> None:
    """Close ``pool``'s connections, those in use as their commands end."""
    if isinstance(pool, Pool):
        pool.let_go()
    else:  # pragma: no cover - every pool of a client the store made is one
        pool.disconnect()


def reclaim(client: Any) -> None:
    """After an exception left a command of ``client``: put back in their
    pools the connections this thread took and never returned (only pools
    the store made know; a client passed in is left alone)."""
    manager = getattr(client, "nodes_manager", None)
    if manager is None:
        pools = [getattr(client, "connection_pool", None)]
    else:
        nodes = tuple(manager.nodes_cache.values())
        pools = [
            n.redis_connection.connection_pool for n in nodes if n.redis_connection
        ]
    for pool in pools:
        slots = getattr(pool, "pool", None)
        if isinstance(slots, _Slots):
            slots.reclaim()
