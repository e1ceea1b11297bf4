"""The process's time zone (``TZ``) changes nothing a session does or keeps:
a datetime without an offset is taken as UTC, as the docs say, and a naive
local time saved in the session's data means the same instant when loaded.

Each case runs in a child process started with ``TZ`` set, so that the
zone is the process's own, as on a server configured for local time. The
two kinds of datetime without an offset share one child per zone, each
with its own store and session; the module's children start together and
run side by side.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ZONES = ["UTC", "America/New_York", "Asia/Kolkata"]
KINDS = ["naive", "no offset"]

#: A tzinfo that knows no offset: Python calls such a datetime naive.
NO_OFFSET = """
import datetime

class NoOffset(datetime.tzinfo):
    def utcoffset(self, moment):
        return None

    def dst(self, moment):
        return None

    def tzname(self, moment):
        return None
"""

SET_EXPIRY = (
    NO_OFFSET
    + """
import sys
from wsgisession import Session
from wsgisession.stores import MemoryStore

for kind in sys.argv[1:]:
    zone = NoOffset() if kind == "no offset" else None
    store = MemoryStore()
    session = Session(store)
    session["a"] = 1
    session.set_expiry(datetime.datetime(2030, 1, 1, tzinfo=zone))
    session.save()
    loaded = Session(store, session_key=session.session_key)
    day_before = datetime.datetime(2029, 12, 31, tzinfo=zone)
    print(kind)
    print(loaded.get_expiry_date().isoformat())
    print(loaded.get_expiry_age(modification=day_before))
    print(loaded.get_expiry_date(modification=day_before, expiry=60).isoformat())
"""
)

# The second 01:30 of 3 November 2024 in New York (summer time ends at
# 02:00 EDT): datetime.now() or fromtimestamp() give it with fold=1.
REPEATED_HOUR = """
import datetime
from wsgisession import Session
from wsgisession.stores import MemoryStore

seen = datetime.datetime.fromtimestamp(1730615400)
store = MemoryStore()
session = Session(store)
session["seen"] = seen
session.save()
loaded = Session(store, session_key=session.session_key)["seen"]
print(seen.fold, seen.timestamp())
print(loaded.fold, loaded.timestamp())
"""


def start_in_zone(zone: str, code: str, *argv: str) -> subprocess.Popen[str]:
    """A Python whose ``TZ`` is ``zone``, running ``code``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TZ": zone}
    return subprocess.Popen(
        [sys.executable, "-c", code, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


class Children:
    """The module's children, started at once (each costs a third of a
    second, mostly its imports); the lines each printed, once it ended."""

    def __init__(self) -> None:
        self.started = {zone: start_in_zone(zone, SET_EXPIRY, *KINDS) for zone in ZONES}
        self.started["fold"] = start_in_zone("America/New_York", REPEATED_HOUR)
        self.printed: dict[str, list[str]] = {}

    def lines(self, name: str) -> list[str]:
        if name not in self.printed:
            child = self.started[name]
            out, err = child.communicate(timeout=60)
            assert child.returncode == 0, err
            self.printed[name] = out.splitlines()
        return self.printed[name]

    def expiries(self, zone: str) -> dict[str, list[str]]:
        """What :data:`SET_EXPIRY` printed for each of :data:`KINDS` in ``zone``."""
        lines = self.lines(zone)
        return {lines[at]: lines[at + 1 : at + 4] for at in range(0, len(lines), 4)}


@pytest.fixture(scope="module")
def children() -> Iterator[Children]:
    started = Children()
    yield started
    for child in started.started.values():  # the ones no test selected
        child.kill()
        child.communicate()


@pytest.mark.slow
@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize("kind", KINDS)
def test_a_datetime_without_an_offset_is_utc_in_any_process_zone(
    zone: str, kind: str, children: Children
) -> None:
    """A datetime whose tzinfo gives no offset (naive, as Python defines
    it) was taken in the process's local zone, not as UTC as API.md says:
    under TZ=America/New_York set_expiry() ended the session five hours
    later than under UTC, and modification= counted from another moment."""
    assert children.expiries(zone)[kind] == [
        "2030-01-01T00:00:00+00:00",
        "86400",
        "2029-12-31T00:01:00+00:00",
    ]


def test_a_naive_time_in_the_repeated_hour_keeps_its_fold(children: Children) -> None:
    """A naive local time of the hour that summer time's end repeats came
    back with fold=0: the first 01:30, an hour before the one saved, so an
    app's ``loaded.timestamp()`` (or "seen 5 minutes ago") was an hour off."""
    saved, loaded = children.lines("fold")
    assert saved == "1 1730615400.0"
    assert loaded == saved
