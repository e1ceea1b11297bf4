"""The response side of one request: when to save, and which cookie to send.

PEP 3333 lets a middleware hold the headers back until the first body chunk
is ready. wsgisession uses that: the app's ``start_response`` is recorded,
and the real one is called only once the body is known to be complete (or,
for a body of unknown length, with its first chunk: see :mod:`.body`). So, in the common
case, the session is saved before any header leaves: a failed save can
still delete the cookie, an exception in the body saves nothing, and a
write made after ``start_response`` is kept.

What the cookie does is decided by :func:`wsgisession.cookies.decide`;
this module loads, saves and sends what it says.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from .app_headers import check_app_headers, kept_headers
from .body import Body
from .cache_headers import add_session_headers
from .config import Settings
from .cookies import DELETE, NOTHING, SET, deleting_cookie, is_touched, session_cookie
from .errors import SessionInterrupted
from .idle_loads import load_unless_locked
from .late_save import save_late
from .request_scheme import auto_secure
from .response_setup import ResponseSetup
from .session import Session
from .session_factory import for_request

__all__ = ["Headers", "Response", "ResponseSetup", "StartResponse"]

logger = logging.getLogger(__name__)

Headers = list[tuple[str, str]]
StartResponse = Callable[..., Callable[[bytes], Any]]
#: The headers of a response whose app has not started it (never mutated).
_NO_HEADERS: Headers = []


def _close_quietly(result: Iterable[bytes]) -> None:
    """Close the app's result that a failed save keeps from the server (PEP
    3333 wants it closed); a failure to close is logged, not raised over the
    save's error."""
    close = getattr(result, "close", None)
    if close is not None:
        try:
            close()
        except Exception:
            logger.exception("closing the app's response after a failed save failed")


def _no_start_response(*args: Any) -> Callable[[bytes], Any]:
    raise AssertionError("a detached response never starts a response")


def _touched(session: Session, settings: Settings) -> bool:
    """:func:`is_touched`, or a value changed in place by an app that set
    ``accessed`` back to False (the change is saved all the same)."""
    return (
        is_touched(session.accessed, session.modified, settings)
        or session.detect_changes()
    )


