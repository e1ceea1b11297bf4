"""A model of the session API over many requests, for test_session_model.py.

The model is what docs/session.rst promises, written as plainly as it can
be: a dict of stored sessions keyed by id (data, expiry setting, when the
record expires) and the browser's cookie jar. :class:`ModelRequest` runs
one request's operations on the model next to the real session and says
what the response must do with the cookie.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
from typing import Any

from wsgisession.errors import SessionInterrupted

COOKIE_AGE = 1000
COOKIE_NAME = "sessionid"

Expiry = None | int | float  # float: a fixed moment (a Unix time)


@dataclasses.dataclass(frozen=True)
class Policy:
    """The options the model follows (the middleware gets the same)."""

    expire_at_browser_close: bool = False
    absolute_timeout: int | None = None
    reissue_time: int | None = None
    save_every_request: bool = False

    def options(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def lifetime(self, expiry: Expiry, created: float, now: float) -> float:
        """Seconds a record created at ``created`` and saved ``now`` lives."""
        if isinstance(expiry, float):
            age = expiry - now
        else:
            age = expiry or COOKIE_AGE
        if self.absolute_timeout is not None:
            age = min(age, created + self.absolute_timeout - now)
        return age

    def max_age(self, expiry: Expiry, created: float, now: float) -> int | None:
        """The cookie's Max-Age for a save ``now``: None at browser close."""
        if expiry == 0 or (expiry is None and self.expire_at_browser_close):
            return None
        return int(self.lifetime(expiry, created, now))


@dataclasses.dataclass
class Stored:
    """A stored session as the model keeps it."""

    data: dict[str, Any]
    expiry: Expiry
    expires_at: float
    created: float
    saved_at: float
    owner: str | None = None


@dataclasses.dataclass
class Jar:
    """The browser's session cookie: its value and when it ends (None:
    at browser close)."""

    value: str | None = None
    ends: float | None = None

    def sent(self, now: float) -> str | None:
        if self.value is not None and self.ends is not None and self.ends <= now:
            self.value = None  # the browser dropped it
        return self.value


@dataclasses.dataclass
class Outcome:
    """What a response must do: ``cookie`` is None (nothing), "" (delete)
    or the session id it sets, with ``max_age``; ``vary`` says whether it
    carries ``Vary: Cookie``; ``wrote`` whether the request wrote to the store."""

    cookie: str | None = None
    max_age: int | None = None
    vary: bool = False
    wrote: bool = False


