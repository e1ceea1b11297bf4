"""One request through the middleware: the session into the environ, the
app called, and the common result (a complete body, headers not sent yet)
settled at once; any other result goes to :meth:`.Response.respond`."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

from .app_headers import check_app_headers
from .cache_headers import add_session_headers, lengths_rule_out_caching_headers
from .cookies import SERVER_ERRORS_FROM, check_cookie_size, session_cookie
from .errors import SessionInterrupted
from .nesting import outer_session_serves
from .request_scheme import auto_secure
from .response import Response, ResponseSetup, StartResponse
from .session import Session
from .session_writes import refill

__all__ = ["Handled", "WSGIApp", "handle"]

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class Handled(Protocol):
    """What :func:`handle` reads of the middleware it is the ``__call__`` of."""

    app: WSGIApp
    _setup: ResponseSetup


def handle(
    middleware: Handled, environ: dict[str, Any], start_response: StartResponse
) -> Iterable[bytes]:
    """One request through ``middleware``, as its ``__call__`` (no call
    between them; a mounted app's inner middleware: see .nesting). A complete
    body with the headers not sent yet is settled here: an untouched session
    lets the app's headers through, a read adds ``Vary``, any other saves
    first; any other result goes to :meth:`Response.respond`."""
    setup = middleware._setup
    if (
        setup.environ_key in environ or setup.cookie_mark in environ
    ) and outer_session_serves(setup, environ):
        return middleware.app(environ, start_response)
    environ[setup.cookie_mark] = setup.environ_key
    # The class is called bare (it has no ``__init__``): a Python
    # ``__init__`` run through the class call cost every request about 0.8K
    # instructions more. Set before anything reads them: an instance's own
    # attribute is read faster than a class default (CPython specializes the
    # former); the rest are the class's defaults until set.
    response = Response()
    response.setup = setup
    response.environ = environ
    response.server_start_response = start_response
    response.server_write = None
    response.failed = False  # may_save_again: the class's, read off this path
    header = response.cookie_header = environ.get("HTTP_COOKIE")
    session = response.session = environ[setup.environ_key] = setup.new_session()
    session._key_source = header  # session_factory.for_request(), spelled out
    session.accessed = session.modified = False  # read faster as its own
    try:
        result = middleware.app(environ, response.start_response)
    except BaseException:
        session._serving = False
        session.release_lock()
        raise
    if (
        type(result) is not list
        or response.status is None
        or response.server_write is not None
    ):
        return response.respond(result)
    try:
        # is_touched(), spelled out: every request of the app comes here.
        if session.modified:
            _send_as_written(response, session, setup)
            return result
        if (
            not _settled_as_read(response, session, setup)
            if session.accessed
            else setup.save_every_request
            or (session._changes is not None and session.detect_changes())
        ):
            response.send_headers(True, True)
            return result
    finally:  # touched or not, or the detection raising: a lock may be held
        session._serving = False
        if setup.lock:  # else its release_lock() does nothing
            session.release_lock()
    response.server_write = start_response(
        response.status, response.headers, response.exc_info
    )
    response.exc_info = None  # see Response.send_headers
    return result


def _settled_as_read(
    response: Response, session: Session, setup: ResponseSetup
) -> bool:
    """Add ``Vary: Cookie`` to the headers of a response whose session was
    read and left as loaded (most reads), and say True; False if the
    response needs :meth:`Response.send_headers` (a save, or a cookie).
    :meth:`Response.cookie_headers`' first case, with no call of its own.
    """
    record = session._record
    if (
        record is None  # not loaded: cookie_headers loads it
        or session._data is None
        or session._changes is not None
        or session._saved_by_app
        or setup.saves_unchanged
        or (record.key is None and not session._data)
    ):
        return False
    headers = response.headers
    # add_session_headers(), spelled out for the usual case (as in
    # _send_as_written): no name is of the length of Vary or Cache-Control.
    if lengths_rule_out_caching_headers(headers):
        response.headers = [*headers, ("Vary", "Cookie")]
    else:
        headers = response.headers = list(headers)
        add_session_headers(headers, private=False)
    return True


def _send_as_written(
    response: Response, session: Session, setup: ResponseSetup
) -> None:
    """:meth:`Response.send_headers` of a complete body whose session the app
    changed, spelled out for most writes and new sessions (loaded, not emptied,
    not saved by the app, a status below 500, not failed): save, then the app's
    headers with the cookie. Any other case goes there."""
    record = session._record
    data = session._data
    if data is None or record is None or session._saved_by_app or response.failed:
        return response.send_headers(True, True)
    if record.key is None and not data:  # emptied: deleted, or no cookie
        return response.send_headers(True, True)
    status = response.status
    check_app_headers(status, response.headers)  # before the save; a str
    if status >= SERVER_ERRORS_FROM:  # type: ignore[operator]
        return response.send_headers(True, True)  # save_on_error decides
    if setup.size_first:  # a cookie near the size limit: checked before writing
        return response.send_headers(True, True)
    changes = session._changes
    if changes is not None and changes.snapshots:  # else nothing to detect
        session.detect_changes()
    accessed = session.accessed  # as the app left it
    session.accessed = True
    secure = setup.secure
    if secure is None:
        secure = auto_secure(response.environ)
    try:  # Response.save() and Session._save_loaded(False), spelled out
        if record.stored and record.key is not None:
            saved = record.update(data, changes)
        else:
            saved = record.create(data, record.user)
    except SessionInterrupted:
        response.warn_dropped()
        return _send(response, response.dropped_cookie(secure), accessed)
    if saved is not data:  # merged with another save
        refill(data, saved)
    session._changes = None  # nothing of the request runs after the save
    if session._store.client_side:  # the key is the cookie: it must fit
        assert record.key is not None
        check_cookie_size(session._settings, record.key, session.cookie_max_age)
    sweeper = setup.sweeper
    if sweeper is not None:  # the time now, not the save's (see after_save)
        sweeper.after_save()
    headers = [
        *response.headers,
        session_cookie(
            setup.settings,
            record.key,  # type: ignore[arg-type]
            record.max_age_at_save,
            secure,
            record.saved_at,
            setup.template,
        ),
    ]
    # add_session_headers(), spelled out for the usual case: no name is of
    # the length of Vary or Cache-Control.
    if lengths_rule_out_caching_headers(headers):
        headers += setup.session_headers
    else:
        add_session_headers(headers, private=setup.private)
    response.server_write = response.server_start_response(
        response.status, headers, response.exc_info
    )
    response.exc_info = None  # see Response.send_headers


def _send(response: Response, cookies: list[tuple[str, str]], accessed: bool) -> None:
    """Send the app's headers with ``cookies`` (as :meth:`Response.send_headers`
    does): with ``Vary`` if the app used the session or a cookie goes out."""
    headers = response.headers
    if accessed or cookies:
        headers = [*headers, *cookies]
        add_session_headers(headers, private=bool(cookies) and response.setup.private)
    response.server_write = response.server_start_response(
        response.status, headers, response.exc_info
    )
    response.exc_info = None  # see Response.send_headers
