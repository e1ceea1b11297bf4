"""Expiry arithmetic, kept apart from the session so that it reads as rules.

A session's custom expiry is stored as Django stores it: None (the global
policy), an int of seconds of inactivity (0 = browser close), or an ISO-8601
string for a fixed moment. All datetimes here are aware, in UTC.
"""

from __future__ import annotations

import datetime
import math

from . import clock

Expiry = None | int | str

#: What ``set_expiry()`` takes (and the ``expiry=`` of the ``get_expiry_*``
#: getters): seconds, a moment, a duration from now, or None.
ExpiryArgument = int | datetime.datetime | datetime.timedelta | None

UTC = datetime.UTC

#: The longest duration accepted anywhere (100 years): beyond it, date
#: arithmetic and the stores' expiry fields overflow.
MAX_SECONDS = 100 * 366 * 86400

#: How far ahead of this host's clock the clock that saved a record may
#: have been, for :func:`check_stored` (a year: far from any overflow).
CLOCK_SLACK = 366 * 86400

_ACCEPTED = (
    f"seconds as an int from -{MAX_SECONDS} to {MAX_SECONDS} (0 = browser close), "
    "a timedelta or datetime within 100 years of now, or None"
)


def utcnow() -> datetime.datetime:
    """The current time, aware, in UTC."""
    return datetime.datetime.fromtimestamp(clock.now(), UTC)


def as_utc(moment: datetime.datetime) -> datetime.datetime:
    """``moment`` as an aware UTC datetime; a naive one is taken to be UTC.

    Naive as Python defines it: no tzinfo, or one that gives no offset
    (``astimezone()`` would take that one in the process's local zone).
    """
    if moment.utcoffset() is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def encode_expiry(value: object) -> Expiry:
    """The stored form of a ``set_expiry()`` argument.

    TypeError for a value of the wrong type; ValueError for one no store
    could hold (``10**400``, ``inf``, a moment centuries away).
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError(f"set_expiry() takes {_ACCEPTED}; not a bool")
    if isinstance(value, int):
        if not -MAX_SECONDS <= value <= MAX_SECONDS:
            raise ValueError(
                f"set_expiry({value}) is out of range; it takes {_ACCEPTED}"
            )
        return value
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"set_expiry({value}) cannot be stored; it takes {_ACCEPTED}")
    now = utcnow()
    try:
        if isinstance(value, datetime.timedelta):
            moment = now + value
        elif isinstance(value, datetime.datetime):
            moment = as_utc(value)
        else:
            raise TypeError(
                f"set_expiry() takes {_ACCEPTED}; not {type(value).__name__}"
            )
        in_range = abs((moment - now).total_seconds()) <= MAX_SECONDS
    except OverflowError:
        in_range = False
    if not in_range:
        raise ValueError(f"set_expiry({value!r}) is out of range; it takes {_ACCEPTED}")
    return moment.isoformat()


def decode_moment(expiry: object) -> datetime.datetime | None:
    """The fixed moment a stored expiry names, or None if it names none."""
    if isinstance(expiry, datetime.datetime):
        return as_utc(expiry)
    if isinstance(expiry, str):
        return as_utc(datetime.datetime.fromisoformat(expiry))
    return None


def check_stored(expiry: int | str) -> None:
    """ValueError unless a record's ``expiry`` is one :func:`encode_expiry`
    could have written: out of its range (a damaged or hostile record), the
    date arithmetic of every save of the session would fail. A moment is
    judged with :data:`CLOCK_SLACK` to spare: the clock that wrote it may
    have been ahead of this one (set back since, another host)."""
    if isinstance(expiry, str):
        moment = decode_moment(expiry)
        assert moment is not None
        seconds = abs((moment - utcnow()).total_seconds())
        in_range = seconds <= MAX_SECONDS + CLOCK_SLACK
    else:
        in_range = -MAX_SECONDS <= expiry <= MAX_SECONDS
    if not in_range:
        raise ValueError(f"expiry {expiry!r} is out of range")


def given_moment(
    expiry: object, modification: datetime.datetime
) -> datetime.datetime | None:
    """The fixed moment an expiry names, or None for seconds (or None).

    It reads what ``set_expiry()`` takes and what a record holds: a
    datetime, an ISO-8601 string, or a timedelta (counted from
    ``modification``, as ``set_expiry()`` counts it from now); TypeError
    for a value of any other type.
    """
    if isinstance(expiry, datetime.timedelta):
        return as_utc(modification) + expiry
    if expiry is None or isinstance(expiry, int):
        return None
    moment = decode_moment(expiry)
    if moment is None:
        raise TypeError(f"unusable expiry {expiry!r}")
    return moment


def expiry_age(expiry: object, modification: datetime.datetime, cookie_age: int) -> int:
    """Seconds from ``modification`` until the session expires (Django's rule).

    No custom expiry, or browser-close (0), gives ``cookie_age``; an int is
    returned as it is; a moment gives the whole seconds left until it.
    """
    moment = given_moment(expiry, modification)
    if moment is None:
        return expiry if isinstance(expiry, int) and expiry else cookie_age
    delta = moment - as_utc(modification)
    return delta.days * 86400 + delta.seconds


def expiry_date(
    expiry: object, modification: datetime.datetime, cookie_age: int
) -> datetime.datetime:
    """The moment the session expires if saved at ``modification``."""
    moment = given_moment(expiry, modification)
    if moment is not None:
        return moment
    seconds = expiry if isinstance(expiry, int) and expiry else cookie_age
    return as_utc(modification) + datetime.timedelta(seconds=seconds)


def cut_age(
    age: int, modification: datetime.datetime, end: datetime.datetime | None
) -> int:
    """``age`` (seconds from ``modification``), cut to the whole seconds left
    until ``end``, the moment ``absolute_timeout`` ends the session (None:
    no such limit)."""
    if end is None:
        return age
    delta = end - as_utc(modification)
    return min(age, delta.days * 86400 + delta.seconds)


def cut_date(
    date: datetime.datetime, end: datetime.datetime | None
) -> datetime.datetime:
    """``date``, or ``end`` if that comes first (see :func:`cut_age`)."""
    return date if end is None or date <= end else end


def seconds_left(expiry: Expiry, now: float, cookie_age: int) -> float:
    """How long a record of ``expiry`` lives if saved at the Unix time ``now``.

    A moment is reached to the microsecond: :func:`expiry_age` counts whole
    seconds (Django's API), which would end the record up to a second early.
    """
    if isinstance(expiry, str):
        moment = decode_moment(expiry)
        assert moment is not None
        return moment.timestamp() - now
    return expiry or cookie_age


def cut_by_absolute_timeout(
    seconds: float, created: float, absolute_timeout: int | None, now: float
) -> float:
    """``seconds``, shortened so that the session ends ``absolute_timeout``
    after ``created`` whatever its activity."""
    if absolute_timeout is None:
        return seconds
    return min(seconds, created + absolute_timeout - now)
