"""Throwaway PostgreSQL, MariaDB and PgBouncer servers on loopback.

Each is a :class:`DatabaseServer` (a :class:`~server_process.ServerProcess`
with a data directory and an SQLAlchemy URL), run as the database's own
user when the tests run as root.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from listening_ports import free_port
from server_process import (
    START_TIMEOUT,
    STOP_TIMEOUT,
    ListenArguments,
    MissingBinary,
    ServerProcess,
    find_binary,
)

__all__ = [
    "DB_PASSWORD",
    "DatabaseServer",
    "mariadb",
    "mariadb_root",
    "mariadb_setup",
    "pgbouncer",
    "postgresql",
]


def _postgres_bin() -> Path:
    """Debian keeps PostgreSQL's server binaries off PATH, per major version."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"),
        key=lambda p: (
            int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0
        ),
    )
    return found[-1].parent if found else Path("/usr/lib/postgresql/15/bin")


POSTGRES_BIN = _postgres_bin()
#: Password of the databases' test users: the tests check it never leaks.
DB_PASSWORD = "s3cret-db-pass-9f2c"


def _sql_binary(path: Path | str, package: str) -> str:
    found = str(path) if Path(path).is_file() else shutil.which(str(path))
    if found is None:
        raise MissingBinary(
            f"{path} is not installed; the test command installs it: "
            f"apt-get install {package}"
        )
    return found


def _owned_dir(prefix: str, user: str) -> Path:
    """A fresh directory the server's user owns (root cannot run the server).

    Made with mkdtemp, outside pytest's root-only directories, which the
    server's user could not enter.
    """
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if os.geteuid() == 0:
        record = pwd.getpwnam(user)
        os.chown(path, record.pw_uid, record.pw_gid)
    return path


def _as_user(user: str, argv: list[str]) -> list[str]:
    """``argv`` run as ``user`` when we are root (setpriv execs: same PID)."""
    if os.geteuid() != 0:
        return argv
    setpriv = find_binary("setpriv")
    return [setpriv, f"--reuid={user}", f"--regid={user}", "--init-groups", *argv]


class DatabaseServer(ServerProcess):
    """A database server whose data lives in ``datadir``; ``url`` is its
    SQLAlchemy URL (with the test user's password): ``url_template`` with
    its port, wherever it started, in place of ``{port}``. ``remove()``
    deletes it.

    ``stop()`` sends ``signals[0]`` (a shutdown that closes client
    connections), ``stop(crash=True)`` ``signals[1]``; either way the
    server's own processes exit with it (PostgreSQL's postmaster takes its
    backends down: it is never sent SIGKILL unless it ignores both).
    """

    def __init__(
        self,
        name: str,
        argv: list[str],
        port: int,
        workdir: Path,
        datadir: Path,
        signals: tuple[int, int] = (signal.SIGTERM, signal.SIGKILL),
        *,
        listen_arguments: ListenArguments,
    ) -> None:
        super().__init__(name, argv, port, workdir, listen_arguments=listen_arguments)
        self.datadir = datadir
        self.signals = signals
        self.url_template = ""
        #: Logs in once; raises while the server does not accept logins yet.
        self.probe: Callable[[], None] = lambda: None

    @property
    def url(self) -> str:
        return self.url_template.replace("{port}", str(self.port))

    def _wait_until_ready(self) -> None:
        """Listening is not enough: PostgreSQL refuses logins while it starts."""
        super()._wait_until_ready()
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                self.probe()
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self, *, crash: bool = False) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(self.signals[1] if crash else self.signals[0])
        try:
            proc.wait(timeout=STOP_TIMEOUT * 2)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT)

    def remove(self) -> None:
        """Stop at once (the data goes anyway) and delete the data directory."""
        self.stop(crash=True)
        shutil.rmtree(self.datadir, ignore_errors=True)


def postgresql(workdir: Path) -> DatabaseServer:
    """A PostgreSQL cluster in a fresh directory (fsync off), not yet started.

    Local socket logins are trusted (for set-up); TCP logins need the
    password of user ``postgres``, :data:`DB_PASSWORD`.
    """
    initdb = _sql_binary(POSTGRES_BIN / "initdb", "postgresql")
    postgres = _sql_binary(POSTGRES_BIN / "postgres", "postgresql")
    root = _owned_dir("wsgisession-pg-", "postgres")
    datadir = root / "data"
    password_file = root / "password"
    password_file.write_text(DB_PASSWORD + "\n")
    if os.geteuid() == 0:
        shutil.chown(password_file, "postgres", "postgres")
    argv = [initdb, "-D", str(datadir), "-U", "postgres", "--auth-local=trust"]
    argv += ["--auth-host=scram-sha-256", f"--pwfile={password_file}", "-E", "UTF8"]
    subprocess.run(
        _as_user("postgres", argv), check=True, capture_output=True, cwd=root
    )
    password_file.unlink()
    argv = [postgres, "-D", str(datadir), "-k", str(root)]
    argv += ["-h", "127.0.0.1", "-c", "fsync=off", "-c", "max_connections=200"]
    # SIGINT: fast shutdown (SIGTERM would wait for pooled clients to leave);
    # SIGQUIT: immediate shutdown, backends included.
    signals = (signal.SIGINT, signal.SIGQUIT)
    server = DatabaseServer(
        "postgres",
        _as_user("postgres", argv),
        free_port(),
        workdir,
        root,
        signals,
        listen_arguments=lambda port: ["-p", str(port)],
    )
    server.url_template = (
        f"postgresql+psycopg://postgres:{DB_PASSWORD}@127.0.0.1:{{port}}/postgres"
    )
    server.probe = lambda: _postgresql_login(server.port)
    return server


