"""Store URLs as deployments write them: passwords with ``@``, ``/``, ``#``
or ``?`` (percent-encoded or not), unix sockets, cluster seed lists.

A URL that reaches the server as written must work; one the client library
would misread must be a ``ConfigError`` at startup that says what to fix,
and no part of the password may show in any message, ``repr`` or
traceback (a server logs the chained causes too).
"""

from __future__ import annotations

import socket
import struct
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from helpers import filter_ini, later, run_cli
from listening_ports import dead_port
from server_process import START_TIMEOUT
from servers import (
    DB_PASSWORD,
    DatabaseServer,
    RedisCluster,
    ServerProcess,
    find_binary,
    free_port,
)

from wsgisession.errors import ConfigError
from wsgisession.keys import generate_key
from wsgisession.stores import RedisStore, SQLStore

#: A generated password with the characters URLs give a meaning to.
PASSWORD = "Zx9@kQ7/wP#q?rT"
#: Pieces of it that must never show: what follows each special character.
PIECES = ("Zx9", "kQ7", "wP", "rT")


def shows_password(exc: BaseException) -> list[str]:
    """The pieces of :data:`PASSWORD` in ``exc``'s traceback, causes included."""
    text = "".join(traceback.format_exception(exc))
    return [piece for piece in PIECES if piece in text]


# -- SQL: an unencoded '@' in the password --------------------------------------


@pytest.fixture
def sql_user(postgresql_server: DatabaseServer) -> Iterator[tuple[str, int]]:
    """A PostgreSQL role ``urls`` whose password is :data:`PASSWORD`, with a
    schema of its own (its search path's first) for the store's tables."""
    import psycopg

    port = postgresql_server.port
    login = {"host": "127.0.0.1", "port": port, "dbname": "postgres"}
    with psycopg.connect(
        **login, user="postgres", password=DB_PASSWORD, autocommit=True
    ) as conn:
        conn.execute("DROP SCHEMA IF EXISTS urls CASCADE")
        conn.execute("DROP ROLE IF EXISTS urls")
        conn.execute(f"CREATE ROLE urls LOGIN PASSWORD '{PASSWORD}'")
        conn.execute("CREATE SCHEMA urls AUTHORIZATION urls")
    yield "urls", port
    with psycopg.connect(
        **login, user="postgres", password=DB_PASSWORD, autocommit=True
    ) as conn:
        conn.execute("DROP SCHEMA IF EXISTS urls CASCADE")
        conn.execute("DROP ROLE IF EXISTS urls")


def test_a_percent_encoded_sql_password_reaches_the_database(
    sql_user: tuple[str, int],
) -> None:
    user, port = sql_user
    url = f"postgresql+psycopg://{user}:{quote(PASSWORD, safe='')}@127.0.0.1:{port}/postgres"
    # A table of its own: the shared server's public schema may already hold
    # the default one, which this role may not read.
    with SQLStore(url, table="url_spellings") as store:
        assert not store.exists(generate_key())  # logged in
        assert not [piece for piece in PIECES if piece in repr(store)]


@pytest.mark.parametrize("port_part", [":{port}", ""])
def test_an_unencoded_at_in_a_sql_password_is_refused_without_showing_it(
    sql_user: tuple[str, int], port_part: str
) -> None:
    """SQLAlchemy ends the password at its first '@' and takes the rest for
    the host: the store's repr, ``check`` and every error showed the rest
    of the password ("failed to resolve host 'kQ7/wP#q?rT@127.0.0.1'"), or
    failed to parse the port with a chained ValueError quoting it."""
    user, port = sql_user
    where = port_part.format(port=port)
    url = f"postgresql+psycopg://{user}:{PASSWORD}@127.0.0.1{where}/postgres"
    with pytest.raises(ConfigError, match="%40") as caught:
        SQLStore(url)
    assert shows_password(caught.value) == []


