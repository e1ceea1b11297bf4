"""The app's body as the middleware passes it on, for a body that is not a list.

A body of declared length (``Content-Length``) is complete once the app
has produced it: it is passed one chunk behind, so that the end is seen
before the last chunk goes out, and the session is saved while the client
still waits for it. A redirect's body is held back whole: a browser follows
one as soon as it has the headers, so the save must be done before they
leave. Any other body may be a stream that waits between chunks
(server-sent events, long polls): each chunk goes out as soon as the app
yields it, and the save comes after the last one, before the server ends
the response (the client cannot tell the end of a body of unknown length
before then either).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

__all__ = ["Body"]

_END: Any = object()


class Sending(Protocol):
    """What a body needs of its response (a :class:`~wsgisession.response.Response`)."""

    server_write: Callable[[bytes], Any] | None
    status: str | None
    headers: list[tuple[str, str]]
    failed: bool
    #: The app has yielded a non-empty chunk (held back here, maybe).
    body_begun: bool
    #: The chunks held back here: the app's ``write()`` sends them first.
    held: list[bytes]

    def send_headers(self, final: bool, touched: bool = False) -> None: ...

    def complete(self) -> None: ...

    def close(self) -> None: ...


def streams(status: str | None, headers: list[tuple[str, str]]) -> bool:
    """Whether a body may be a stream: its length unknown, and no redirect
    (a browser follows one as soon as it has the headers)."""
    if status is None or status[:1] == "3":
        return False
    return not any(name.lower() == "content-length" for name, _ in headers)


def _taken(held: list[bytes]) -> list[bytes]:
    """The chunks of ``held``, which is emptied (so that a ``write()`` the
    app makes meanwhile does not send them again)."""
    chunks = held.copy()
    held.clear()
    return chunks


class Body:
    """The app's body, passed on so that the session is saved before the end."""

    def __init__(self, response: Sending, iterable: Iterable[bytes]) -> None:
        self.response = response
        self.iterable = iterable

    def __iter__(self) -> Iterator[bytes]:
        response = self.response
        try:
            iterator = iter(self.iterable)
            pending = next(iterator, _END)
            while pending == b"" and response.status is None:
                # Empty chunks before start_response carry nothing, and no
                # server takes a chunk before its headers: the first chunk
                # after them says whether the body streams.
                pending = next(iterator, _END)
        except BaseException:
            response.failed = True
            raise
        if pending is not _END and streams(response.status, response.headers):
            # Outside the try: a server that stops iterating (the client went
            # away) is no failure of the app; close() still saves.
            yield from self._streamed(iterator, pending)
            return
        # A redirect is held back whole, any other body one chunk behind.
        whole = response.status is not None and response.status[:1] == "3"
        held = response.held = []
        chunk = pending
        while chunk is not _END:
            if held and not whole:
                if response.server_write is None:
                    response.send_headers(False)
                yield from _taken(held)
            held.append(chunk)
            if chunk:  # for the app, its headers went out
                response.body_begun = True
            chunk = self._next(iterator)
        response.complete()
        yield from _taken(held)

    def _streamed(self, iterator: Iterator[bytes], chunk: bytes) -> Iterator[bytes]:
        """Each chunk as soon as the app yields it; the save after the last."""
        response = self.response
        while chunk is not _END:
            if response.server_write is None:
                response.send_headers(False)
            yield chunk
            chunk = self._next(iterator)
        response.complete()

    def _next(self, iterator: Iterator[bytes]) -> Any:
        try:
            return next(iterator, _END)
        except BaseException:
            self.response.failed = True
            raise

    def close(self) -> None:
        try:
            close = getattr(self.iterable, "close", None)
            if close is not None:
                try:
                    close()
                except BaseException:  # the app's code failed: save nothing
                    self.response.failed = True
                    raise
        finally:
            self.response.close()
