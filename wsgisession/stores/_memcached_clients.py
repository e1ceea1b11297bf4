"""The pymemcache clients of a MemcachedStore's servers: how they are made
(values as bytes, the kernel's reply timeouts), and what a server that
refuses a new connection is reported as."""

from __future__ import annotations

import _socket
import socket
from typing import Any

from ._kernel_timeouts import set_kernel_timeouts, timeval

__all__ = [
    "REFUSED",
    "BytesSerde",
    "KernelTimeoutSockets",
    "ServerRefused",
    "timeouts",
]

#: Why memcached answers a new connection's first command with ``ERROR``
#: and closes it: it holds as many connections as its ``-c`` allows.
REFUSED = "memcached refused the connection: too many open connections (its -c limit)"


class ServerRefused(ConnectionError):
    """memcached refused a new connection. Past its ``-c`` it sends ``ERROR
    Too many open connections`` and closes, which pymemcache reads as the
    reply to the first command: ``MemcacheUnknownCommandError: b'gets'``."""


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
