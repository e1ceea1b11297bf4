"""One request through a real :class:`SessionMiddleware`, with the fast
paths of ``handling.handle`` on or off (``test_fast_path_agreement``).

:func:`run` makes a fresh store holding one session, sends the
:class:`Scenario`'s request and reads back what the returned cookie
finds: the clock frozen and the ids drawn from a seeded source, so two
runs of one scenario make the same cookies whatever path settles them.
"""

from __future__ import annotations

import hashlib
import json
import sys
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from wsgisession import SessionMiddleware, clock, handling, keys
from wsgisession.errors import SessionError
from wsgisession.session import Session
from wsgisession.stores import MemoryStore, SignedCookieStore, SQLiteStore
from wsgisession.stores.base import Store

SECRET = "fast-path-agreement-secret-0123456789abcdef"
OTHER_SECRET = "another-secret-for-unknown-cookies-0123456789"
NOW = 1_750_000_000.25
NAME = "sessionid"
STORED = {"user": "someone", "cart": {"items": [1]}}
VARY_ACCEPT = ("Vary", "Accept")
VARY_LOWER = ("vary", "accept-encoding")
CACHE_PUBLIC = ("Cache-Control", "public, max-age=60")
CACHE_NO_STORE = ("Cache-Control", "no-store")
OWN_COOKIE = ("Set-Cookie", "theme=dark; Path=/")
VARY_ANY = ("Vary", "*")
#: Of Cache-Control's length: the scan by length cannot rule it out.
LAST_MODIFIED = ("Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT")
EXTRA_HEADERS = (
    VARY_ACCEPT,
    VARY_LOWER,
    CACHE_PUBLIC,
    CACHE_NO_STORE,
    OWN_COOKIE,
    VARY_ANY,
    LAST_MODIFIED,
)


def _nested_write(session: Session) -> None:
    session.setdefault("cart", {"items": []})["items"].append(2)


def _save_by_app(session: Session) -> None:
    session["user"] = "saved"
    session.save()


#: What the app may do with its session, by name (a scenario's actions).
ACTIONS: dict[str, Callable[[Session], Any]] = {
    "read": lambda session: session.get("user"),
    "read_missing": lambda session: session.get("nothing"),
    "write": lambda session: session.__setitem__("user", "written"),
    "write_new_key": lambda session: session.__setitem__("visits", 1),
    # Past what a cookie may carry: the cookie store's save refuses it.
    "write_large": lambda session: session.__setitem__("blob", "x" * 5000),
    "nested_write": _nested_write,
    "delete": lambda session: session.pop("user", None),
    "clear": lambda session: session.clear(),
    "flush": lambda session: session.flush(),
    "cycle_key": lambda session: session.cycle_key(),
    "expiry_0": lambda session: session.set_expiry(0),
    "expiry_none": lambda session: session.set_expiry(None),
    "expiry_300": lambda session: session.set_expiry(300),
    "expiry_delta": lambda session: session.set_expiry(timedelta(hours=1)),
    "save": lambda session: session.save(),
    "save_by_app": _save_by_app,
    "unmark_modified": lambda session: setattr(session, "modified", False),
    "unmark_accessed": lambda session: setattr(session, "accessed", False),
    "mark_modified": lambda session: setattr(session, "modified", True),
    "bind_user": lambda session: session.bind_user("alice"),
}
#: What another request does while the app runs (see :func:`_meanwhile`).
MEANWHILE = ("deleted_meanwhile", "saved_meanwhile")
#: How the app ends: returns its body, raises out of the middleware, or
#: catches its error and starts the response with ``exc_info``.
ENDINGS = ("return", "raise", "error_page")
COOKIES = ("none", "existing", "unknown", "malformed", "two_unknown_first", "two")


@dataclass(frozen=True)
class Scenario:
    """One request: the store's kind, the middleware's options, what the
    client sends and what the app does and answers."""

    store: str = "memory"
    options: dict[str, Any] = field(default_factory=dict)
    cookie: str = "existing"
    scheme: str = "http"
    fetch_mode: str | None = None
    actions: tuple[str, ...] = ()
    after_start: bool = False
    ending: str = "return"
    status: str = "200 OK"
    extra_headers: tuple[tuple[str, str], ...] = ()
    headers_as_tuple: bool = False
    items_as_lists: bool = False

    def app_headers(self) -> Any:
        """The app's headers as the scenario spells them."""
        items: list[Any] = [("Content-Type", "text/plain"), *self.extra_headers]
        if self.items_as_lists:
            items = [list(item) for item in items]
        return tuple(items) if self.headers_as_tuple else items


@contextmanager
def _seeded_ids() -> Iterator[None]:
    """``os.urandom`` of the key module from a counter: each run draws the
    same ids in the same order."""
    drawn = iter(range(1 << 30))

    def urandom(size: int) -> bytes:
        return hashlib.sha256(b"%d" % next(drawn)).digest()[:size]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(keys, "os", types.SimpleNamespace(urandom=urandom))
        yield


def _general_paths_only(patch: pytest.MonkeyPatch) -> None:
    """Turn the fast paths off: each stands for ``send_headers(True, True)``."""
    patch.setattr(handling, "_settled_as_read", lambda *args: False)
    patch.setattr(
        handling,
        "_send_as_written",
        lambda response, session, setup: response.send_headers(True, True),
    )