def _postgresql_login(port: int) -> None:
    import psycopg

    psycopg.connect(
        host="127.0.0.1",
        port=port,
        user="postgres",
        password=DB_PASSWORD,
        dbname="postgres",
        connect_timeout=2,
    ).close()


def pgbouncer(
    workdir: Path,
    target: DatabaseServer,
    *,
    pool_mode: str = "transaction",
    users: tuple[str, ...] = (),
) -> DatabaseServer:
    """A PgBouncer in ``pool_mode`` in front of the PostgreSQL ``target``
    (every database of it), not yet started: in transaction mode each
    transaction (each autocommit statement) may run on another of its two
    server connections. Its ``url`` logs in as ``target``'s; ``users`` may
    log in too, with the same password."""
    binary = _sql_binary("/usr/sbin/pgbouncer", "pgbouncer")
    root = _owned_dir("wsgisession-pgbouncer-", "postgres")
    logins = "".join(f'"{user}" "{DB_PASSWORD}"\n' for user in ("postgres", *users))
    (root / "users.txt").write_text(logins)
    settings: dict[str, object] = {
        "listen_addr": "127.0.0.1",
        "unix_socket_dir": "",
        "auth_type": "plain",
        "auth_file": root / "users.txt",
        "pool_mode": pool_mode,
        "default_pool_size": 2,
    }

    def listen_on(port: int) -> list[str]:
        """pgbouncer reads its port from its config file only."""
        lines = ["[databases]", f"* = host=127.0.0.1 port={target.port}"]
        lines += ["[pgbouncer]", f"listen_port = {port}"]
        lines += [f"{name} = {value}" for name, value in settings.items()]
        (root / "pgbouncer.ini").write_text("\n".join(lines) + "\n")
        if os.geteuid() == 0:
            for path in root.iterdir():
                shutil.chown(path, "postgres", "postgres")
        return []

    argv = _as_user("postgres", [binary, str(root / "pgbouncer.ini")])
    server = DatabaseServer(
        "pgbouncer", argv, free_port(), workdir, root, listen_arguments=listen_on
    )
    server.url_template = target.url.replace(f":{target.port}/", ":{port}/")
    return server


def mariadb(workdir: Path) -> DatabaseServer:
    """A MariaDB server in a fresh directory, not yet started.

    Call :func:`mariadb_setup` once it runs: it creates database
    ``wsgisession`` and user ``wsgisession`` (password :data:`DB_PASSWORD`).
    """
    install = _sql_binary("mariadb-install-db", "mariadb-server")
    daemon = _sql_binary("mariadbd", "mariadb-server")
    user = "mysql" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    root = _owned_dir("wsgisession-mariadb-", user)
    datadir = root / "data"
    argv = [install, f"--datadir={datadir}", "--auth-root-authentication-method=normal"]
    argv += ["--skip-test-db", f"--user={user}"]
    subprocess.run(argv, check=True, capture_output=True, cwd=root)
    argv = [daemon, "--no-defaults", f"--datadir={datadir}", f"--user={user}"]
    argv += [f"--socket={root / 'mysql.sock'}"]
    argv += ["--bind-address=127.0.0.1", "--skip-name-resolve", "--skip-log-bin"]
    argv += ["--innodb-flush-log-at-trx-commit=0", f"--pid-file={root / 'pid'}"]
    server = DatabaseServer(
        "mariadbd",
        argv,
        free_port(),
        workdir,
        root,
        listen_arguments=lambda port: [f"--port={port}"],
    )
    server.url_template = (
        f"mysql+pymysql://wsgisession:{DB_PASSWORD}@127.0.0.1:{{port}}/wsgisession"
    )
    server.probe = lambda: mariadb_root(server).close()
    return server


def mariadb_root(server: DatabaseServer) -> Any:
    """A connection as root through the server's socket."""
    import pymysql

    return pymysql.connect(unix_socket=str(server.datadir / "mysql.sock"), user="root")


def mariadb_setup(server: DatabaseServer) -> None:
    """The test database and user, made as root through the local socket."""
    conn = mariadb_root(server)
    try:
        with conn.cursor() as cursor:
            cursor.execute("CREATE DATABASE IF NOT EXISTS wsgisession")
            cursor.execute(
                "CREATE USER IF NOT EXISTS 'wsgisession'@'127.0.0.1' IDENTIFIED BY %s",
                (DB_PASSWORD,),
            )
            cursor.execute("GRANT ALL ON wsgisession.* TO 'wsgisession'@'127.0.0.1'")
    finally:
        conn.close()
