"""Flask: session writes made after Flask's own save point.

Flask saves its cookie session in ``process_response``, after the
``after_request`` functions: a write there is kept, one in a
``teardown_request`` function or in a ``stream_with_context`` body is
dropped. Here the middleware saves once the body has ended, so those later
writes are kept too (docs/migrating.rst lists the difference).
"""

from __future__ import annotations

from collections.abc import Iterator

from flask import Flask, Response, session, stream_with_context
from flask_support import login_app

from wsgisession.stores import MemoryStore


def make_app() -> Flask:
    app = login_app(MemoryStore())

    @app.after_request
    def count_pages(response: Response) -> Response:
        if "user" in session:
            session["pages"] = session.get("pages", 0) + 1
        return response

    @app.teardown_request
    def remember_teardown(error: BaseException | None) -> None:
        if "user" in session:
            session["torn_down"] = True

    @app.route("/stream")
    def stream() -> Response:
        def chunks() -> Iterator[str]:
            yield "a"
            session["streamed"] = True
            yield "b"

        return Response(stream_with_context(chunks()))

    @app.route("/state")
    def state() -> str:
        return repr(sorted(session.items()))

    return app


def test_writes_after_flasks_save_point_are_kept() -> None:
    client = make_app().test_client()
    client.get("/login")
    assert client.get("/stream").text == "ab"
    assert client.get("/state").text == repr(
        [("pages", 2), ("streamed", True), ("torn_down", True), ("user", "ada")]
    )
