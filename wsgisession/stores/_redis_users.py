"""RedisStore's user indexes: one sorted set per user, of record names.

The set lives under ``key_prefix + "user:" + user_storage_key(user_id)``
(a hash of the user id, on its own slot in a Redis Cluster) and holds the
record names (``storage_key`` of each id, never the id). A member's score
says how far its creation got: the time (ms) its entry was written while
the record may still be on its way, 0 once the record exists. A login
writes the entry, then the record, then sets the score to 0: no bound
session is ever missing from its index. Pruning (at login and listing)
drops an entry whose record is gone only if its score is 0 or older than
``PENDING_GRACE``, and only if the score is still the one it read (a small
script on the set's key alone), so it never drops the entry of a session
being created; the set goes with its last member (Redis deletes an empty
sorted set in the same step). The indexes of users who never come back
are pruned by the store's sweeps (``_redis_sweep``). Every command names
one key: nothing crosses slots.
"""

from __future__ import annotations

from contextlib import suppress
from typing import Any, Protocol

from ..errors import StoreUnavailable
from ._redis_scripts import Lua
from ._userentries import Entries, read_live, stale_entries
from .base import Record, now, user_storage_key

__all__ = ["RedisCommands", "RedisUserIndex"]

#: The infix of user index keys (records are ``key_prefix`` + 64 hex digits).
USER_INFIX = "user:"

# KEYS[1]: a user's set. ARGV: member, score, member, score... Removes each
# member whose score is still the one given. Returns how many it removed.
_PRUNE = """
local removed = 0
for i = 1, #ARGV, 2 do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) == tonumber(ARGV[i + 1]) then
    removed = removed + redis.call('ZREM', KEYS[1], ARGV[i])
  end
end
return removed
"""


_PRUNE_LUA = Lua.of(_PRUNE)


class RedisCommands(Protocol):
    """What the index needs of its RedisStore."""

    def _call(self, command: str, *args: Any, **kwargs: Any) -> Any: ...
    def _script(self, lua: Lua, name: str, *args: Any) -> Any: ...
    def _decode(self, name: str, value: bytes | None) -> tuple[bytes, float] | None: ...
    def _name(self, session_key: str) -> str: ...
    def _is_cluster(self) -> bool: ...
    def create(
        self, session_key: str, payload: bytes, expires_at: float
    ) -> str | None: ...


class RedisUserIndex:
    """The user-session operations of one RedisStore."""

    def __init__(self, store: RedisCommands, key_prefix: str) -> None:
        self._store, self._prefix = store, key_prefix
        self._prune_lua = _PRUNE_LUA

    def key(self, user_id: str) -> str:
        """The name of the user's sorted set."""
        return self._prefix + USER_INFIX + user_storage_key(user_id)

    def records(self, user_id: str) -> dict[str, Record]:
        """Record name -> live record of the user's sessions; prunes dead entries.

        One ``ZRANGE`` and one ``MGET`` (split by slot in a cluster), again
        if a record was missing (see ``_userentries``)."""
        key, held = self.key(user_id), set[str]()
        live, entries = read_live(
            lambda: self._entries(key), lambda names: self._live_records(names, held)
        )
        self._prune_stale(key, entries, held)
        return live

    def prune(self, key: str) -> tuple[int, int]:
        """Prune the index ``key`` as a listing does, without listing (the
        sweep of users who never come back): how many entries it removed,
        and how many it read. One ``ZRANGE`` and one ``MGET`` (per slot)."""
        entries, held = self._entries(key), set[str]()
        if entries:
            self._live_records(list(entries), held)
        return self._prune_stale(key, entries, held), len(entries)

    def _prune_stale(self, key: str, entries: Entries, held: set[str]) -> int:
        """Remove the stale ``entries`` of index ``key`` still as read; how
        many went. Redis deletes the set with its last member."""
        stale = stale_entries(entries, held)
        if not stale:
            return 0
        pairs = [item for pair in stale.items() for item in pair]
        return int(self._store._script(self._prune_lua, key, *pairs))

    def _entries(self, key: str) -> Entries:
        members = self._store._call("zrange", key, 0, -1, withscores=True)
        return {m.decode("ascii", "replace"): int(score) for m, score in members}

    def _live_records(self, names: list[str], held: set[str]) -> dict[str, Record]:
        """The live records of ``names``; adds to ``held`` every name whose
        key Redis still holds (live or not, by this host's clock)."""
        live: dict[str, Record] = {}
        values = self._mget([self._prefix + name for name in names])
        for name, value in zip(names, values, strict=True):
            if value is not None:
                held.add(name)
            record = self._store._decode(self._prefix + name, value)
            if record is not None:
                live[name] = Record(record[0], record[1], value)
        return live

    def _mget(self, names: list[str]) -> list[bytes | None]:
        """The values of ``names``, in one command (per slot on a cluster)."""
        store = self._store
        if store._is_cluster():  # MGET per slot (no cross-slot command)
            return list(store._call("mget_nonatomic", names))
        return list(store._call("mget", names))

    def create(
        self, user_id: str, session_key: str, payload: bytes, expires_at: float
    ) -> str | None:
        """Prune, write the pending entry, create the record, confirm the entry."""
        store = self._store
        name = store._name(session_key)
        member = name[len(self._prefix) :]
        # Prune the dead entries first; a listed record on a node that is
        # down must not refuse a login whose own keys live elsewhere.
        with suppress(StoreUnavailable):
            self.records(user_id)
        key = self.key(user_id)
        pending = max(1, int(now() * 1000))
        added = store._call("zadd", key, {member: pending})
        if store.create(session_key, payload, expires_at) is None:
            if added:  # ours, and no record will come: take it back
                store._script(self._prune_lua, key, member, pending)
            return None
        # Not XX: a listing may have pruned the pending entry meanwhile (its
        # host's clock ahead by PENDING_GRACE), and the record now exists.
        store._call("zadd", key, {member: 0})
        return session_key

    def delete_record(self, record_name: str) -> bool:
        """Delete the record (``GETDEL``); whether a live one was there. Its
        index entry goes at the next pruning."""
        name = self._prefix + record_name
        value = self._store._call("getdel", name)
        return self._store._decode(name, value) is not None
