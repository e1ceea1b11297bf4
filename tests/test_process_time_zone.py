"""The process's time zone (``TZ``) changes nothing a session does or keeps:
a datetime without an offset is taken as UTC, as the docs say, and a naive
local time saved in the session's data means the same instant when loaded.

Each case runs in a child process started with ``TZ`` set, so that the
zone is the process's own, as on a server configured for local time.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ZONES = ["UTC", "America/New_York", "Asia/Kolkata"]

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

zone = NoOffset() if sys.argv[1] == "no offset" else None
store = MemoryStore()
session = Session(store)
session["a"] = 1
session.set_expiry(datetime.datetime(2030, 1, 1, tzinfo=zone))
session.save()
loaded = Session(store, session_key=session.session_key)
day_before = datetime.datetime(2029, 12, 31, tzinfo=zone)
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


def run_in_zone(zone: str, code: str, *argv: str) -> list[str]:
    """The lines ``code`` prints, run by a Python whose ``TZ`` is ``zone``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TZ": zone}
    done = subprocess.run(
        [sys.executable, "-c", code, *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize("kind", ["naive", "no offset"])
def test_a_datetime_without_an_offset_is_utc_in_any_process_zone(
    zone: str, kind: str
) -> None:
    """A datetime whose tzinfo gives no offset (naive, as Python defines
    it) was taken in the process's local zone, not as UTC as API.md says:
    under TZ=America/New_York set_expiry() ended the session five hours
    later than under UTC, and modification= counted from another moment."""
    assert run_in_zone(zone, SET_EXPIRY, kind) == [
        "2030-01-01T00:00:00+00:00",
        "86400",
        "2029-12-31T00:01:00+00:00",
    ]


def test_a_naive_time_in_the_repeated_hour_keeps_its_fold() -> None:
    """A naive local time of the hour that summer time's end repeats came
    back with fold=0: the first 01:30, an hour before the one saved, so an
    app's ``loaded.timestamp()`` (or "seen 5 minutes ago") was an hour off."""
    saved, loaded = run_in_zone("America/New_York", REPEATED_HOUR)
    assert saved == "1 1730615400.0"
    assert loaded == saved
