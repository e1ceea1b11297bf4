"""MemoryStore: sessions in a dict of this process, for tests and development."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from ..errors import LockTimeout
from .base import Merge, Progress, Record, Store, now, storage_key

_LOCK_SLOTS = 256


class MemoryStore(Store):
    """Keeps serialized records in a dict guarded by a lock.

    Records are bytes, so changing a value after ``save()`` never changes
    the stored session. Not shared between processes: use it for tests and
    single-process development only.
    """

    ini_name = "memory"

    def __init__(self) -> None:
        self._records: dict[str, tuple[bytes, float]] = {}
        self._lock = threading.Lock()
        self._request_locks = [threading.Lock() for _ in range(_LOCK_SLOTS)]

    def _live(self, name: str) -> tuple[bytes, float] | None:
        record = self._records.get(name)
        if record is None or record[1] <= now():
            return None
        return record

    def load(self, session_key: str) -> Record | None:
        record = self._live(storage_key(session_key))
        return None if record is None else Record(record[0], record[1])

    def create(self, session_key: str, payload: bytes, expires_at: float) -> str | None:
        name = storage_key(session_key)
        with self._lock:
            if self._live(name) is not None:
                return None
            self._records[name] = (payload, expires_at)
        return session_key

    def update(self, session_key: str, merge: Merge, loaded: Record | None) -> str:
        name = storage_key(session_key)
        with self._lock:
            current = self._live(name)
            payload, expires_at = merge(None if current is None else current[0])
            if expires_at <= now():
                self._records.pop(name, None)
            else:
                self._records[name] = (payload, expires_at)
        return session_key

    def delete(self, session_key: str) -> None:
        with self._lock:
            self._records.pop(storage_key(session_key), None)

    def clear_expired(self, progress: Progress | None = None) -> int:
        with self._lock:
            moment = now()
            expired = [name for name, (_, at) in self._records.items() if at <= moment]
            for name in expired:
                del self._records[name]
        return len(expired)

    @contextlib.contextmanager
    def lock(self, session_key: str, timeout: float, ttl: float) -> Iterator[None]:
        """Hold one of a fixed pool of thread locks (``ttl`` is moot in one process)."""
        slot = int(storage_key(session_key)[:8], 16) % _LOCK_SLOTS
        request_lock = self._request_locks[slot]
        if not request_lock.acquire(timeout=timeout):
            raise LockTimeout(f"session lock not obtained within {timeout} s")
        try:
            yield
        finally:
            request_lock.release()

    def __len__(self) -> int:
        return len(self._records)

    def __repr__(self) -> str:
        return f"MemoryStore(<{len(self._records)} records>)"
