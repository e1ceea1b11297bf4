"""``wsgisession demo``: a guided tour of what the library does, proving itself live.

:class:`DemoApp` is the WSGI app the command serves; :func:`describe_store`
says in words where its sessions live.
"""

from __future__ import annotations

from .app import DemoApp
from .facts import describe_store

__all__ = ["DemoApp", "describe_store"]
