"""Whether Paste Deploy finds the factory a filter section's ``use`` names.

``wsgisession check`` must fail where ``loadapp()`` would: an ``egg:`` entry
point or distribution that is not installed, a ``call:`` target that does
not import, or a ``call:`` in a ``[filter-app:]`` section, which Paste
Deploy asks for a protocol no filter has.
"""

from __future__ import annotations

import importlib.metadata

from ._coerce import import_dotted
from .errors import ConfigError

__all__ = ["FILTER_PROTOCOLS", "check_factory"]


#: The entry point groups in which Paste Deploy looks up a filter's ``egg:``.
FILTER_PROTOCOLS = ("paste.filter_factory", "paste.filter_app_factory")


def check_factory(use: str, path: str, section: str) -> None:
    """ConfigError where ``loadapp()`` finds no factory for a filter section:
    ``egg:DIST#NAME`` (NAME is ``main`` when left out) that names no filter
    entry point of an installed DIST, or ``call:module:name`` that does not
    import, or any ``call:`` in a ``[filter-app:]`` section (Paste asks it
    for the protocol ``paste.filter-app_factory``, which it does not know).
    An app section's factory is the app's, left alone."""
    if not section.startswith(("filter:", "filter-app:")):
        return
    scheme, _, spec = use.strip().partition(":")
    where = f"{path}: [{section}] use = {use.strip()}"
    if scheme == "call":
        if section.startswith("filter-app:"):
            raise ConfigError(
                f"{where}: Paste Deploy cannot load a call: filter in a "
                "[filter-app:] section; write use = egg:wsgisession#session"
            )
        _check_call(spec.strip(), where)
    elif scheme == "egg":
        _check_entry_point(*spec.strip().partition("#")[::2], where)


def _check_call(spec: str, where: str) -> None:
    """ConfigError unless ``spec`` imports, and is not the filter_app_factory
    that Paste Deploy would call as a ``paste.filter_factory`` (a ``call:``
    filter is one), with the wrong arguments."""
    from .paste import filter_app_factory

    try:
        target = import_dotted(spec, key=where)
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - the module's own code failed
        raise ConfigError(
            f"{where}: importing it raised {type(exc).__name__}; run python -c "
            f"'import {spec.partition(':')[0]}' to see why"
        ) from None
    if target is filter_app_factory:
        raise ConfigError(
            f"{where}: a call: filter is called as a paste.filter_factory; write "
            "use = call:wsgisession.paste:filter_factory or egg:wsgisession#session"
        )


def _check_entry_point(dist: str, name: str, where: str) -> None:
    """ConfigError unless the distribution ``dist`` has the filter entry
    point ``name`` (``main`` if empty), as Paste Deploy looks it up."""
    try:
        found = importlib.metadata.distribution(dist).entry_points
    except importlib.metadata.PackageNotFoundError:
        raise ConfigError(f"{where}: no distribution {dist!r} is installed") from None
    names = sorted({e.name for e in found if e.group in FILTER_PROTOCOLS})
    if (name or "main") not in names:
        hint = f"; write egg:{dist}#{names[0]}" if len(names) == 1 else ""
        raise ConfigError(
            f"{where}: {dist} has no filter named {name or 'main'!r} "
            f"(its filters: {', '.join(names) or 'none'}){hint}"
        )
