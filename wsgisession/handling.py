"""One request through the middleware: the session into the environ, the
app called, and the common result (a complete body, headers not sent yet)
settled at once; any other result goes to :meth:`.Response.respond`."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from .response import ResponseSetup, StartResponse, new_response

__all__ = ["handle"]


def handle(
    setup: ResponseSetup,
    app: Callable[..., Iterable[bytes]],
    environ: dict[str, Any],
    start_response: StartResponse,
) -> Iterable[bytes]:
    """One request through the middleware: the session into ``environ``, the
    app called, its result wrapped (see :meth:`Response.respond`).

    The most common result, a complete body with the headers not sent
    yet, is settled here: a request that never touched its session lets
    the app's headers through as they are, any other saves first.
    """
    response = new_response(setup, environ, start_response)
    session = environ[setup.environ_key] = response.session
    session._serving = True
    try:
        result = app(environ, response.start_response)
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
        if (
            session.accessed
            or session.modified
            or setup.save_every_request
            or (session._changes is not None and session.detect_changes())
        ):
            response.send_headers(True, True)
            return result
    finally:  # touched or not (accessed set back to False, a retry's
        # discarded attempt), and when the detection raises (a value JSON
        # refuses): a loaded session may hold the lock
        session._serving = False
        if session._record is not None or setup.lock:
            session.release_lock()
    response.server_write = start_response(
        response.status, response.headers, response.exc_info
    )
    response.exc_info = None  # see Response.send_headers
    return result
