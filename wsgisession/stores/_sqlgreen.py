"""psycopg 3 in a gevent worker that patched after psycopg was imported.

psycopg chooses how it waits for the server once, as it is imported: in C
unless gevent has patched ``select`` by then. ``gunicorn --preload -k
gevent`` imports the app, and with the SQL store's engine the driver, in
the master, unpatched; each worker patches after forking. Every query and
connect of such a worker then waits in C, and stalls all its greenlets: one
ticking every 10 ms beside a query that waited 1 s at the server waited
0.99 s (11-19 ms with psycopg imported after patching). The store cannot
undo psycopg's choice without changing the driver for the whole app, so it
says what is wrong, once per process, and how to patch first.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

__all__ = ["warn_if_psycopg_blocks_gevent"]

#: The SQL store's logger, which docs/deploying.rst names.
logger = logging.getLogger("wsgisession.stores.sql")

_checked_in = 0  # the process that looked last


def warn_if_psycopg_blocks_gevent() -> None:
    """Log a WARNING, once per process, if gevent patched this process after
    psycopg chose to wait for the server in C."""
    global _checked_in
    if _checked_in == os.getpid():
        return
    _checked_in = os.getpid()
    waiting: Any = sys.modules.get("psycopg.waiting")
    monkey: Any = sys.modules.get("gevent.monkey")
    if waiting is None or monkey is None:
        return
    waits_in_c = getattr(waiting, "wait_c", None)
    if waits_in_c is None or getattr(waiting, "wait", None) is not waits_in_c:
        return
    try:
        patched = bool(monkey.is_module_patched("select"))
    except Exception:  # noqa: BLE001 - a gevent without it: nothing to say
        return
    if patched:
        logger.warning(
            "psycopg was imported before gevent patched this process: each "
            "query and connect waits in C and stalls every greenlet of the "
            "worker. Patch before the app is imported (with gunicorn "
            "--preload: 'from gevent import monkey; monkey.patch_all()' at "
            "the top of gunicorn.conf.py); see the deploying docs"
        )
