"""RedisStore's sweep of user indexes, so that users who never come back
leave nothing behind.

A user's index (``_redis_users``) has no TTL: a bound session's expiry
moves with every save, which does not touch the index, so an index TTL
could end before a session it lists and "sign out everywhere" would miss
that session. Logins and listings prune only their own user's index, and
under Redis's ``noeviction`` policy the sets of users who never came back
would grow Redis's memory without bound. So the middleware's sweeps walk
the index keys with ``SCAN`` (``MATCH <key_prefix>user:*``, ``TYPE zset``),
a bounded step per call with the cursor kept between calls (one per master
in a Redis Cluster, each scanned on its own node), and prune each index
found exactly as a login does (``RedisUserIndex.prune``: the entry of a
login in progress stays for ``PENDING_GRACE``).

An index left empty is never deleted with ``DEL``, which could take a
login's entry written between the prune and the delete: the prune script's
``ZREM`` of the last member makes Redis delete the set itself, in the same
atomic step, and a later ``ZADD`` makes a new one. A master that does not
answer is skipped until the next sweep: the save that triggered the sweep
has succeeded, and the other masters' indexes still get pruned.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from contextlib import suppress
from typing import Any

from ..errors import StoreUnavailable
from ..logthrottle import ThrottledWarning
from ._redis_users import USER_INFIX, RedisCommands, RedisUserIndex
from ._shared import per_process

__all__ = ["SCAN_COUNT", "IndexSweep"]

# The store's logger, which the docs name (deploying.rst, Logging).
logger = logging.getLogger("wsgisession.stores.redis")

#: The ``COUNT`` of each ``SCAN`` step: how many keys (of any kind) one
#: step looks at on one node.
SCAN_COUNT = 1000

#: The characters ``SCAN``'s ``MATCH`` glob gives a meaning to.
_GLOB_SPECIALS = re.compile(r"([*?\[\]\\])")


def index_pattern(key_prefix: str) -> str:
    """The ``MATCH`` pattern of the user index keys under ``key_prefix``."""
    return _GLOB_SPECIALS.sub(r"\\\1", key_prefix) + USER_INFIX + "*"


class IndexSweep:
    """Where the sweep of one RedisStore's user indexes has got to.

    ``_cursors`` maps a node's name (``""`` for a single server) to the
    cursor of its scan in progress; a node without one starts a new pass.
    ``_found`` holds index keys a scan step returned and no sweep has
    pruned yet.
    """

    def __init__(
        self, store: RedisCommands, index: RedisUserIndex, key_prefix: str
    ) -> None:
        self._store, self._index = store, index
        self._pattern = index_pattern(key_prefix)
        self._cursors: dict[str, int] = {}
        self._found: list[str] = []
        self._next_node = 0
        self._guards: dict[int, threading.Lock] = {}  # see per_process()
        self._warn_unscanned = ThrottledWarning(logger)

    def sweep(self, limit: int) -> int:
        """Prune the next indexes, until ``limit`` index keys and listed
        records are read or no index key is left from the last ``SCAN``
        step (one step on the next masters in turn, until one finds some):
        how many stale entries were removed. A sweep running in another
        thread makes this one return 0 at once."""
        guard, taken = per_process(self._guards, threading.Lock), list[bool]()
        try:
            # Taken by C code that stores the outcome before Python looks
            # for an interrupt (the file store's sweep guard does the same).
            taken.extend(map(guard.acquire, (False,)))
            if not taken[0] or limit <= 0:
                return 0
            if not self._found:
                self._found.extend(self._scan_step())
            return self._prune_found(limit)
        finally:
            if taken == [True]:
                guard.release()

    def _prune_found(self, limit: int) -> int:
        removed, budget = 0, limit
        while budget > 0 and self._found:
            key = self._found.pop()
            budget -= 1
            # A record on a master that is down: this index waits for the
            # next pass.
            with suppress(StoreUnavailable):
                pruned, read = self._index.prune(key)
                removed, budget = removed + pruned, budget - read
        return removed

    def _scan_step(self) -> list[str]:
        """One ``SCAN`` step on each master in turn, from where the last
        sweep stopped, until a step returns index keys; a master that does
        not answer (or refuses ``SCAN``: an ACL without ``+scan``) is
        skipped, with a warning, or its indexes would grow unseen."""
        nodes = self._masters()
        for _ in range(len(nodes)):
            name, node = nodes[self._next_node % len(nodes)]
            self._next_node += 1
            try:
                cursor, keys = self._scan(node, self._cursors.get(name, 0))
            except StoreUnavailable as exc:
                self._warn_unscanned(
                    "%r: SCAN for user indexes failed on %s, skipped: %s",
                    self._store,
                    name or "the server",
                    exc,
                )
                continue
            if cursor:
                self._cursors[name] = cursor
            else:  # the node's pass is over: its next starts afresh
                self._cursors.pop(name, None)
            if keys:
                return keys
        return []

    def full_pass(self) -> Iterator[str]:
        """Every index key, scanned from the start on every master (for
        ``clear_expired``; a master that does not answer raises)."""
        for _name, node in self._masters():
            cursor = 0
            while True:
                cursor, keys = self._scan(node, cursor)
                yield from keys
                if not cursor:
                    break

    def _masters(self) -> list[tuple[str, Any]]:
        """(name, node) of each master to scan: ``("", None)`` alone for a
        single server; in a cluster, the masters of the client's map."""
        if not self._store._is_cluster():
            return [("", None)]
        nodes = self._store._call("get_primaries")
        known = {node.name for node in nodes}
        for gone in set(self._cursors) - known:  # a master that left
            del self._cursors[gone]
        return sorted(((node.name, node) for node in nodes), key=_first)

    def _scan(self, node: Any, cursor: int) -> tuple[int, list[str]]:
        """One ``SCAN`` step on ``node`` (None: the single server)."""
        options: dict[str, Any] = {"match": self._pattern, "count": SCAN_COUNT}
        if node is None:
            cursor, keys = self._store._call("scan", cursor, _type="zset", **options)
        else:
            cursors, keys = self._store._call(
                "scan", cursor, _type="zset", target_nodes=node, **options
            )
            cursor = cursors[node.name]
        return int(cursor), [key.decode("utf-8", "replace") for key in keys]


def _first(pair: tuple[str, Any]) -> str:
    return pair[0]