class Response:
    """One request/response pair as it passes the middleware.

    Made per request by :func:`~wsgisession.handling.handle`, with the
    session it hands the app; :meth:`respond` wraps the app's result. An
    untouched session lets the app's headers through as they are (the fast
    path); otherwise the session is saved and the cookie set or deleted as
    :func:`~wsgisession.cookies.decide` says.
    """

    # No slots: a response's status, headers, exc_info and saved are these
    # class defaults until its app starts it (or it saves), so that
    # :func:`~wsgisession.handling.handle` sets fewer attributes.
    setup: ResponseSetup
    environ: dict[str, Any]
    server_start_response: StartResponse
    server_write: Callable[[bytes], Any] | None = None
    session: Session
    #: The request's ``Cookie`` header (None: none); its session parses it.
    cookie_header: str | None
    #: What the app passed to ``start_response`` (status None until then).
    status: str | None = None
    headers: Headers = _NO_HEADERS
    exc_info: Any = None
    saved: bool = False
    failed: bool = False
    #: A :class:`~wsgisession.body.Body` wraps the app's result (its
    #: ``close()`` runs app code), or the response is detached (its caller
    #: may finish it again): a save must keep watching the values for changes.
    may_save_again: bool = False
    #: Set by a :class:`~wsgisession.body.Body`: the app has yielded a
    #: non-empty chunk, so for the app its headers went out (unset: not yet).
    body_begun: bool
    #: The key of the ``Set-Cookie`` this response made, ``""`` for one
    #: that deletes the cookie (unset: none).
    sent_key: str
    #: Chunks the app yielded that a :class:`~wsgisession.body.Body` holds
    #: back (unset: no Body, or none yet).
    held: list[bytes]

    @classmethod
    def detached(cls, setup: ResponseSetup, environ: dict[str, Any]) -> Response:
        """A response for a request no middleware handles (Flask's test contexts).

        Its session reads the request's cookie; :meth:`finish` saves it and
        returns the ``Set-Cookie`` headers for the caller to send.
        """
        response = cls()  # the class defaults stand for the rest
        response.setup, response.environ = setup, environ
        response.server_start_response = _no_start_response
        response.may_save_again = True
        response.cookie_header = header = environ.get("HTTP_COOKIE")
        response.session = for_request(setup.new_session, header)
        response.session._serving = False  # no middleware serves it
        return response

    @property
    def had_cookie(self) -> bool:
        """Whether the request came with a session cookie the response may delete
        (known once the session loaded): not if none loaded and some values
        were never tried (the real one may be among those), nor by a page's
        subrequest (``Sec-Fetch-Mode`` other than ``navigate``: a fetch(), an
        image) that left the session as it found it: its cookie may be older
        than the one the browser holds by the time it answers (a login's
        ``cycle_key()`` in a parallel request, a streamed page's new session).
        The signed cookie store keeps deleting: its cookie is the session."""
        if self.cookie_header is None:
            return False
        session = self.session
        if not session._had_cookie:
            return False
        if session._untried and not session._offered_key_loaded:
            return False
        environ = self.environ  # no header or a navigation: the usual case first
        return (
            "HTTP_SEC_FETCH_MODE" not in environ
            or environ["HTTP_SEC_FETCH_MODE"] == "navigate"
            or session.modified
            or session._saved_by_app
            or self.setup.store.client_side
        )

    def _is_navigation(self) -> bool:
        """Whether the request is no page's subrequest (``Sec-Fetch-Mode``
        absent or ``navigate``). A subrequest whose session went meanwhile
        leaves the cookie alone: a parallel request of the page (a login's
        ``cycle_key()``) may have given the browser a newer cookie, which a
        deleting one arriving after it would drop."""
        mode = self.environ.get("HTTP_SEC_FETCH_MODE")
        return mode is None or mode == "navigate"

    def start_response(
        self, status: str, headers: Headers, exc_info: Any = None
    ) -> Callable[[bytes], Any]:
        if self.status is not None:  # started before (PEP 3333's rules)
            if self.server_write is not None or getattr(self, "body_begun", False):
                # Sent, or the app yielded a chunk: for it, the headers went
                # out. An error handler at work (werkzeug's debugger swallows
                # what this raises, then ends the body as if complete): save
                # nothing.
                self.failed = True
                if exc_info is not None:
                    try:
                        raise exc_info[1].with_traceback(exc_info[2])
                    finally:
                        exc_info = None  # no cycle through the traceback
                raise AssertionError(
                    "start_response() again after the headers went out"
                )
            if exc_info is None:
                # A fatal error, which every server refuses: taking the new
                # headers would hide the app's bug behind this middleware
                # only. The failed request saves nothing (as above).
                self.failed = True
                raise AssertionError("start_response() again without exc_info")
        self.status = status
        # A list as given (the app's own, every request); any other iterable
        # read once, here (kept_headers()).
        self.headers = headers if type(headers) is list else kept_headers(headers)
        self.exc_info = exc_info
        return self.write

    def write(self, data: bytes) -> Any:
        """The legacy ``write()`` callable: headers must go out first, then
        any chunk the app yielded before (held back by its Body)."""
        if self.server_write is None:
            self.send_headers(False)
        assert self.server_write is not None
        held = getattr(self, "held", None)
        while held:
            self.server_write(held.pop(0))
        return self.server_write(data)

    def respond(self, result: Iterable[bytes]) -> Iterable[bytes]:
        """Wrap the app's result; a list or tuple is already complete.

        A generator app calls ``start_response`` only once iterated, so
        anything but a list or tuple is wrapped, whatever the status.
        """
        session = self.session
        if isinstance(result, (list, tuple)) or self._is_file_wrapper(result):
            try:
                self.complete()
            except BaseException:  # the server never gets the result to close
                _close_quietly(result)
                raise
            finally:
                session._serving = False
                session.release_lock()
            return result
        self.may_save_again = True
        return Body(self, result)

    def _is_file_wrapper(self, result: object) -> bool:
        """A server's file wrapper runs no app code; keep it so sendfile still works."""
        wrapper = self.environ.get("wsgi.file_wrapper")
        return isinstance(wrapper, type) and isinstance(result, wrapper)

    def finish(self, status: str) -> Headers:
        """Save a detached response's session; the ``Set-Cookie`` headers to send."""
        self.status = status
        session = self.session
        if not _touched(session, self.setup.settings):
            return []
        return self.cookie_headers(True)

    # -- the cookie --------------------------------------------------------

    def complete(self) -> None:
        """The body ended without error: save, then let the headers go."""
        if self.status is None:
            return  # the app never called start_response: the server will say so
        if self.server_write is None:
            self.send_headers(True)
        else:
            save_late(self)

    def send_headers(self, final: bool, touched: bool = False) -> None:
        """Send the app's headers, with the session's cookie if it needs one.

        ``touched`` is for a caller that has just seen :func:`is_touched` say so.
        """
        assert self.status is not None
        headers = self.headers
        session = self.session
        # The body may still use the session once these are out (a streamed
        # page): a cache must not keep it for another visitor.
        streamed = not final and self.cookie_header is not None
        failed = self.failed  # an error handler restarted the response
        if not failed and (touched or _touched(session, self.setup.settings)):
            check_app_headers(self.status, headers)  # before the save
            accessed = session.accessed  # as the app left it (it may clear it)
            cookies = self.cookie_headers(final)
            if accessed or cookies or streamed:
                try:
                    headers = headers + cookies
                except TypeError:  # a tuple from the app (waitress takes one)
                    headers = [*headers, *cookies]
                private = bool(cookies) and self.setup.private
                add_session_headers(headers, private=private)
        elif streamed or (failed and session.accessed):
            headers = list(headers)
            add_session_headers(headers, private=False)
        self.server_write = self.server_start_response(
            self.status, headers, self.exc_info
        )
        self.exc_info = None  # PEP 3333: its traceback's frames hold this response

    def cookie_headers(self, final: bool) -> Headers:
        """The ``Set-Cookie`` headers this response needs, saving first when ``final``.

        A response whose headers go out before its body ends (``final``
        false) only reserves a new session's key; the save comes at the end.
        """
        session = self.session
        setup = self.setup
        settings = setup.settings
        if session._data is None:  # emptiness, and whether a cookie came, after it
            if session._load_failed or not (
                session.accessed or session.modified or session.offered_keys()
            ):  # the app's load failed (the cookie stays), or it never used it
                return []
            if session.accessed or session.modified:
                session.load()
            elif not load_unless_locked(session):  # held: the holder saves it
                return []
        changes = session._changes
        if changes is not None and changes.snapshots:  # else nothing to detect
            session.detect_changes()
        assert self.status is not None
        if not (session.modified or session._saved_by_app or setup.saves_unchanged):
            # decide_for() of a session left as it was (most reads), with no
            # call: no cookie unless it is empty (a cookie came: deleted).
            session.accessed = True
            record = session._record
            if record is not None and (record.key is not None or session._data):
                return []
        action = session._cookie_action(self, settings, self.status)
        if action is NOTHING:
            return []
        secure = setup.secure
        if secure is None:
            secure = auto_secure(self.environ)
        # The app's own save() with nothing changed since: its cookie, not a
        # second write.
        saved = session._saved_by_app and not session.has_unsaved_changes()
        if action is SET and not saved:
            if final or setup.store.client_side:
                # The request's last save (a complete body, nothing after it)
                # need not watch the values for later changes.
                if not self.save(not final or self.may_save_again):
                    return self.dropped_cookie(secure)
            else:
                session.reserve_key()
        if action is DELETE:
            self.sent_key = ""
            return [deleting_cookie(settings, secure)]
        record = session._record  # loaded above
        assert record is not None and record.key is not None
        self.sent_key = record.key
        if self.saved:  # Expires counts from this response's save
            max_age, now = record.max_age_at_save, record.saved_at
        elif saved:
            max_age, now = record.max_age_at_save, None
        else:
            max_age, now = session.cookie_max_age(), None
        return [
            session_cookie(settings, record.key, max_age, secure, now, setup.template)
        ]

    def dropped_cookie(self, secure: bool) -> Headers:
        """The cookie of a response whose save met its session deleted or
        moved: deleted, but left alone by a page's subrequest (see
        :meth:`_is_navigation`)."""
        if not self._is_navigation():
            return []
        self.sent_key = ""
        return [deleting_cookie(self.setup.settings, secure)]

    def save(self, watch: bool = True) -> bool:
        """Save; False if another request deleted (or moved) the session
        meanwhile: its changes are dropped.

        ``watch`` false: nothing of the request runs after this save (see
        :meth:`Session._save_loaded`).
        """
        self.saved = True
        if self.setup.size_first:  # before the store writes
            self.session.check_cookie_fits()
        try:  # every caller has just run detect_changes()
            self.session._save_loaded(watch)
        except SessionInterrupted:
            self.warn_dropped()
            return False
        sweeper = self.setup.sweeper
        if sweeper is not None:  # the time now, not the save's (see after_save)
            sweeper.after_save()
        return True

    def warn_dropped(self) -> None:
        """Say that a save met its session deleted or moved (SessionInterrupted):
        the request's changes are dropped."""
        sent = self.server_write is not None
        if sent:
            cookie = " (its headers had gone out)"
        elif self._is_navigation():
            cookie = " and its cookie deleted"
        else:
            cookie = " (a page's subrequest: its cookie left alone)"
        self.setup.warn_interrupted(
            "session deleted or moved by a concurrent request (a logout or "
            "login in another tab?); this request's changes were dropped%s",
            cookie,
        )
        if sent:  # nothing more to save: close() must not try again
            self.failed = True

    def close(self) -> None:
        """The server closed the response: save anything left, release the lock."""
        self.exc_info = None  # headers never sent (the client went away)
        try:
            if not self.failed and self.server_write is not None:
                save_late(self)
        finally:
            self.session._serving = False
            self.session.release_lock()

    def __repr__(self) -> str:
        sent = "sent" if self.server_write is not None else "held"
        return f"<Response {self.status or 'not started'}, headers {sent}>"
