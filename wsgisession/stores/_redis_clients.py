"""How RedisStore gets its client: from a URL (a server or a cluster) or as given.

A ``redis://``, ``rediss://`` or ``unix://`` URL makes a ``redis.Redis``; a
``redis+cluster://host:port[,host:port...]`` URL a ``RedisCluster`` found
through the first of those nodes that answers, built on first use since its constructor connects. Credentials never show
in messages: ``redaction.redact_url`` hides them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.cluster import PRIMARY, ClusterNode, NodesManager
from redis.connection import parse_url
from redis.exceptions import RedisError
from redis.retry import Retry

from ..errors import ConfigError
from ..redaction import holds_secret, redact_url
from ._redis_pool import POOL_SIZE, POOL_WAIT, Pool, let_go

if TYPE_CHECKING:
    from redis.cluster import RedisCluster

__all__ = [
    "POOL_SIZE",
    "POOL_WAIT",
    "check_bytes_client",
    "client_from_url",
    "follow_asks_to_new_masters",
    "let_go",
]

_SCHEMES = ("redis", "rediss", "unix")
#: ``redis+cluster://host:port[,host:port...]``: a Redis Cluster, reached
#: through the first of its nodes named that answers.
_CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
_DB_PATH = re.compile(r"(/[0-9]*)?")  # redis-py ignores any other path


#: What a URL whose password holds a character URLs give a meaning to needs.
_ENCODE_HINT = "percent-encode any / ? # @ : [ ] or % in the user name or password"


def _reason(url: str, exc: ValueError) -> str:
    """What redis-py found wrong, unless the URL has credentials: then its
    message (which quotes the part it could not parse) may hold some of them."""
    if "@" not in url:
        return str(exc)
    return f"its host, port or options cannot be parsed ({_ENCODE_HINT})"


def _hint(url: str) -> str:
    """:data:`_ENCODE_HINT` for a URL with credentials: a '/', '?' or '#' of
    the password ends the host part, so the rest is misread."""
    return f" ({_ENCODE_HINT})" if "@" in url else ""


def _cause(url: str, exc: Exception) -> Exception | None:
    """What a ConfigError about ``url`` chains: ``exc``, unless the URL has
    credentials; then nothing, since a server logs the chained causes, whose
    messages may quote them (a password holding '?' read as the port)."""
    return None if "@" in url or holds_secret(url) else exc


def _split(url: str) -> SplitResult:
    """``urlsplit(url)``; ConfigError if it cannot be split (an unmatched
    ``[`` or ``]``, in an IPv6 host or a password not percent-encoded)."""
    try:
        return urlsplit(url)
    except ValueError as exc:
        raise ConfigError(
            f"invalid RedisStore url {redact_url(url)}: {_reason(url, exc)}"
        ) from _cause(url, exc)


def client_from_url(url: str, socket_timeout: float) -> Any:
    """A client for ``url``: a ``redis.Redis``, or for ``redis+cluster://`` a
    factory that builds the ``RedisCluster`` on first use (its constructor
    connects, and the store must not connect before it is used)."""
    parts = _split(url) if isinstance(url, str) else None
    if parts is not None and parts.scheme in _CLUSTER_SCHEMES:
        return _cluster_factory(url, socket_timeout)
    if parts is None or parts.scheme not in _SCHEMES:
        raise ConfigError(
            f"RedisStore url must start with redis://, rediss://, unix:// or "
            f"redis+cluster://: "
            f"{redact_url(url) if isinstance(url, str) else type(url).__name__}"
        )
    _check_path(url, parts)
    try:
        pool = Pool.from_url(
            url,
            max_connections=POOL_SIZE,
            timeout=POOL_WAIT,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            # One attempt per command: a failed write is not blindly replayed,
            # and an outage is reported at once. The pool still replaces
            # connections that a restarted server closed before using them.
            retry=Retry(NoBackoff(), 0),
        )
    except ValueError as exc:
        raise ConfigError(
            f"invalid RedisStore url {redact_url(url)}: {_reason(url, exc)}"
        ) from _cause(url, exc)
    _check_options(url, pool)
    client = redis.Redis(connection_pool=pool)
    client.auto_close_connection_pool = True  # close() closes the pool too
    return client


def _check_path(url: str, parts: SplitResult) -> None:
    """ConfigError for a path redis-py would misread: not a database number,
    or for ``unix://`` no socket path, or a port (redis-py ignores the host:
    a ``:`` there began a password that a '/', '?' or '#' cut short)."""
    if parts.scheme != "unix" and not _DB_PATH.fullmatch(parts.path):
        raise ConfigError(
            f"invalid RedisStore url {redact_url(url)}: the path must be a "
            f"database number, as in redis://host:6379/0{_hint(url)}"
        )
    host = parts.netloc.rpartition("@")[2]
    if parts.scheme == "unix" and (":" in host or not parts.path):
        raise ConfigError(
            f"invalid RedisStore url {redact_url(url)}: a unix:// URL names the "
            "socket's path and no host, as in unix:///run/redis/redis.sock or "
            f"unix://:password@/run/redis/redis.sock{_hint(url)}"
        )


def _check_options(url: str, pool: redis.ConnectionPool) -> None:
    """ConfigError for a query option the pool's connections do not take (a
    typo, ``ssl_cert_reqs`` on a ``redis://`` URL): redis-py raises its
    TypeError only when the first command connects, on every request.
    Making a connection object opens no socket."""
    try:
        connection = pool.connection_class(**pool.connection_kwargs)
    except (TypeError, ValueError, RedisError) as exc:
        # redis-py's message may quote a value: not with credentials about.
        detail = "" if holds_secret(url) else f" ({exc})"
        raise ConfigError(
            f"invalid RedisStore url {redact_url(url)}: redis-py refuses its "
            f"options{detail}"
        ) from _cause(url, exc)
    if connection.encoder.decode_responses:
        raise _decoding_in(url)


def _decoding_in(url: str) -> ConfigError:
    return ConfigError(
        f"invalid RedisStore url {redact_url(url)}: session records are bytes; "
        "remove decode_responses (redis-py reads any value of it as true)"
    )


def _cluster_factory(url: str, socket_timeout: float) -> Callable[[], RedisCluster]:
    from redis.cluster import ClusterNode, RedisCluster

    parts, others = _first_node(url)
    if parts.path not in ("", "/", "/0") or not parts.hostname:
        raise ConfigError(
            f"invalid RedisStore url {redact_url(url)}: a cluster URL names its "
            "nodes and database 0 at most, as in redis+cluster://host:6379 or "
            "redis+cluster://host1:6379,host2:6379"
        )
    startup_nodes = [
        ClusterNode(*_host_and_port(url, node))  # type: ignore[no-untyped-call]
        for node in others
    ]
    _host_and_port(url, parts)
    plain = parts._replace(scheme=_CLUSTER_SCHEMES[parts.scheme], path="").geturl()
    try:
        options = parse_url(plain)  # type: ignore[no-untyped-call]
    except ValueError as exc:
        raise ConfigError(
            f"invalid RedisStore url {redact_url(url)}: {_reason(url, exc)}"
        ) from _cause(url, exc)
    if options.get("decode_responses"):  # any value: redis-py reads it as true
        raise _decoding_in(url)

    def connect() -> RedisCluster:
        cluster = RedisCluster.from_url(
            plain,
            # Tried in turn until one answers: a process starting while the
            # first node is down still finds the cluster.
            startup_nodes=list(startup_nodes),
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            # Each node's pool waits for a free connection: a full plain pool
            # raises ConnectionError, which the cluster takes for a lost node.
            connection_pool_class=Pool,
            max_connections=POOL_SIZE,
            timeout=POOL_WAIT,
            # No blind replay here either (RedisCluster retries a command
            # that timed out up to 10 times by default): a SET NX whose
            # reply was lost would find its own key and report it taken.
            retry=Retry(NoBackoff(), 0),
        )
        follow_asks_to_new_masters(cluster)
        return cluster

    return connect


class _NodesAskedFor(NodesManager):
    """redis-py's map of a cluster, which also knows the master an ``ASK``
    redirect names when the map does not: one added to the cluster has no
    slot, so no place in the map, until its first slot has moved to it, and
    an ``ASK`` to it meanwhile (every session of the slot being moved) raised
    AttributeError out of redis-py (redis/redis-py#4015)."""

    def get_node(
        self,
        host: str | None = None,
        port: int | None = None,
        node_name: str | None = None,
    ) -> ClusterNode | None:
        node = super().get_node(host, port, node_name)
        if node is not None or not node_name or host or port:
            return node
        # The ASK path looks a node up by name alone ("host:port"), but so do
        # set_default_node() and pubsub, which must not find (nor map) a
        # node outside the cluster: the cluster is asked first.
        if not self._in_cluster(node_name):
            return None
        name_host, _, name_port = node_name.rpartition(":")
        node = ClusterNode(name_host, int(name_port), PRIMARY)  # type: ignore[no-untyped-call]
        return self.nodes_cache.setdefault(node_name, node)  # atomic: no lock

    def _in_cluster(self, node_name: str) -> bool:
        """Whether the first mapped node that answers lists ``node_name`` in
        ``CLUSTER NODES`` (where a master without slots is, unlike in
        ``CLUSTER SLOTS``)."""
        for known in tuple(self.nodes_cache.values()):
            if known.redis_connection is None:
                continue
            try:
                listed = known.redis_connection.execute_command("CLUSTER NODES")
            except RedisError:
                continue
            return node_name in listed
        return False


def follow_asks_to_new_masters(client: Any) -> None:
    """Let a ``RedisCluster`` client follow an ``ASK`` to a master it has
    not mapped yet; any other client is left alone."""
    manager = getattr(client, "nodes_manager", None)
    if type(manager) is NodesManager:  # not a subclass of the caller's
        manager.__class__ = _NodesAskedFor


def _first_node(url: str) -> tuple[SplitResult, list[SplitResult]]:
    """The URL with its first node only, and the other nodes it names
    (``redis+cluster://user:password@host1:7000,host2:7000/0?options``; a
    space around a comma is no part of a host: " host2" never resolves)."""
    parts = urlsplit(url)
    credentials, at, hosts = parts.netloc.rpartition("@")
    first, *others = (host.strip() for host in hosts.split(","))
    nodes = [urlsplit(f"//{other}") for other in others]
    return parts._replace(netloc=credentials + at + first), nodes


def _host_and_port(url: str, node: SplitResult) -> tuple[str, int]:
    """A node's host and port (6379 if none); ConfigError naming the URL."""
    try:
        port = node.port
    except ValueError as exc:
        raise ConfigError(
            f"invalid RedisStore url {redact_url(url)}: {_reason(url, exc)}"
        ) from _cause(url, exc)
    if not node.hostname:
        raise ConfigError(
            f"invalid RedisStore url {redact_url(url)}: a node without a host"
        )
    return node.hostname, 6379 if port is None else port


def check_bytes_client(client: Any) -> None:
    """Refuse a client that decodes replies to str: records are bytes."""
    get_encoder = getattr(client, "get_encoder", None)
    encoder = get_encoder() if callable(get_encoder) else None
    if getattr(encoder, "decode_responses", False):
        raise ConfigError(
            "RedisStore needs a client with decode_responses=False: "
            "session records are bytes"
        )
