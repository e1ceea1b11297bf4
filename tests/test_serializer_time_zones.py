"""Aware datetimes keep their time zone: a ``zoneinfo`` zone comes back as
itself, so that arithmetic on the loaded value (the next day, across a
change of summer time) gives what it gave on the value saved."""

from __future__ import annotations

import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import session_flows as flows

from wsgisession import Session
from wsgisession.serializers import TaggedJSONSerializer
from wsgisession.stores.base import Store

PARIS = ZoneInfo("Europe/Paris")
DAY = datetime.timedelta(days=1)


@pytest.fixture(params=flows.STORE_KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    return flows.make_store(request.param, tmp_path)


def saved_and_loaded(store: Store, value: object) -> object:
    session = Session(store)
    session["value"] = value
    session.save()
    return Session(store, session_key=session.session_key)["value"]


def test_a_zoneinfo_datetime_comes_back_in_its_zone(store: Store) -> None:
    # The day before summer time starts in Paris (31 March 2024).
    meeting = datetime.datetime(2024, 3, 30, 12, tzinfo=PARIS)
    loaded = saved_and_loaded(store, {"meeting": meeting})["meeting"]  # type: ignore[index]
    assert loaded == meeting
    assert loaded.tzinfo is PARIS
    assert (loaded + DAY).hour == (meeting + DAY).hour == 12
    assert (loaded + DAY).utcoffset() == datetime.timedelta(hours=2)


@pytest.mark.parametrize("fold", [0, 1])
def test_the_repeated_hour_keeps_its_fold(fold: int) -> None:
    # 02:30 happens twice in Paris on 27 October 2024: fold tells which.
    moment = datetime.datetime(2024, 10, 27, 2, 30, fold=fold, tzinfo=PARIS)
    serializer = TaggedJSONSerializer()
    loaded = serializer.loads(serializer.dumps({"at": moment}))["at"]
    assert (loaded.tzinfo, loaded.fold) == (PARIS, fold)
    assert loaded.utcoffset() == moment.utcoffset()
    assert loaded.timestamp() == moment.timestamp()


def test_a_fixed_offset_or_naive_datetime_is_written_as_before() -> None:
    serializer = TaggedJSONSerializer()
    fixed = datetime.timezone(datetime.timedelta(hours=5, minutes=30))
    for moment in (
        datetime.datetime(2024, 1, 2, 3, 4, 5),
        datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=fixed),
    ):
        data = serializer.dumps({"at": moment})
        assert data == b'{"at":{" dt":"%s"}}' % moment.isoformat().encode()
        loaded = serializer.loads(data)["at"]
        assert (loaded, loaded.tzinfo) == (moment, moment.tzinfo)