def _store(kind: str, directory: Path) -> Store:
    if kind == "memory":
        return MemoryStore()
    if kind == "cookie":
        return SignedCookieStore(SECRET)
    directory.mkdir()
    return SQLiteStore(directory / "sessions.sqlite3")


def _known_keys(middleware: SessionMiddleware, kind: str) -> tuple[str, str]:
    """A stored session's key and a well-formed key no session has."""
    session = middleware.open_session()
    session.update(STORED)
    session.save()
    assert session.session_key is not None
    if kind == "cookie":
        return session.session_key, SignedCookieStore(OTHER_SECRET).create(
            "", b"{}", NOW + 600
        )
    return session.session_key, keys.generate_key()


def _cookie_header(cookie: str, existing: str, unknown: str) -> str | None:
    return {
        "none": None,
        "existing": f"{NAME}={existing}",
        "unknown": f"{NAME}={unknown}",
        "malformed": f"{NAME}=not a key!",
        "two_unknown_first": f"{NAME}={unknown}; {NAME}={existing}",
        "two": f"{NAME}={existing}; {NAME}={unknown}",
    }[cookie]


def _meanwhile(middleware: SessionMiddleware, key: str) -> dict[str, Callable[[], Any]]:
    """Another request's logout or save of the stored session ``key``."""

    def save_elsewhere() -> None:
        other = middleware.open_session(key)
        other["other"] = "elsewhere"
        other.save()

    return {
        "deleted_meanwhile": lambda: middleware.store.delete(key),
        "saved_meanwhile": save_elsewhere,
    }


def _app(
    scenario: Scenario, meanwhile: dict[str, Callable[[], Any]]
) -> Callable[..., list[bytes]]:
    """The scenario's app at ``/``; at ``/readback`` one that reads the
    session. ``meanwhile``: see :func:`_meanwhile` (filled in later)."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        session = environ["wsgisession"]
        if environ["PATH_INFO"] == "/readback":
            start_response("200 OK", [("Content-Type", "application/json")])
            seen = [dict(session), session.get_expire_at_browser_close()]
            return [json.dumps(seen, sort_keys=True).encode()]
        if not scenario.after_start:
            _act(scenario, session, meanwhile)
        if scenario.ending == "error_page":
            try:
                raise ValueError("rendered by the app")
            except ValueError:
                start_response(scenario.status, scenario.app_headers(), sys.exc_info())
        else:
            start_response(scenario.status, scenario.app_headers())
        if scenario.after_start:
            _act(scenario, session, meanwhile)
        if scenario.ending == "raise":
            raise RuntimeError("the app failed after touching its session")
        return [b"body"]

    return app


def _act(
    scenario: Scenario, session: Session, meanwhile: dict[str, Callable[[], Any]]
) -> None:
    for name in scenario.actions:
        if name in meanwhile:
            session.get("user")  # loaded before the other request's change
            meanwhile[name]()
        else:
            ACTIONS[name](session)


def _request(
    middleware: SessionMiddleware, path: str, cookie: str | None, scenario: Scenario
) -> tuple[Any, ...]:
    """One GET: status, headers as sent (their container and items' types),
    whether exc_info went with them, and the body; or the exception raised."""
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "wsgi.url_scheme": scenario.scheme,
    }
    if cookie is not None:
        environ["HTTP_COOKIE"] = cookie
    if scenario.fetch_mode is not None:
        environ["HTTP_SEC_FETCH_MODE"] = scenario.fetch_mode
    started: list[Any] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        sent = [(type(item).__name__, *item) for item in headers]
        started.append((status, type(headers).__name__, sent, exc_info is not None))
        return lambda data: None

    try:
        body = b"".join(middleware(environ, start_response))
    except (RuntimeError, SessionError) as error:  # the app's or a save's
        return ("raised", type(error).__name__, str(error), started)
    return (*started, body)


def _cookie_sent(sent: tuple[Any, ...], request_cookie: str | None) -> str | None:
    """The cookie the client holds after the response (None: none)."""
    held = request_cookie
    if sent[0] != "raised":
        for _, name, value in sent[0][2]:
            if name == "Set-Cookie" and value.startswith(f"{NAME}="):
                held = value.split(";")[0]
    return None if held in (None, f"{NAME}=") else held


def run(scenario: Scenario, directory: Path, fast: bool) -> tuple[Any, ...]:
    """The scenario's response and stored outcome, from a fresh store."""
    with pytest.MonkeyPatch.context() as patch, _seeded_ids():
        if not fast:
            _general_paths_only(patch)
        store = _store(scenario.store, directory / ("fast" if fast else "general"))
        options = {"cookie_name": NAME, **scenario.options}
        meanwhile: dict[str, Callable[[], Any]] = {}
        with (
            clock.use(lambda: NOW),
            SessionMiddleware(
                _app(scenario, meanwhile), store, **options
            ) as middleware,
        ):
            existing, unknown = _known_keys(middleware, scenario.store)
            meanwhile.update(_meanwhile(middleware, existing))
            cookie = _cookie_header(scenario.cookie, existing, unknown)
            sent = _request(middleware, "/", cookie, scenario)
            held = _cookie_sent(sent, cookie)
            read_back = _request(middleware, "/readback", held, scenario)
            records = [store.exists(key) for key in (existing, unknown)]
            if held is not None and store.is_valid_key(held.partition("=")[2]):
                records.append(store.exists(held.partition("=")[2]))
    return sent, held, read_back, records