class ModelRequest:
    """One request on the model: the session as this request sees it."""

    #: Whether deleting a record ends its session (False: the signed cookie
    #: store, whose old cookies still load after a flush or cycle_key).
    revocable = True
    #: Whether a streamed response saves as its headers go out (the signed
    #: cookie store: its cookie carries the data).
    saves_with_headers = False

    def __init__(
        self, store: dict[str, Stored], offered: str | None, now: float, policy: Policy
    ):
        self.store, self.offered, self.now, self.policy = store, offered, now, policy
        self.owner: str | None = None
        self.created = self.saved_at = now
        self.loaded = self.accessed = self.modified = self.wrote = False
        self.key: str | None = None
        self.data: dict[str, Any] = {}
        self.expiry: Expiry = None
        self.changed: set[str] = set()
        self.deleted: set[str] = set()
        self.cleared = self.expiry_changed = False

    def live(self, key: str | None) -> Stored | None:
        stored = None if key is None else self.store.get(key)
        if stored is None or stored.expires_at <= self.now:
            return None
        timeout = self.policy.absolute_timeout
        if timeout is not None and stored.created + timeout <= self.now:
            return None
        return stored

    def load(self) -> dict[str, Any]:
        self.accessed = True
        if not self.loaded:
            self.loaded = True
            stored = self.live(self.offered)
            if stored is not None:
                self.key = self.offered
                self.data = copy.deepcopy(stored.data)
                self.expiry = stored.expiry
                self.created, self.saved_at = stored.created, stored.saved_at
                self.owner = stored.owner
        return self.data

    def _fresh_changes(self) -> None:
        self.changed, self.deleted = set(), set()
        self.cleared = self.expiry_changed = False

    def set(self, key: str, value: Any) -> None:
        self.load()[key] = copy.deepcopy(value)
        self.changed.add(key)
        self.deleted.discard(key)
        self.modified = True

    def delete(self, key: str) -> None:
        del self.load()[key]
        self.deleted.add(key)
        self.changed.discard(key)
        self.modified = True

    def clear(self) -> None:
        self.load()
        self.data = {}
        self._fresh_changes()
        self.cleared = self.expiry_changed = True
        self.expiry = None
        self.owner = None
        self.modified = True

    def set_expiry(self, value: Any) -> None:
        self.load()
        if isinstance(value, datetime.timedelta):
            value = self.now + value.total_seconds()
        if value is None and self.expiry is None:
            return
        self.expiry = value
        self.expiry_changed = True
        self.modified = True

    def flush(self) -> None:
        self.load()
        if self.key is not None:
            if self.revocable:
                self.store.pop(self.key, None)
            self.wrote = True
        self.key, self.data, self.expiry, self.owner = None, {}, None, None
        self.created = self.now
        self._fresh_changes()
        self.cleared = True
        self.modified = True

    def merged(self, current: Stored) -> tuple[dict[str, Any], Expiry]:
        """This request's changes applied to the record as stored now; its
        owner as stored, unless this request cleared it (a logout), is
        taken as the session's (``owner``)."""
        data = {} if self.cleared else copy.deepcopy(current.data)
        for key in self.changed:
            data[key] = copy.deepcopy(self.data[key])
        for key in self.deleted:
            data.pop(key, None)
        self.owner = None if self.cleared else current.owner
        return data, self.expiry if self.expiry_changed else current.expiry

    def _write(self, key: str, data: dict[str, Any], expiry: Expiry) -> None:
        self.wrote = True
        now = self.now
        expires_at = now + self.policy.lifetime(expiry, self.created, now)
        if expires_at > now:
            stored = Stored(
                copy.deepcopy(data), expiry, expires_at, self.created, now, self.owner
            )
            self.store[key] = stored
        else:
            self.store.pop(key, None)

    def cycle_key(self, new_key: str | None, binding: str | None = None) -> None:
        """cycle_key(), which the real session did giving ``new_key``; or,
        ``binding`` a user id, bind_user(): the same move, owned by that user."""
        self.load()
        data, expiry = self.data, self.expiry
        if self.key is not None and self.revocable:
            current = self.live(self.key)
            if current is None:  # deleted meanwhile
                self.key, self.data, self.expiry = None, {}, None
                self.created, self.owner = self.now, None
                self._fresh_changes()
                self.modified = False
                raise SessionInterrupted()
            data, expiry = self.merged(current)
            self.store.pop(self.key)
        if binding is not None:
            self.owner = binding
        assert new_key is not None
        self._write(new_key, data, expiry)
        self.key, self.data, self.expiry = new_key, copy.deepcopy(data), expiry
        self.saved_at = self.now
        self._fresh_changes()
        self.modified = True

    def bind_user(self, user: str, new_key: str | None) -> None:
        """bind_user(), which the real session did giving ``new_key``: another
        user's session is flushed first (Django's login())."""
        self.load()
        if self.owner not in (None, user):
            self.flush()
        self.cycle_key(new_key, binding=user)

    def finish(
        self, status: str | None, set_key: str | None, streamed: bool = False
    ) -> Outcome:
        """The end of the request; ``status`` None: the app raised.
        ``set_key`` is the id the real response set, for a new record;
        ``streamed``: the headers went out before the save."""
        policy = self.policy
        touched = self.accessed or self.modified or policy.save_every_request
        if status is None or not touched:
            # Headers sent before the body ends, which may still use the session.
            vary = status is not None and streamed and self.offered_cookie
            return Outcome(vary=vary, wrote=self.wrote)
        outcome = Outcome(vary=self.accessed)
        if not self.loaded:
            if not self.offered_cookie:
                return outcome
            self.load()
        if self.key is None and not self.data:  # empty
            if self.offered_cookie:
                outcome.cookie, outcome.vary = "", True
            return outcome
        reissue = policy.reissue_time is not None and self.key is not None
        reissue = reissue and self.saved_at + policy.reissue_time <= self.now
        if not (self.modified or policy.save_every_request or reissue):
            return outcome
        if int(status[:3]) >= 500:
            return outcome
        outcome.vary = True
        streamed = streamed and not self.saves_with_headers
        if streamed:  # the cookie of the session as this request knows it
            outcome.cookie = self.key or set_key
            outcome.max_age = policy.max_age(self.expiry, self.created, self.now)
        if self.key is not None and self.revocable:
            current = self.live(self.key)
            if current is None:  # SessionInterrupted: dropped, cookie deleted
                outcome.cookie = outcome.cookie if streamed else ""
                return outcome
            data, self.expiry = self.merged(current)
            key = self.key
        else:  # a new record; or a new cookie, whose data only this request has
            data, key = self.data, set_key
            assert key, "the model expected a new session's cookie"
        self._write(key, data, self.expiry)
        if not streamed:
            outcome.cookie = key
            outcome.max_age = policy.max_age(self.expiry, self.created, self.now)
        return outcome

    #: Whether the request carried a session cookie (set by the driver).
    offered_cookie = False
