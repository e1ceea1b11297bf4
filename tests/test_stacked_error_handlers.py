"""An error-catching middleware between wsgisession and the app, after the
body began: werkzeug's ``DebuggedApplication`` catches the app's exception
and calls ``start_response`` again (without ``exc_info``) for its error page.

Once the headers went out a server refuses that call (PEP 3333: a fatal
error), and the debugger then logs the traceback and ends the body. The
middleware must refuse it too, and save nothing of the failed request
(docs/session.rst: an exception from the body iterator saves nothing),
although the debugger ends the body as if it were complete.
"""

from __future__ import annotations

import http.client
import io
import threading
import wsgiref.handlers
import wsgiref.simple_server
import wsgiref.util
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from werkzeug.debug import DebuggedApplication

from wsgisession import SessionMiddleware
from wsgisession.stores import MemoryStore


def failing_stream(length: str | None) -> Any:
    """Changes the session, yields a chunk, then fails."""

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        environ.get("wsgisession", {})["step"] = 99  # alone: no session
        headers = [("Content-Type", "text/plain")]
        if length is not None:
            headers.append(("Content-Length", length))
        start_response("200 OK", headers)
        yield b"partial-"
        raise RuntimeError("boom")

    return app


class QuietHandler(wsgiref.simple_server.WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class QuietServer(wsgiref.simple_server.WSGIServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


@contextmanager
def wsgiref_server(app: Any) -> Iterator[int]:
    server = wsgiref.simple_server.make_server(
        "127.0.0.1", 0, app, server_class=QuietServer, handler_class=QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextmanager
def waitress_server(app: Any) -> Iterator[int]:
    """A waitress server on a free port, stopped whole on the way out.

    Its worker thread goes first: once its task ends it pulls the server's
    trigger (``os.write()`` on a descriptor number), and a worker still
    running after the trigger closed wrote a stray ``b"x"`` into whatever
    took that number next: the next server's socket, another test's file.
    """
    waitress = pytest.importorskip("waitress.server")
    server = waitress.create_server(
        app, host="127.0.0.1", port=0, threads=1, asyncore_loop_timeout=0.05
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield server.effective_port  # type: ignore[union-attr]
    finally:
        dispatcher = server.task_dispatcher
        dispatcher.shutdown()  # joins the worker (gives up with a warning past 5 s)
        assert not dispatcher.threads, "a waitress worker still runs"
        # Closed in its own loop: closed from here, its select() saw EBADF.
        server.trigger.pull_trigger(server.close)  # type: ignore[union-attr]
        thread.join(5)
        assert not thread.is_alive()


SERVERS = {"wsgiref": wsgiref_server, "waitress": waitress_server}


def body_on_the_wire(app: Any, server: str) -> bytes:
    with SERVERS[server](app) as port:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            connection.request("GET", "/")
            response = connection.getresponse()
            assert response.status == 200
            try:
                return response.read()
            except http.client.IncompleteRead as cut:
                return cut.partial
        finally:
            connection.close()


@pytest.mark.parametrize("server", list(SERVERS))
def test_an_error_page_after_streamed_output_stays_out_of_the_body(
    server: str,
) -> None:
    """The 200's headers and first chunk are out: the debugger's error page
    (the app's source and traceback) is not appended to that body, as it is
    not without the middleware."""
    debugged = DebuggedApplication(failing_stream(None), evalex=False)
    alone = body_on_the_wire(debugged, server)
    assert alone == b"partial-"
    stacked = body_on_the_wire(SessionMiddleware(debugged, MemoryStore()), server)
    assert stacked == alone, f"{stacked[:80]!r}..."


def test_a_waitress_server_leaves_no_thread_behind() -> None:
    """The server's worker ends with it: one left running pulls the closed
    trigger later, writing into the descriptor another socket or file took
    (a rare failure of the test above under load)."""
    before = set(threading.enumerate())
    assert body_on_the_wire(failing_stream(None), "waitress") == b"partial-"
    left = [thread.name for thread in threading.enumerate() if thread not in before]
    assert left == []


def run_with_wsgiref(app: Any, cookie: str) -> bytes:
    stdout = io.BytesIO()
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/",
        "HTTP_COOKIE": cookie,
    }
    wsgiref.util.setup_testing_defaults(environ)
    handler = wsgiref.handlers.SimpleHandler(
        io.BytesIO(), stdout, io.StringIO(), environ, multithread=False
    )
    handler.run(app)
    return stdout.getvalue()


@pytest.mark.parametrize("length", [None, "100"], ids=["stream", "content-length"])
def test_a_change_before_an_error_the_debugger_caught_is_not_saved(
    length: str | None,
) -> None:
    store = MemoryStore()
    middleware = SessionMiddleware(
        DebuggedApplication(failing_stream(length), evalex=False), store
    )
    existing = middleware.open_session()
    existing["step"] = 0
    existing.save()
    key = existing.session_key
    raw = run_with_wsgiref(middleware, f"sessionid={key}")
    assert raw.startswith(b"HTTP/1.0 200 OK")
    assert middleware.open_session(key)["step"] == 0
