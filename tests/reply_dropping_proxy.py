"""A TCP proxy in front of a real server that loses one reply on purpose:
the command ran on the server, and the connection closes before its
answer reaches the client (a proxy or a network that cut it)."""

from __future__ import annotations

import socket
import threading


class ReplyDroppingProxy:
    """Forwards TCP both ways; when armed, cuts the connection that sent a
    chunk holding every one of ``markers`` once the server has answered it,
    dropping the answer. ``reply_end`` marks where that answer ends (a
    protocol that answers in several chunks: PostgreSQL's ReadyForQuery);
    None: its first chunk."""

    def __init__(
        self,
        target: tuple[str, int],
        markers: tuple[bytes, ...],
        reply_end: bytes | None = None,
        *,
        request_too: bool = False,
    ) -> None:
        self.target = target
        #: Whether the armed chunk itself is dropped (the command never runs).
        self.request_too = request_too
        self.markers = markers
        self.reply_end = reply_end
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.armed = threading.Event()
        self.dropped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self._refused():
                client.close()
                continue
            server = socket.create_connection(self.target)
            cut = threading.Event()
            for pump, src, dst in (
                (self._up, client, server),
                (self._down, server, client),
            ):
                threading.Thread(target=pump, args=(src, dst, cut), daemon=True).start()

    def _refused(self) -> bool:
        """Whether a new client is turned away (a subclass's server gone)."""
        return False

    def _up(self, src: socket.socket, dst: socket.socket, cut: threading.Event) -> None:
        try:
            while data := src.recv(65536):
                if self.armed.is_set() and all(m in data for m in self.markers):
                    self.armed.clear()
                    if self.request_too:
                        self.dropped.set()  # first: the client sees the cut at once
                        _cut_off(src, dst)
                        return
                    cut.set()
                dst.sendall(data)
        except OSError:
            pass

    def _down(
        self, src: socket.socket, dst: socket.socket, cut: threading.Event
    ) -> None:
        try:
            while data := src.recv(65536):
                if cut.is_set():  # the reply: the command ran; it never arrives
                    if self.reply_end is not None and self.reply_end not in data:
                        continue
                    self.dropped.set()  # first: the client sees the cut at once
                    _cut_off(dst, src)
                    return
                dst.sendall(data)
        except OSError:
            pass

    def close(self) -> None:
        self.listener.close()


def _cut_off(*sockets: socket.socket) -> None:
    """Shut both ways and close each of ``sockets``."""
    for sock in sockets:
        sock.shutdown(socket.SHUT_RDWR)
        sock.close()
