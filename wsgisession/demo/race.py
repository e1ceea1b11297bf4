"""The "no lost updates" proof: 20 concurrent requests, each changing its own key.

:func:`run_race` calls the demo's own WSGI app (the middleware and all) from
20 threads with the browser's session cookie. Each request loads the
session, waits until all 20 have loaded (the worst case of real traffic:
every request read the session before any saved), sets its own key and
returns; the middleware saves it. In the same requests, at the same
moments, each also does what a whole-session save does to a scratch copy:
read the whole dict, change one key, write the whole dict back. Counting
the keys left in both shows, from the same run, what merging saves.
"""

from __future__ import annotations

import copy
import secrets
import threading
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from wsgiref.util import setup_testing_defaults

from ..cookie_header import cookie_values

__all__ = ["RACERS", "RaceResult", "RaceSlot", "ScratchStore", "run_race"]

#: How many concurrent requests one run fires.
RACERS = 20
#: Longest wait for all the requests to have loaded the session.
BARRIER_TIMEOUT = 15.0
#: The environ key under which a race request finds its slot.
ENVIRON_KEY = "wsgisession.demo.race"

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class ScratchStore:
    """One session's data kept whole, as a store without merging keeps it."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = copy.deepcopy(data)
        self._lock = threading.Lock()

    def read(self) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._data)

    def write(self, data: dict[str, Any]) -> None:
        with self._lock:
            self._data = copy.deepcopy(data)

    def __repr__(self) -> str:
        return f"ScratchStore(<{len(self._data)} keys>)"


@dataclass
class RaceSlot:
    """What one race request needs: its key, the run, and the others to wait for."""

    number: int
    run: str
    barrier: threading.Barrier
    scratch: ScratchStore

    @property
    def key(self) -> str:
        return f"race-{self.number:02d}"

    def race(self, session: MutableMapping[str, Any]) -> None:
        """Inside the request: load, wait for the others, change one key.

        The same key is changed in the scratch copy the way a store without
        merging would save it: the whole dict as this request read it.
        """
        len(session)  # loads the session now, before the others save
        whole = self.scratch.read()
        self.barrier.wait(BARRIER_TIMEOUT)
        session[self.key] = self.run
        whole[self.key] = self.run
        self.scratch.write(whole)


@dataclass
class RaceResult:
    """The outcome of one run: the cookies the responses carried and the survivors."""

    run: str
    statuses: list[str] = field(default_factory=list)
    cookies: list[str] = field(default_factory=list)
    scratch_survivors: int = 0

    @property
    def failed(self) -> int:
        return sum(1 for status in self.statuses if not status.startswith("2"))


def _request(
    app: WSGIApp, cookie_header: str, slot: RaceSlot, result: RaceResult
) -> None:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/race",
        "HTTP_COOKIE": cookie_header,
        ENVIRON_KEY: slot,
    }
    setup_testing_defaults(environ)
    seen: dict[str, Any] = {}

    def start_response(
        status: str, headers: list[tuple[str, str]], exc: Any = None
    ) -> Any:
        seen["status"], seen["headers"] = status, headers
        return lambda data: None

    try:
        body = app(environ, start_response)
        for _ in body:
            pass
        close = getattr(body, "close", None)
        if close is not None:
            close()
    except Exception as exc:  # noqa: BLE001 - reported as a failed request
        seen["status"] = f"failed: {type(exc).__name__}: {exc}"
        slot.barrier.abort()
    result.statuses.append(seen.get("status", "no response"))
    for name, value in seen.get("headers", []):
        if name.lower() == "set-cookie":
            result.cookies.append(value)


def run_race(
    app: WSGIApp, cookie_header: str, data: dict[str, Any], racers: int = RACERS
) -> RaceResult:
    """Fire ``racers`` concurrent requests of the session in ``cookie_header``."""
    result = RaceResult(run=secrets.token_hex(4))
    barrier = threading.Barrier(racers)
    scratch = ScratchStore(data)
    threads = [
        threading.Thread(
            target=_request,
            args=(
                app,
                cookie_header,
                RaceSlot(n, result.run, barrier, scratch),
                result,
            ),
            name=f"demo-race-{n}",
        )
        for n in range(racers)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    final = scratch.read()
    result.scratch_survivors = sum(
        1
        for key, value in final.items()
        if key.startswith("race-") and value == result.run
    )
    return result


def last_cookie_value(result: RaceResult, cookie_name: str) -> str | None:
    """The session cookie the last response set (a browser keeps the last one)."""
    for header in reversed(result.cookies):
        values = cookie_values(header.split(";", 1)[0], cookie_name)
        if values and values[0]:
            return values[0]
    return None
