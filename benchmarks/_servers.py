"""The memcached, redis-server and PostgreSQL this run starts, and stops, itself.

The process handling is the test suite's (``tests/servers.py``): one child
process per server on a free loopback port; stopping signals that PID only.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Self

logger = logging.getLogger(__name__)

_HELPER = Path(__file__).resolve().parent.parent / "tests" / "servers.py"


def _helper() -> ModuleType:
    """tests/servers.py, which imports its sibling ``listening_ports``."""
    if str(_HELPER.parent) not in sys.path:
        sys.path.append(str(_HELPER.parent))
    spec = importlib.util.spec_from_file_location("_wsgisession_test_servers", _HELPER)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {_HELPER}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Services:
    """memcached and/or redis-server for one run; ``skipped`` says why one is not up."""

    def __init__(self, workdir: Path, wanted: set[str]) -> None:
        self.workdir = workdir
        self.wanted = wanted
        self.memcached: Any = None
        self.redis: Any = None
        self.postgresql: Any = None
        self.skipped: dict[str, str] = {}

    def __enter__(self) -> Self:
        helper = _helper()
        for name, factory in (
            ("memcached", helper.memcached),
            ("redis", helper.redis_server),
            ("postgresql", helper.postgresql),
        ):
            if name not in self.wanted:
                continue
            try:
                server = factory(self.workdir)
                server.start()
            except Exception as exc:  # noqa: BLE001 - reported, the store is skipped
                self.skipped[name] = f"{type(exc).__name__}: {exc}"
                continue
            setattr(self, name, server)
            logger.info("started %r (pid %d)", server, server.proc.pid)
        return self

    def __exit__(self, *exc: object) -> None:
        for server in (self.memcached, self.redis):
            if server is not None:
                server.stop()
        if self.postgresql is not None:
            self.postgresql.remove()  # stops it and deletes its data directory

    @property
    def memcached_address(self) -> str:
        return str(self.memcached.address)

    @property
    def redis_url(self) -> str:
        return str(self.redis.url)

    @property
    def postgresql_url(self) -> str:
        return str(self.postgresql.url)

    def __repr__(self) -> str:
        return f"Services(memcached={self.memcached!r}, redis={self.redis!r})"
