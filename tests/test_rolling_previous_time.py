"""A rolling deploy from the release before the ``time`` change (9f3bd2d).

This release's ``json`` serializer writes a ``time`` in a ``zoneinfo`` zone,
or one with ``fold=1``, as a list (its text, its zone's name, its fold);
the release before read a ``time`` as ISO text only
(``datetime.time.fromisoformat``), so its processes take such a record for
a damaged one. :class:`PreviousReleaseSerializer` reads as that release
did, and the tests check what upgrading.rst says an old process does with
a session a new one saved (the same outcomes a run of 9f3bd2d's code
beside this one gave on the file, SQLite, Redis, memcached and PostgreSQL
stores).
"""

from __future__ import annotations

import datetime
import json
import logging
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import session_flows as flows
from test_docs_facts import page_text

from wsgisession import SessionMiddleware
from wsgisession.serializers import TaggedJSONSerializer
from wsgisession.stores.base import Store

NEW_YORK = ZoneInfo("America/New_York")
#: Times the previous release cannot read, and times it reads as written.
UNREADABLE = {
    "zoneinfo": datetime.time(12, 30, tzinfo=NEW_YORK),
    "naive-fold": datetime.time(1, 30, fold=1),
    "zoneinfo-fold": datetime.time(1, 30, fold=1, tzinfo=NEW_YORK),
}
READABLE = {
    "naive": datetime.time(1, 30),
    "fixed-offset": datetime.time(
        1, 30, tzinfo=datetime.timezone(datetime.timedelta(hours=2))
    ),
}


def _previous_release_time(obj: dict[str, Any]) -> dict[str, Any]:
    """Fail on a tagged ``time`` as the previous release's decoder did."""
    if len(obj) == 1 and not isinstance(obj.get(" t", ""), str):
        raise TypeError("fromisoformat: argument must be str")
    return obj


class PreviousReleaseSerializer(TaggedJSONSerializer):
    """Reads records as the release before this one: a ``time`` as text only."""

    def loads(self, data: bytes) -> Any:
        json.loads(data, object_hook=_previous_release_time)
        return super().loads(data)


def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [])
    return []


@pytest.fixture(params=flows.STORE_KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    return flows.make_store(request.param, tmp_path)


@pytest.mark.parametrize("value", UNREADABLE.values(), ids=UNREADABLE.keys())
def test_an_old_process_takes_a_new_time_for_damage_and_its_save_drops_the_data(
    store: Store, value: datetime.time, caplog: pytest.LogCaptureFixture
) -> None:
    new = SessionMiddleware(app, store=store)
    old = SessionMiddleware(app, store=store, serializer=PreviousReleaseSerializer())
    session = new.open_session()
    session.update({"at": value, "user": "ann"})
    session.save()
    with caplog.at_level(logging.WARNING, logger="wsgisession"):
        on_old = old.open_session(session.session_key)
        assert dict(on_old) == {}
    assert "corrupt session record" in caplog.text
    assert dict(new.open_session(session.session_key)) == {"at": value, "user": "ann"}
    on_old["cart"] = 1
    on_old.save()  # the old process's next save: the new record's data is gone
    assert dict(new.open_session(on_old.session_key)) == {"cart": 1}


@pytest.mark.parametrize("value", READABLE.values(), ids=READABLE.keys())
def test_an_old_process_reads_any_other_time_of_a_new_one(
    store: Store, value: datetime.time
) -> None:
    new = SessionMiddleware(app, store=store)
    old = SessionMiddleware(app, store=store, serializer=PreviousReleaseSerializer())
    session = new.open_session()
    session["at"] = value
    session.save()
    loaded = old.open_session(session.session_key)["at"]
    assert (loaded, loaded.tzinfo, loaded.fold) == (value, value.tzinfo, value.fold)


def test_an_old_process_neither_lists_nor_revokes_one_such_session_by_handle(
    store: Store,
) -> None:
    new = SessionMiddleware(app, store=store)
    old = SessionMiddleware(app, store=store, serializer=PreviousReleaseSerializer())
    sessions = []
    for data in ({"at": UNREADABLE["zoneinfo"]}, {"plain": 1}):
        session = new.open_session()
        session.update(data)
        session.bind_user("ann")
        session.save()
        sessions.append(session)
    assert len(old.user_sessions("ann")) == 1
    assert old.revoke_user_session("ann", sessions[0].handle) is False
    assert new.open_session(sessions[0].session_key)["at"] == UNREADABLE["zoneinfo"]
    assert old.revoke_user_sessions("ann") == 2  # all of them: it still ends it
    assert new.user_sessions("ann") == []


def test_upgrading_says_what_the_previous_release_does_with_such_a_time() -> None:
    section = page_text("upgrading.rst").split("**Several versions at once**")[1]
    section = section.split("Changes of your own")[0]
    for fact in (
        "a ``time`` in a ``zoneinfo`` zone or with ``fold=1``",
        "loads as empty",
        "``corrupt session record``",
        "its next save there replaces the record",
        "``user_sessions()`` there leaves it out",
        "``revoke_user_session()`` with its handle returns ``False``",
        "``revoke_user_sessions()`` still ends it",
        "loads naive",
    ):
        assert fact in section, fact
