"""The demo's WSGI app: the tour inside the middleware, a reporter outside it.

Inside :class:`~wsgisession.SessionMiddleware`, :class:`TourPages` renders
the page and applies each button's action. Outside it, :class:`DemoApp`
sees exactly what goes over the wire: it notes the ``Set-Cookie`` each
action's response carried (or the ``SessionCookieTooLarge`` its save
raised, before any header was sent) for the page that follows, and writes
into each page the cookie that page's own response carries.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from ..cookie_header import cookie_values
from ..errors import SessionCookieTooLarge, StoreUnavailable
from ..middleware import SessionMiddleware
from ..session import Session
from ..stores.base import Store
from . import facts, race
from .origin import foreign_post
from .page import WIRE_MARK, PageFacts, Report, render, wire_rows
from .tour import ACTIONS, SECTIONS, Context

__all__ = ["DemoApp", "TourPages"]

logger = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
Headers = list[tuple[str, str]]
#: Where the reporter hands the inner app the last action's report, and
#: where the inner app leaves the action it applied.
REPORT_KEY = "wsgisession.demo.report"
OUTCOME_KEY = "wsgisession.demo.outcome"
#: How many unread reports are kept (one per action, read by the next page).
MAX_REPORTS = 1000


def _form(environ: dict[str, Any]) -> dict[str, list[str]]:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    body = environ["wsgi.input"].read(min(length, 4096)) if length > 0 else b""
    return parse_qs(body.decode("latin-1"))


def _shown_data(session: Session) -> str:
    """The session's data, with the padding and the race's 20 keys summed up."""
    parts: list[str] = []
    runs: Counter[str] = Counter()
    for key, value in session.items():
        if key == "padding" and isinstance(value, str):
            parts.append(f"padding: {len(value) // 1024} KB of random text")
        elif key.startswith("race-"):
            runs[str(value)] += 1
        else:
            parts.append(f"{key}: {value!r}")
    for run, count in runs.items():
        parts.append(f"race-*: {count} of the {race.RACERS} keys of run {run}")
    return "{" + ", ".join(parts) + "}"


class TourPages:
    """The inner app: the page (each load counts a visit) and the actions."""

    middleware: SessionMiddleware  # set by DemoApp, for the concurrent requests

    def __init__(self, store_description: str) -> None:
        self.store_description = store_description

    def __repr__(self) -> str:
        return f"TourPages({self.store_description!r})"

    def __call__(
        self, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        session: Session = environ["wsgisession"]
        slot = environ.get(race.ENVIRON_KEY)
        if isinstance(slot, race.RaceSlot):  # made by run_race, never by a client
            slot.race(session)
            start_response("204 No Content", [])
            return [b""]
        if environ.get("PATH_INFO", "/") not in ("", "/"):
            return _plain(start_response, "404 Not Found", "not found")
        if environ.get("REQUEST_METHOD") == "POST":
            return self.act(environ, session, start_response)
        return self.page(environ, session, start_response)

    def context(self, environ: dict[str, Any], form: dict[str, str]) -> Context:
        """What an action or a panel gets besides the session: the form, the browser."""
        return Context(
            self.middleware,
            environ.get("HTTP_COOKIE", ""),
            form,
            environ.get("HTTP_USER_AGENT", ""),
        )

    def act(
        self, environ: dict[str, Any], session: Session, start_response: StartResponse
    ) -> Iterable[bytes]:
        form = {key: values[0] for key, values in _form(environ).items()}
        name = form.get("action", "")
        action = ACTIONS.get(name)
        if action is None:
            return _plain(start_response, "400 Bad Request", f"unknown action {name!r}")
        outcome = environ.setdefault(OUTCOME_KEY, {})
        outcome["label"] = action.label
        outcome["explanation"] = action.apply(session, self.context(environ, form))
        start_response("303 See Other", [("Location", "./"), ("Content-Length", "0")])
        return [b""]

    def page(
        self, environ: dict[str, Any], session: Session, start_response: StartResponse
    ) -> Iterable[bytes]:
        was_new = session.session_key is None
        session["visits"] = session.get("visits", 0) + 1
        expires = session.get_expiry_date()
        page_facts = PageFacts(
            store=self.store_description,
            was_new=was_new,
            visits=session["visits"],
            data=_shown_data(session),
            browser_close=session.get_expire_at_browser_close(),
            expires=facts.expiry_moment(expires),
            expires_at=expires.timestamp(),
            left=facts.countdown(session.get_expiry_age()),
            cookie_age=session.get_session_cookie_age(),
            client_side=bool(self.middleware.store.client_side),
        )
        context = self.context(environ, {})
        panels = {
            section.title: section.panel(session, context)
            for section in SECTIONS
            if section.panel is not None
        }
        report = environ.get(REPORT_KEY)
        body = render(page_facts, report, SECTIONS, panels).encode("utf-8")
        start_response(
            "200 OK",
            [
                ("Content-Type", "text/html; charset=utf-8"),
                ("Content-Length", str(len(body))),
                ("Cache-Control", "no-store"),
            ],
        )
        return [body]


def _plain(start_response: StartResponse, status: str, text: str) -> list[bytes]:
    body = text.encode("utf-8")
    start_response(
        status,
        [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
        ],
    )
    return [body]


def _call(
    app: Callable[..., Iterable[bytes]], environ: dict[str, Any]
) -> tuple[str, Headers, bytes]:
    """Run a WSGI app to the end: its status, headers and whole body."""
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: Headers, exc_info: Any = None) -> Any:
        seen["status"], seen["headers"] = status, headers
        return lambda data: None

    result = app(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return seen["status"], list(seen["headers"]), body


class Reports:
    """Unread action reports, each fetched once by the page after the action."""

    def __init__(self) -> None:
        self._reports: OrderedDict[str, Report] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, report: Report) -> str:
        token = secrets.token_urlsafe(12)
        with self._lock:
            self._reports[token] = report
            while len(self._reports) > MAX_REPORTS:
                self._reports.popitem(last=False)
        return token

    def take(self, token: str) -> Report | None:
        with self._lock:
            return self._reports.pop(token, None)

    def __repr__(self) -> str:
        return f"Reports(<{len(self._reports)} unread>)"


class DemoApp:
    """The whole demo: a reporter around the middleware around the tour pages."""

    def __init__(self, store: Store, store_description: str, **options: Any) -> None:
        self.pages = TourPages(store_description)
        self.middleware = SessionMiddleware(self.pages, store=store, **options)
        self.pages.middleware = self.middleware
        self.reports = Reports()

    def __repr__(self) -> str:
        return f"DemoApp({self.middleware!r})"

    @property
    def cookie_name(self) -> str:
        return self.middleware.settings.cookie_name

    def __call__(
        self, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "/") not in ("", "/"):
            return self.middleware(environ, start_response)
        try:
            if environ.get("REQUEST_METHOD") == "POST":
                return self.action(environ, start_response)
            return self.page(environ, start_response)
        except StoreUnavailable as exc:  # it was reached at startup: it went away
            logger.warning("demo: the store is unreachable: %s", exc)
            return _plain(
                start_response,
                "503 Service Unavailable",
                f"The session store is unreachable: {exc}\n"
                "Start it again, then reload this page.",
            )

    def action(
        self, environ: dict[str, Any], start_response: StartResponse
    ) -> list[bytes]:
        refused = foreign_post(environ)
        if refused:  # before the session is touched: no Set-Cookie either
            return _plain(start_response, "403 Forbidden", refused)
        outcome: dict[str, str] = {}
        environ[OUTCOME_KEY] = outcome
        try:
            status, headers, body = _call(self.middleware, environ)
        except SessionCookieTooLarge as exc:
            report = Report(
                outcome.get("label", "Save"),
                "",
                "",
                error=(
                    f"SessionCookieTooLarge: {exc}. It was raised before any header "
                    "was sent, so your browser keeps its previous cookie and the "
                    "session is as it was."
                ),
            )
            status, headers, body = "303 See Other", [("Location", "./")], b""
        else:
            if "label" not in outcome:  # the tour refused the request
                start_response(status, headers)
                return [body]
            report = Report(
                outcome["label"], outcome["explanation"], self.set_cookie(headers)
            )
        location = f"./?done={self.reports.add(report)}"
        headers = [(k, location if k.lower() == "location" else v) for k, v in headers]
        start_response(status, headers)
        return [body]

    def page(
        self, environ: dict[str, Any], start_response: StartResponse
    ) -> list[bytes]:
        token = parse_qs(environ.get("QUERY_STRING", "")).get("done", [""])[0]
        environ[REPORT_KEY] = self.reports.take(token) if token else None
        try:
            status, headers, body = _call(self.middleware, environ)
        except SessionCookieTooLarge as exc:
            return _plain(
                start_response,
                "500 Internal Server Error",
                f"This page load could not save its visit: SessionCookieTooLarge: {exc}."
                " Your browser keeps its previous cookie. Go back and remove the padding.",
            )
        wire = self.wire(environ, headers).encode("utf-8")
        body = body.replace(WIRE_MARK.encode("utf-8"), wire, 1)
        headers = [
            (k, str(len(body)) if k.lower() == "content-length" else v)
            for k, v in headers
        ]
        start_response(status, headers)
        return [body]

    def session_cookie(self, headers: Headers) -> str | None:
        """The ``Set-Cookie`` header of the session cookie in ``headers``, if any."""
        prefix = self.cookie_name + "="
        for name, value in headers:
            if name.lower() == "set-cookie" and value.startswith(prefix):
                return value
        return None

    def set_cookie(self, headers: Headers) -> str:
        """The session's ``Set-Cookie`` in ``headers``, key hidden; "" if none."""
        header = self.session_cookie(headers)
        return (
            ""
            if header is None
            else facts.summarize_set_cookie(header, self.cookie_name)
        )

    def wire(self, environ: dict[str, Any], headers: Headers) -> str:
        """What this page's own response sends: the cookie the browser ends up with."""
        sent = cookie_values(environ.get("HTTP_COOKIE"), self.cookie_name)
        return wire_rows(
            self.session_cookie(headers), sent[0] if sent else None, self.cookie_name
        )
