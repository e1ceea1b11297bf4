"""A ``RedisCluster`` passed to RedisStore as ``client`` stays the app's own
client: the store lets it follow an ``ASK`` to a master it has not mapped
(a slot moving to a new master), but its other lookups of a node by name
still find only the cluster's nodes. ``set_default_node`` refuses a node
that is not in the cluster, and no such node joins its map (where
``get_primaries()`` and the commands run on every master would try it)."""

from __future__ import annotations

import pytest
import redis
from redis.cluster import ClusterNode
from servers import RedisCluster, free_port

from wsgisession.stores import RedisStore

pytestmark = pytest.mark.slow


def test_a_client_passed_in_still_refuses_a_node_outside_the_cluster(
    clean_redis_cluster: RedisCluster,
) -> None:
    first = clean_redis_cluster.nodes[0]
    with redis.RedisCluster(host=first.host, port=first.port) as client:
        RedisStore(client=client)
        default = client.get_default_node()
        stranger = ClusterNode(first.host, free_port())  # type: ignore[no-untyped-call]

        assert client.get_node(node_name=stranger.name) is None
        assert client.set_default_node(stranger) is False
        assert client.get_default_node() is default
        assert stranger.name not in {node.name for node in client.get_primaries()}
        assert client.ping() is True