def test_check_names_an_unencoded_at_in_a_sql_password(
    sql_user: tuple[str, int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    user, port = sql_user
    config = filter_ini(
        tmp_path,
        f"""
        store = sql
        sql_url = postgresql+psycopg://{user}:{PASSWORD}@127.0.0.1:{port}/postgres
        """,
    )
    status, out, err = run_cli(capsys, "check", "--config", config)
    assert status != 0
    assert "%40" in err
    assert len(err.strip().splitlines()) == 1
    assert not [piece for piece in PIECES if piece in out + err]


# -- Redis: unix sockets and unencoded passwords --------------------------------


class SocketRedis(ServerProcess):
    """A redis-server with ``requirepass`` :data:`PASSWORD` that listens on the
    unix socket ``socket_path`` only (no TCP port)."""

    def __init__(self, socket_path: Path) -> None:
        argv = [
            find_binary("redis-server"),
            "--port",
            "0",
            "--unixsocket",
            str(socket_path),
        ]
        argv += ["--save", "", "--appendonly", "no", "--dir", str(socket_path.parent)]
        argv += ["--requirepass", PASSWORD]
        super().__init__(
            "redis-server",
            argv,
            0,
            socket_path.parent,
            listen_arguments=lambda port: [],  # the unix socket only
        )
        self.socket_path = socket_path

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            with socket.socket(socket.AF_UNIX) as probe:
                try:
                    probe.connect(str(self.socket_path))
                    return
                except OSError:
                    time.sleep(0.01)
        self.stop()
        raise RuntimeError(f"redis-server did not listen on {self.socket_path}")


@pytest.fixture
def redis_on_a_socket(tmp_path: Path) -> Iterator[Path]:
    """A :class:`SocketRedis` in a directory whose name has a space."""
    directory = tmp_path / "redis run"
    directory.mkdir()
    server = SocketRedis(directory / "redis.sock")
    server.start()
    yield server.socket_path
    server.stop(crash=True)  # nothing kept: no graceful exit to wait for


def test_a_unix_socket_url_with_an_encoded_password_reaches_redis(
    redis_on_a_socket: Path,
) -> None:
    url = f"unix://:{quote(PASSWORD, safe='')}@{quote(str(redis_on_a_socket))}?db=3"
    store = RedisStore(url)
    key = generate_key()
    assert store.create(key, b"over the socket", later()) == key
    assert store.load(key) is not None
    assert store._client.connection_pool.connection_kwargs["db"] == 3
    assert not [piece for piece in PIECES if piece in repr(store)]
    store.close()


def test_a_unix_socket_connection_waits_by_the_kernels_timeouts(
    redis_on_a_socket: Path,
) -> None:
    """As over TCP (test_redis_socket_timeouts): a blocking socket, no poll
    before each call, ``socket_timeout`` kept by the kernel."""
    url = f"unix://:{quote(PASSWORD, safe='')}@{quote(str(redis_on_a_socket))}"
    store = RedisStore(url, socket_timeout=1.5)
    store.load(generate_key())
    (connection,) = store._client.connection_pool._connections
    sock = connection._sock
    assert sock.family == socket.AF_UNIX
    assert sock.gettimeout() is None
    for option in (socket.SO_RCVTIMEO, socket.SO_SNDTIMEO):  # to the kernel's tick
        packed = sock.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("ll"))
        seconds, microseconds = struct.unpack("ll", packed)
        assert seconds + microseconds / 1e6 == pytest.approx(1.5, abs=0.011)
    store.close()


@pytest.mark.parametrize("password", ["Zx9#kQ7", "Zx9?kQ7", "Zx9kQ7/wP"])
@pytest.mark.parametrize("scheme", ["unix", "redis"])
def test_an_unencoded_character_in_a_redis_password_is_named_at_startup(
    tmp_path: Path, password: str, scheme: str
) -> None:
    """``#`` and ``?`` end the host part of a URL: on ``unix://`` the socket's
    path was then empty, the URL was taken, and every request failed with
    "Error 22 connecting to . Invalid argument."; a '/' on ``redis://`` was
    reported as a path that is not a database number."""
    where = str(tmp_path / "redis.sock") if scheme == "unix" else "127.0.0.1:6379/0"
    url = f"{scheme}://:{password}@{where}"
    with pytest.raises(ConfigError, match="percent-encode") as caught:
        RedisStore(url)
    assert shows_password(caught.value) == []


def test_a_unix_url_without_a_socket_path_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unix:///"):
        RedisStore("unix://redis.sock")


# -- Redis Cluster: a seed list written with spaces -----------------------------


def test_a_cluster_seed_list_may_have_spaces_after_its_commas(
    clean_redis_cluster: RedisCluster,
) -> None:
    """``redis+cluster://a:7000, b:7000``: the second seed was looked up as
    the host " b", which never resolves, so a worker that started while the
    first node was down reached no node at all."""
    with dead_port() as dead:  # connections refused
        nodes = ", ".join(clean_redis_cluster.addresses)
        store = RedisStore(f"redis+cluster://127.0.0.1:{dead} , {nodes}")
        key = generate_key()
        assert store.create(key, b"reached", later()) == key
        assert store.load(key) is not None
        store.close()


@pytest.mark.parametrize("password", ["Zx9@kQ7=wP", "Zx9@kQ7=wP=="])
def test_an_at_then_an_equals_sign_in_a_sql_password_is_refused(password: str) -> None:
    """The check read up to the first '=' for the host part, taking it for
    a query's: "Zx9@kQ7=wP" passed, and SQLAlchemy took "kQ7=wP@127.0.0.1"
    for the host, shown by the store's repr and every connection error."""
    url = f"postgresql+psycopg://urls:{password}@127.0.0.1:{free_port()}/postgres"
    with pytest.raises(ConfigError, match="%40") as caught:
        SQLStore(url)
    assert "kQ7" not in "".join(traceback.format_exception(caught.value))
