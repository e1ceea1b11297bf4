"""The automatic sweeps of the file store prune the user indexes of users who
never come back, and do so at the pace of the sweeps, not of rounds.

A user index (``users/<hash>``) of a user whose sessions have all expired
goes only when something prunes it: the user's next login or listing,
``clear_expired()``, or a sweep. Sweeps used to prune 100 indexes picked at
random once per round of the store's records (a round of a store of N
records takes N / 100 sweeps), listing the whole ``users/`` directory twice
inside that one request: a site whose users stop coming back faster than
that piled up index files without bound unless cron ran ``clear-expired``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import FakeClock, later

from wsgisession import SessionMiddleware
from wsgisession.cleanup import SWEEP_BATCH
from wsgisession.stores import FileStore

USERS = 400
LIVE_RECORDS = 3000


def app(environ, start_response):
    start_response("200 OK", [])
    return [b""]


def _files(directory: Path) -> list[str]:
    return os.listdir(directory) if directory.exists() else []


@pytest.mark.slow  # 3,400 record files and their sweeps
def test_sweeps_prune_the_indexes_of_users_who_never_come_back(
    tmp_path: Path, frozen_clock: FakeClock
) -> None:
    store = FileStore(tmp_path / "s")
    middleware = SessionMiddleware(app, store=store)
    for number in range(USERS):  # each logs in once, for 100 s, and is gone
        session = middleware.open_session()
        session["agent"] = "laptop"
        session.set_expiry(100)
        session.bind_user(f"user-{number}")
    for _ in range(LIVE_RECORDS):  # other visitors, still active
        store.create(store.generate_key(), b"live", later(10**6))
    assert len(_files(tmp_path / "s" / "users")) == USERS
    frozen_clock.advance(200)

    # As many sweeps as it takes to walk every record of the store twice.
    sweeps = 2 * (USERS + LIVE_RECORDS) // SWEEP_BATCH + 2
    removed = sum(store.sweep_expired(SWEEP_BATCH) for _ in range(sweeps))

    assert removed == USERS  # every expired record went
    assert _files(tmp_path / "s" / "users") == []  # and so did every index
    assert store.clear_expired() == 0
