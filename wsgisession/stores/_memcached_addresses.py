"""The addresses of a MemcachedStore's servers: the list it is given, each
server's address as pymemcache connects to it, and the name the servers'
ring hashes it under."""

from __future__ import annotations

import re
from collections.abc import Sequence

from pymemcache.client.base import (  # type: ignore[import-untyped]
    normalize_server_spec,
)

from ..errors import ConfigError

__all__ = ["node_name", "server_address", "server_specs"]

# A host name, an IPv4 address, or an IPv6 address (brackets already removed).
_HOST = re.compile(r"[A-Za-z0-9._-]+|[0-9A-Fa-f:.]+(%[A-Za-z0-9._-]+)?")


def server_specs(servers: str | Sequence[str]) -> list[str]:
    """The server list of ``servers`` (a list or one whitespace-separated string)."""
    specs = servers.split() if isinstance(servers, str) else list(servers)
    if not specs:
        raise ConfigError("MemcachedStore needs at least one server")
    for spec in specs:
        if not isinstance(spec, str) or not spec.strip():
            raise ConfigError(f"invalid memcached server {spec!r}")
    if len(set(specs)) != len(specs):
        raise ConfigError(f"memcached servers listed twice: {specs!r}")
    return specs


def server_address(spec: str) -> tuple[str, int] | str:
    """The address of server ``spec``: ``(host, port)``, or a Unix socket's
    path; ``ConfigError`` for one pymemcache would not connect to."""
    try:
        address = normalize_server_spec(spec)
    except ValueError as exc:
        raise ConfigError(f"invalid memcached server {spec!r}: {exc}") from exc
    if isinstance(address, tuple) and not (
        _HOST.fullmatch(address[0]) and 0 < address[1] < 65536
    ):
        raise ConfigError(
            f"invalid memcached server {spec!r}: expected host:port, "
            "[ipv6]:port or unix:/path"
        )
    return address  # type: ignore[no-any-return]


def node_name(address: tuple[str, int] | str) -> str:
    """The name pymemcache's HashClient hashes the server at ``address`` under."""
    if isinstance(address, tuple):
        host, port = address
        return f"{host}:{port}"
    return address
