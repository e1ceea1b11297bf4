"""The automatic sweeps keep up with a process that makes many sessions.

A soak of the memory store (2,000 requests a second, sessions of a few
seconds that most clients never come back to) found its records growing
by about 100 a second without end, the live ones steady at 1,500: the
sweeper removed one batch of 100 a second at most. The file, SQLite and
SQL stores share the sweeper, and their files and rows grew the same way.
"""

from __future__ import annotations

from typing import Any

import pytest
from helpers import FakeClock, call, increment_app, make_store

from wsgisession import SessionMiddleware
from wsgisession.cleanup import SWEEP_BATCH

pytestmark = pytest.mark.slow  # 20 seconds of sessions on two stores

LIFETIME = 5  # seconds: cookie_age of the sessions made
PER_SECOND = 2 * SWEEP_BATCH  # new sessions a second, more than a batch
SECONDS = 20
LIVE = LIFETIME * PER_SECOND


@pytest.mark.parametrize("kind", ["memory", "file", "sqlite"])
def test_more_new_sessions_a_second_than_a_batch_do_not_pile_up(
    kind: str, tmp_path: Any, frozen_clock: FakeClock
) -> None:
    store = make_store(kind, tmp_path)
    app = SessionMiddleware(
        increment_app, store, cookie_age=LIFETIME, cleanup_interval=1
    )
    for _ in range(SECONDS * PER_SECOND):  # cookie-less writes, never revisited
        call(app, "csrf", None)
        frozen_clock.advance(1 / PER_SECOND)
    expired = store.clear_expired()
    # The file and SQLite stores' sweeps find the expired records among the
    # live ones: some wait; not more than there are live ones. One batch a
    # second left 1,600 (memory, SQLite) and 2,243 (file) after 20 s.
    assert expired <= LIVE, (
        f"{expired} expired records after {SECONDS} s of {PER_SECOND} new "
        f"sessions a second (about {LIVE} live): the sweeps fell behind"
    )
