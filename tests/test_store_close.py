"""``close()`` of the networked stores: nothing left open, nothing to warn about.

Each case runs in a fresh interpreter with ``-W error::ResourceWarning``, so
that no object of another test can be collected (and warn) meanwhile.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from servers import MemcachedPool, RedisCluster, ServerProcess

SCRIPT = textwrap.dedent(
    """
    import gc, sys, time
    from wsgisession.keys import generate_key
    from wsgisession.stores import MemcachedStore, RedisStore

    for kind, servers in zip(sys.argv[1::2], sys.argv[2::2]):
        store = (MemcachedStore if kind == "memcached" else RedisStore)(servers)
        for _ in range(5):
            key = generate_key()
            store.create(key, b"x", time.time() + 60)
            with store.lock(key, 1.0, 60.0):
                store.update(key, lambda c: (b"y", time.time() + 60), store.load(key))
        store.close()
        del store
        gc.collect()
    print("clean")
    """
)


def run_clean(*arguments: str) -> None:
    done = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error::ResourceWarning", "-c", SCRIPT]
        + list(arguments),
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout.strip()) == (0, "clean"), done.stderr
    assert "ResourceWarning" not in done.stderr


@pytest.mark.slow
def test_no_resource_warning_after_close(
    clean_memcached: ServerProcess,
    clean_memcached_pool: MemcachedPool,
    clean_redis: ServerProcess,
    clean_redis_cluster: RedisCluster,
) -> None:
    run_clean(
        "memcached",
        clean_memcached.address,
        "memcached",
        clean_memcached_pool.spec,
        "redis",
        clean_redis.url,
        "redis",
        clean_redis_cluster.url,
    )
