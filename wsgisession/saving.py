"""How a session is written: a fresh record, or this request's changes merged.

A save never writes back a whole snapshot taken at load time. It hands the
store a ``merge`` function that the store calls inside its atomic section
with the record as it is now: when nobody changed the record since this
request loaded it, the session's own data is written as it stands;
otherwise only the keys this request set or deleted (or a ``clear()``) are
applied on top of what the store holds.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from . import clock
from .cookies import check_cookie_size
from .errors import SessionError, SessionInterrupted, UnserializableValue
from .expiry import Expiry, decode_moment
from .stores.base import Record

if TYPE_CHECKING:
    from .session import Session

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
_CREATE_ATTEMPTS = 5

State = tuple[dict[str, Any], float, Expiry, Record]


def save(session: Session, *, detect: bool = True) -> None:
    """Persist ``session``: create its record, or merge its changes into it.

    ``detect=False`` is for a caller that has just run
    ``session.detect_changes()`` itself, so values are not serialized twice.
    """
    session._get_data()
    if detect:
        session.detect_changes()
    if session._session_key is None or not session._stored:
        create(session)
    else:
        update(session)
    if session._store.client_side:  # the key is the cookie: it must fit
        assert session._session_key is not None
        check_cookie_size(
            session._settings, session._session_key, session.cookie_max_age()
        )


def create(session: Session) -> None:
    """Store the session's data as a new record under a new (or reserved) key."""
    data = session._get_data()
    now = clock.now()
    created = session._created if session._created is not None else now
    expiry = session._expiry
    payload = encode(session, data, created, expiry)
    expires_at = session._expires_at(expiry, created, now)
    store = session._store
    key = session._session_key or store.generate_key()
    for _ in range(_CREATE_ATTEMPTS):
        stored_key = store.create(key, payload, expires_at)
        if stored_key is not None:
            break
        key = store.generate_key()
    else:
        raise SessionError(f"{store!r} refused {_CREATE_ATTEMPTS} fresh session keys")
    _saved(session, stored_key, (data, created, expiry, Record(payload, expires_at)))


def update(session: Session) -> None:
    """Apply this request's changes to the stored record, atomically."""
    loaded = session._record
    outcome: list[State] = []

    def merge(current: bytes | None) -> tuple[bytes, float]:
        if current is None:
            raise SessionInterrupted()
        if loaded is not None and current == loaded.payload:
            assert session._data is not None and session._created is not None
            data, created, expiry = session._data, session._created, session._expiry
        else:
            data, created, expiry = _apply_changes(session, current)
        payload = encode(session, data, created, expiry)
        expires_at = session._expires_at(expiry, created, clock.now())
        outcome[:] = [(data, created, expiry, Record(payload, expires_at))]
        return payload, expires_at

    assert session._session_key is not None
    key = session._store.update(session._session_key, merge, loaded)
    _saved(session, key, outcome[0])


def _apply_changes(
    session: Session, current: bytes
) -> tuple[dict[str, Any], float, Expiry]:
    decoded = decode(session, current)
    if isinstance(decoded, tuple):
        base, created, expiry = decoded
    else:
        base, created, expiry = {}, session._created or clock.now(), None
    if session._cleared:
        base = {}
    assert session._data is not None
    for key in session._changed:
        base[key] = session._data[key]
    for key in session._deleted:
        base.pop(key, None)
    if session._expiry_changed:
        expiry = session._expiry
    return base, created, expiry


def encode(
    session: Session, data: dict[str, Any], created: float, expiry: Expiry
) -> bytes:
    """The record's bytes; an unserializable value is reported by its key."""
    envelope = {"v": FORMAT_VERSION, "data": data, "created": created, "expiry": expiry}
    dumps = session._serializer.dumps
    try:
        return dumps(envelope)
    except Exception as exc:
        for key, value in data.items():
            try:
                dumps({"value": value})
            except Exception:  # noqa: BLE001 - whatever the serializer raises
                raise UnserializableValue(key, value, str(exc)) from exc
        raise


def decode(
    session: Session, payload: bytes
) -> tuple[dict[str, Any], float, Expiry] | None:
    """The record's parts (data, created, expiry), or None, logged, if it is corrupt."""
    try:
        envelope = session._serializer.loads(payload)
        if envelope.get("v") != FORMAT_VERSION:
            raise ValueError(f"unknown record format {envelope.get('v')!r}")
        data, created, expiry = (
            envelope["data"],
            envelope["created"],
            envelope["expiry"],
        )
        if not isinstance(data, dict) or not isinstance(created, (int, float)):
            raise TypeError("malformed envelope")
        if not (expiry is None or type(expiry) is int or isinstance(expiry, str)):
            raise TypeError(f"malformed expiry {expiry!r}")
        decode_moment(expiry)
    except Exception as exc:  # noqa: BLE001 - any decoding failure means corrupt
        logger.warning(
            "corrupt session record in %r (%s: %s); starting an empty session",
            session._store,
            type(exc).__name__,
            exc,
        )
        return None
    return data, float(created), expiry


def _saved(session: Session, key: str, state: State) -> None:
    data, created, expiry, record = state
    session._session_key, session._stored, session._record = key, True, record
    session._data, session._created, session._expiry = data, created, expiry
    session._changed.clear()
    session._deleted.clear()
    session._cleared = False
    session._expiry_changed = False
    session._take_snapshots()
