"""``get_expiry_age()`` and ``get_expiry_date()`` check ``expiry`` as
``set_expiry()`` does, and ``modification`` as a datetime: ``expiry=nan``
raised TypeError where ``set_expiry(nan)`` raises ValueError,
``get_expiry_date(modification=5)`` an AttributeError, and
``get_expiry_date(expiry=10**12)`` an OverflowError."""

from __future__ import annotations

import datetime
from collections.abc import Iterator

import pytest

from wsgisession import Session, SessionMiddleware
from wsgisession.stores import MemoryStore


def no_app(environ: object, start_response: object) -> list[bytes]:
    return []


@pytest.fixture
def session() -> Iterator[Session]:
    with SessionMiddleware(no_app, store=MemoryStore()) as middleware:
        yield middleware.open_session()


@pytest.mark.parametrize("getter", ["get_expiry_age", "get_expiry_date"])
@pytest.mark.parametrize(
    ("expiry", "error"),
    [
        (float("nan"), ValueError),
        (10**12, ValueError),
        (1.5, TypeError),
        ("1", TypeError),
    ],
)
def test_a_bad_expiry_fails_as_set_expiry_does(
    session,
    getter: str,
    expiry: object,
    error: type[Exception],  # type: ignore[no-untyped-def]
) -> None:
    with pytest.raises(error):
        session.set_expiry(expiry)
    with pytest.raises(error):
        getattr(session, getter)(expiry=expiry)


@pytest.mark.parametrize("getter", ["get_expiry_age", "get_expiry_date"])
def test_modification_must_be_a_datetime(session: Session, getter: str) -> None:
    with pytest.raises(TypeError, match="modification must be a datetime"):
        getattr(session, getter)(modification=5)


def test_good_arguments_still_answer(session: Session) -> None:
    moment = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
    assert session.get_expiry_age(modification=moment, expiry=60) == 60
    assert session.get_expiry_date(
        modification=moment, expiry=datetime.timedelta(seconds=60)
    ) == moment + datetime.timedelta(seconds=60)
