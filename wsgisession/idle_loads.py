"""Loads of a session the app never used, for a save of the middleware's own.

``save_every_request`` and Flask's ``SESSION_REFRESH_EACH_REQUEST`` save
the session of every request that carries its cookie, to move its expiry:
a health check, a static file. With ``lock = true`` that load took the
lock, so while another request of the session held it (a long poll, a
slow report) such a request waited ``lock_timeout``, then failed (or,
with Flask, went out after the wait). The request has nothing to save
meanwhile: the holder saves the session, with a new expiry, when it ends.
So the load tries the lock once; held, the re-save is skipped.
"""

from __future__ import annotations

import logging

from .errors import LockTimeout
from .session import Session

__all__ = ["load_unless_locked"]

logger = logging.getLogger(__name__)


def load_unless_locked(session: Session) -> bool:
    """Load ``session`` (the app never did) for a re-save of the middleware's
    own; False, with nothing loaded, if another request holds its lock.

    Loaded, the session counts as accessed, as after any load; not loaded,
    ``accessed`` is left as it was. A use of the session after a failed try
    (a streamed body's) loads it again, and waits for the lock as usual.
    """
    if session._data is not None:
        return True
    accessed = session.accessed
    record = session._record
    if record is None:  # the one the load opens (see Session._load)
        record = session._record = session._new_record()
    record.waits_for_lock = False
    try:
        session.load()
    except LockTimeout:
        session.accessed = accessed
        logger.debug(
            "session not saved again: another request holds its lock "
            "(and saves it when it ends)"
        )
        return False
    finally:
        del record.waits_for_lock  # the class's: wait, for any later load
    return True
