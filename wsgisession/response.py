"""The response side of one request: when to save, and which cookie to send.

PEP 3333 lets a middleware hold the headers back until the first body chunk
is ready. wsgisession uses that: the app's ``start_response`` is recorded,
and the real one is called only once the body is known to be complete (or,
for a streamed body, when its first chunk must go out). So, in the common
case, the session is saved before any header leaves: a failed save can
still delete the cookie, an exception in the body saves nothing, and a
write made after ``start_response`` is kept.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from . import saving
from .cookies import (
    cookie_values,
    deleting_cookie,
    is_secure,
    merge_vary,
    session_cookie,
)
from .errors import SessionInterrupted
from .session import Session

if TYPE_CHECKING:
    from .middleware import SessionMiddleware

logger = logging.getLogger(__name__)

Headers = list[tuple[str, str]]
StartResponse = Callable[..., Callable[[bytes], Any]]
_END: Any = object()


class ResponseHook:
    """The state of one request/response pair as it passes the middleware."""

    # Defaults on the class: a request that never touches its session sets
    # only what __init__ and start_response set.
    session: Session
    server_write: Callable[[bytes], Any] | None = None
    status: str | None = None
    headers: Headers = []  # noqa: RUF012 - replaced, never mutated
    exc_info: Any = None
    had_cookie = False
    saved = False
    failed = False

    def __init__(
        self,
        middleware: SessionMiddleware,
        environ: dict[str, Any],
        start_response: StartResponse,
    ) -> None:
        self.middleware = middleware
        self.environ = environ
        self.server_start_response = start_response

    def read_key(self) -> str | None:
        """The session key the request's cookie offers (first well-formed one)."""
        name = self.middleware.settings.cookie_name
        values = cookie_values(self.environ.get("HTTP_COOKIE"), name)
        self.had_cookie = bool(values)
        is_valid = self.middleware.store.is_valid_key
        return next((value for value in values if is_valid(value)), None)

    def start_response(
        self, status: str, headers: Headers, exc_info: Any = None
    ) -> Callable[[bytes], Any]:
        if exc_info is not None and self.server_write is not None:
            raise exc_info[1].with_traceback(exc_info[2])
        self.status, self.headers, self.exc_info = status, headers, exc_info
        return self.write

    def write(self, data: bytes) -> Any:
        """The legacy ``write()`` callable: headers must go out first."""
        if self.server_write is None:
            self.send_headers(final=False)
        assert self.server_write is not None
        return self.server_write(data)

    def respond(self, result: Iterable[bytes]) -> Iterable[bytes]:
        """Wrap the app's result; a list or tuple is already complete.

        A generator app calls ``start_response`` only once iterated, so
        anything but a list or tuple is wrapped, whatever the status.
        """
        if isinstance(result, (list, tuple)) or self._is_file_wrapper(result):
            try:
                self.complete()
            finally:
                self.session.release_lock()
            return result
        return Body(self, result)

    def _is_file_wrapper(self, result: object) -> bool:
        """A server's file wrapper runs no app code; keep it so sendfile still works."""
        wrapper = self.environ.get("wsgi.file_wrapper")
        return isinstance(wrapper, type) and isinstance(result, wrapper)

    # -- decisions -----------------------------------------------------------

    def complete(self) -> None:
        """The body ended without error: save, then let the headers go."""
        if self.status is None:
            return  # the app never called start_response: the server will say so
        if self.server_write is None:
            self.send_headers(final=True)
        else:
            self.save_late()

    def send_headers(self, *, final: bool) -> None:
        assert self.status is not None
        headers = self.headers
        session = self.session
        settings = self.middleware.settings
        if session.accessed or session.modified or settings.save_every_request:
            cookies = self.session_cookies(session, final)
            if session.accessed:
                headers = headers + cookies
                merge_vary(headers)
        self.server_write = self.server_start_response(
            self.status, headers, self.exc_info
        )

    def session_cookies(self, session: Session, final: bool) -> Headers:
        """The ``Set-Cookie`` headers this response needs, saving first when ``final``."""
        settings = self.middleware.settings
        if not session.accessed:
            if session.session_key is None:
                return []
            session.load()  # so that emptiness is judged after the load
        session.detect_changes()
        secure = is_secure(settings, self.environ)
        if session.is_empty() and self.had_cookie:
            return [deleting_cookie(settings, secure)]
        if not self.should_save(session):
            return []
        if final or self.middleware.store.client_side:
            if not self.save(session):
                return [deleting_cookie(settings, secure)]
        else:
            session.reserve_key()
        key = session.session_key
        assert key is not None
        return [session_cookie(settings, key, session.cookie_max_age(), secure)]

    def should_save(self, session: Session) -> bool:
        assert self.status is not None
        if int(self.status[:3]) >= 500 or session.is_empty():
            return False
        return session.modified or self.middleware.settings.save_every_request

    def save(self, session: Session) -> bool:
        """Save; False if another request deleted the session meanwhile."""
        self.saved = True
        try:  # every caller has just run detect_changes()
            saving.save(session, detect=False)
        except SessionInterrupted:
            logger.warning(
                "session deleted by a concurrent request (a logout in another tab?); "
                "this request's changes were dropped and its cookie deleted"
            )
            return False
        return True

    def save_late(self) -> None:
        """Save what changed after the headers went out (streamed bodies, ``close()``)."""
        session = self.session
        if self.failed or not session.accessed:
            return
        session.detect_changes()
        pending = (
            session.has_unsaved_changes() if self.saved else self.should_save(session)
        )
        if not pending or not self.should_save(session):
            return
        if self.middleware.store.client_side or session.session_key is None:
            logger.warning(
                "session changed after the response headers were sent; a %s cannot carry "
                "the change, so it was not saved",
                "cookie store" if self.middleware.store.client_side else "new session",
            )
            return
        self.save(session)

    def close(self) -> None:
        """The server closed the response: save anything left, release the lock."""
        try:
            if not self.failed and self.server_write is not None:
                self.save_late()
        finally:
            self.session.release_lock()


class Body:
    """The app's body, one chunk behind, so the end is seen before the last send."""

    def __init__(self, hook: ResponseHook, iterable: Iterable[bytes]) -> None:
        self.hook = hook
        self.iterable = iterable

    def __iter__(self) -> Iterator[bytes]:
        hook = self.hook
        try:
            iterator = iter(self.iterable)
            pending = next(iterator, _END)
            following = _END if pending is _END else next(iterator, _END)
        except BaseException:
            hook.failed = True
            raise
        while following is not _END:
            if hook.server_write is None:
                hook.send_headers(final=False)
            yield pending
            pending = following
            try:
                following = next(iterator, _END)
            except BaseException:
                hook.failed = True
                raise
        hook.complete()
        if pending is not _END:
            yield pending

    def close(self) -> None:
        try:
            close = getattr(self.iterable, "close", None)
            if close is not None:
                close()
        finally:
            self.hook.close()
