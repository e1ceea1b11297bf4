"""Real WSGI servers that serve several requests at once, in this process.

For tests of the request lock as an app sees it: one request holds a
session's lock while another of the same session (or none) comes in, so
the server must run them side by side. Each context manager yields the
base URL and stops its server whole on the way out.
"""

from __future__ import annotations

import http.client
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from browser import served_forever
from browser import serving as wsgiref_serving


@contextmanager
def werkzeug_serving(app: Any) -> Iterator[str]:
    """Werkzeug's threaded development server (what ``flask run`` runs)."""
    from werkzeug.serving import make_server

    with served_forever(make_server("127.0.0.1", 0, app, threaded=True)) as url:
        yield url


@contextmanager
def waitress_serving(app: Any) -> Iterator[str]:
    """Waitress with four worker threads; its workers stop before its trigger
    closes (see ``test_stacked_error_handlers.waitress_server``)."""
    import waitress.server

    server: Any = waitress.server.create_server(
        app, host="127.0.0.1", port=0, threads=4, asyncore_loop_timeout=0.05
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        server.task_dispatcher.shutdown()
        server.trigger.pull_trigger(server.close)
        thread.join(10)


SERVINGS: dict[str, Callable[[Any], AbstractContextManager[str]]] = {
    "wsgiref": wsgiref_serving,
    "werkzeug": werkzeug_serving,
    "waitress": waitress_serving,
}


def timed_get(url: str, cookie: str | None = None) -> tuple[int, float, str]:
    """GET ``url``: the status, the seconds the answer took, and the
    ``Set-Cookie`` header (``""`` if none)."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.netloc, timeout=30)
    headers = {} if cookie is None else {"Cookie": cookie}
    started = time.monotonic()
    try:
        connection.request("GET", parts.path or "/", headers=headers)
        response = connection.getresponse()
        response.read()
    finally:
        connection.close()
    return (
        response.status,
        time.monotonic() - started,
        response.getheader("Set-Cookie", ""),
    )
