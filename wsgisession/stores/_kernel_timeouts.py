"""Send and receive timeouts kept by the kernel (``SO_SNDTIMEO``, ``SO_RCVTIMEO``).

Python's own socket timeout makes the socket non-blocking and polls it
before every send and every receive: two system calls more for each
command to a server. With the kernel's timeouts the socket stays blocking,
each call waits in the kernel at most the timeout, and a timeout shows as
``BlockingIOError`` (``EAGAIN``). The green sockets of gevent and eventlet
wait in their event loop, never in the kernel, which then never ends the
wait: those keep Python's timeout.
"""

from __future__ import annotations

import _socket
import socket
import struct
import sys

__all__ = ["KERNEL_TIMEOUTS", "set_kernel_timeouts", "system_socket", "timeval"]

#: Whether the kernel's socket timeouts take a ``struct timeval`` of two
#: longs (Linux, the BSDs, macOS); elsewhere Python's timeout is used.
KERNEL_TIMEOUTS = sys.platform != "win32" and hasattr(socket, "SO_RCVTIMEO")


def timeval(timeout: float) -> bytes:
    """``timeout`` (seconds) as the ``struct timeval`` the two options take."""
    seconds = int(timeout)
    return struct.pack("ll", seconds, round((timeout - seconds) * 1_000_000))


def system_socket(sock: object) -> bool:
    """Whether ``sock`` is the system's socket, not a green one (gevent's and
    eventlet's wrap one, and are no subclass of it)."""
    return isinstance(sock, _socket.socket)


def set_kernel_timeouts(sock: socket.socket, packed: bytes) -> None:
    """Give ``sock`` the send and receive timeout ``packed`` (:func:`timeval`)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, packed)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, packed)
