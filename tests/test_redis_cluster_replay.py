"""A Redis Cluster store does not replay a command whose reply came late.

RedisCluster retries a command after a TimeoutError (10 times by default);
the docs promise that commands are not retried blindly, so the store's
cluster client retries none. Replayed, a lock's SET NX that the node
executed after the client gave up finds the store's own lock key and
reports it taken: the request waited for its own lock and got LockTimeout
(the same replay turned a login's GETDEL of its old record into "revoked
meanwhile" and a create's SET NX into "key taken").
"""

from __future__ import annotations

import threading
import time

import redis

from wsgisession.errors import LockTimeout, StoreUnavailable
from wsgisession.stores import RedisStore
from wsgisession.stores._shared import LOCK_SUFFIX
from wsgisession.stores.base import generate_key, now
from wsgisession.stores.redis import slot_mate

# Keeps the node busy for ARGV[1] microseconds: commands sent meanwhile queue
# up, run when it ends, and their replies come later than socket_timeout.
_BUSY = """
local t0 = redis.call('TIME')
local start = t0[1] * 1000000 + t0[2]
while true do
  local t = redis.call('TIME')
  if (t[1] * 1000000 + t[2]) - start > tonumber(ARGV[1]) then break end
end
return 1
"""


def _busy(node, micros: int) -> None:
    client = redis.Redis(host=node.host, port=node.port, socket_timeout=10)
    try:
        client.eval(_BUSY, 0, micros)
    finally:
        client.close()


def test_a_late_lock_reply_is_not_replayed_into_a_lock_timeout(
    clean_redis_cluster,
) -> None:
    cluster = clean_redis_cluster
    store = RedisStore(cluster.url, socket_timeout=0.3)
    key = generate_key()
    assert store.create(key, b"x", now() + 600) == key  # connected, slots known
    node = cluster.node_of(slot_mate(store._name(key), LOCK_SUFFIX))
    stall = threading.Thread(target=_busy, args=(node, 700_000))
    stall.start()
    time.sleep(0.1)
    try:
        with store.lock(key, timeout=2.0, ttl=30.0):
            outcome = "held"
    except StoreUnavailable:
        outcome = "unavailable"  # as the plain-server store reports it
    except LockTimeout:
        outcome = "waited for its own lock"
    finally:
        stall.join()
        store.close()
    assert outcome in ("held", "unavailable")
