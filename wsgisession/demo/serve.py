"""Serving the demo: a threaded wsgiref server, and a clear word when it cannot listen."""

from __future__ import annotations

import errno
import socket
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from ..errors import SessionError

__all__ = ["ThreadingWSGIServer", "listen", "url"]


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    """wsgiref's server, one thread per request: a browser opens several at once."""

    daemon_threads = True


class ThreadingWSGIServer6(ThreadingWSGIServer):
    """The same on an IPv6 address (``--host ::1``)."""

    address_family = socket.AF_INET6


class QuietHandler(WSGIRequestHandler):
    """wsgiref's handler without a log line per request (the page says what happened)."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


def listen(host: str, port: int, app: Any) -> ThreadingWSGIServer:
    """A server bound to ``host:port``; SessionError saying how to fix a bind failure."""
    if not host.strip():  # wsgiref would take it for every address
        raise SessionError(
            "--host is empty, which would listen on every address of this "
            "machine; give 127.0.0.1 (the default), or 0.0.0.0 to mean that"
        )
    try:
        server = make_server(
            host,
            port,
            app,
            server_class=ThreadingWSGIServer6 if ":" in host else ThreadingWSGIServer,
            handler_class=QuietHandler,
        )
    except socket.gaierror as exc:
        raise SessionError(
            f"cannot listen on {host!r}: {exc.strerror}; give an address of this "
            "machine with --host, such as 127.0.0.1"
        ) from None
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise SessionError(
                f"port {port} on {host} is already in use; stop what uses it, or "
                "pick another with --port N (--port 0 picks a free one)"
            ) from None
        if exc.errno == errno.EACCES:
            raise SessionError(
                f"not allowed to listen on port {port}; use a port above 1023 "
                "with --port N"
            ) from None
        raise SessionError(
            f"cannot listen on {host}:{port}: {exc.strerror}; try another --host or --port"
        ) from None
    assert isinstance(server, ThreadingWSGIServer)
    return server


def url(host: str, port: int) -> str:
    """The demo's address for a browser (an IPv6 host in brackets)."""
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"
