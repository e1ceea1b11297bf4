"""A memcached server named twice in the server list (its host name and its
address): both names reach the one server, so the user's index there is
the live one, not a copy that an earlier list left behind, and "sign out
of the other devices" must not delete it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from servers import ServerProcess

from wsgisession import SessionMiddleware
from wsgisession.session import Session
from wsgisession.stores import MemcachedStore


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b""]


def sign_in(middleware: SessionMiddleware, user: str, device: int) -> Session:
    session = middleware.open_session()
    session["device"] = device
    session.bind_user(user)
    return session


def test_sign_out_of_other_devices_keeps_the_current_session_on_an_aliased_server(
    clean_memcached: ServerProcess,
) -> None:
    port = clean_memcached.port
    servers = [f"127.0.0.1:{port}", f"localhost:{port}"]
    middleware = SessionMiddleware(app, store=MemcachedStore(servers))
    user = "alice"
    other = sign_in(middleware, user, 0)
    current = sign_in(middleware, user, 1)

    assert middleware.revoke_user_sessions(user, keep=current) == 1

    assert "device" in middleware.open_session(current.session_key)
    assert "device" not in middleware.open_session(other.session_key)
    assert [s.handle for s in middleware.user_sessions(user)] == [current.handle]
