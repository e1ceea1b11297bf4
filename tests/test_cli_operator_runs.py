"""The ``wsgisession`` command as an operator runs it: in a pipe, under
Ctrl-C, as a user other than the app's, against a store that is down.

Each ends in one line that says what happened (or, for a pipe whose reader
left, in silence), never a traceback.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import run_cli as run
from listening_ports import dead_port
from servers import free_port

from wsgisession import SessionMiddleware
from wsgisession.stores import SQLiteStore

ROOT = Path(__file__).resolve().parent.parent


def no_app(environ: object, start_response: object) -> list[bytes]:
    return []


def log_in(path: Path, user: str, times: int) -> None:
    """``times`` sessions of ``user`` in the SQLite store at ``path``."""
    with SessionMiddleware(no_app, SQLiteStore(path)) as middleware:
        for _ in range(times):
            middleware.open_session().bind_user(user)


def environment() -> dict[str, str]:
    """This checkout importable; output buffered, as in an operator's shell."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    return {**env, "PYTHONPATH": str(ROOT)}


def one_line(err: str, command: str, *fragments: str) -> None:
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"wsgisession {command}: "), err
    for fragment in fragments:
        assert fragment in err, err


# -- a pipe whose reader left ---------------------------------------------------


@pytest.mark.slow  # a Python subprocess per case
@pytest.mark.parametrize(("user", "sessions"), [("bob", 0), ("alice", 300)])
def test_a_reader_that_leaves_early_ends_the_command_quietly(
    tmp_path: Path, user: str, sessions: int
) -> None:
    """``wsgisession sessions ... | head -1``: the listing's first line was
    what the operator wanted. A short output failed in the exit's flush
    ("Exception ignored ... BrokenPipeError", status 120), a long one
    printed "error: Broken pipe", which names nothing to fix."""
    path = tmp_path / "sessions.sqlite3"
    log_in(path, "alice", 300)
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the command writes
    try:
        done = subprocess.run(
            [sys.executable, "-m", "wsgisession", "sessions"]
            + ["--store", "sqlite", "--sqlite-path", str(path), user],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            env=environment(),
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (1, "")


# -- Ctrl-C ---------------------------------------------------------------------


CLEAR_EXPIRED = """\
import signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)  # even if inherited ignored
from wsgisession.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow  # a Python subprocess
def test_ctrl_c_during_clear_expired_is_one_line() -> None:
    """An operator stops a clear-expired that hangs on a store that does not
    answer: one line and status 130, as a shell reports Ctrl-C, not a
    traceback through the Redis client."""
    with socket.socket() as silent:  # accepts the connection, never replies
        silent.bind(("127.0.0.1", free_port()))
        silent.listen()
        port = silent.getsockname()[1]
        argv = ["clear-expired", "--store", "redis"]
        argv += ["--redis-url", f"redis://127.0.0.1:{port}/0", "--key-prefix", "a:"]
        command = subprocess.Popen(
            [sys.executable, "-c", CLEAR_EXPIRED, *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment(),
        )
        try:
            silent.settimeout(30)
            connection, _ = silent.accept()  # the command waits for a reply now
            with connection:
                command.send_signal(signal.SIGINT)
                out, err = command.communicate(timeout=30)
        finally:
            if command.poll() is None:
                command.kill()
                command.wait()
    assert (command.returncode, out) == (128 + signal.SIGINT, "")
    one_line(err, "clear-expired", "interrupted", "run it again")


# -- another user's store -------------------------------------------------------


@pytest.mark.slow  # a Python subprocess per command
@pytest.mark.parametrize("command", ["sessions", "revoke", "clear-expired"])
def test_a_store_this_user_cannot_look_into_is_not_called_missing(
    command: str, tmp_path: Path
) -> None:
    """The app's user owns the store's directory, mode 0700 (as the SQLite
    store makes it); an operator runs the command as another user. The
    store exists: "no session store there ... check the path" sent the
    operator after a typo that is not there."""
    directory = tmp_path / "app"
    log_in(directory / "sessions.sqlite3", "alice", 2)
    prefix: list[str] = []
    if os.geteuid() == 0:  # root looks into anything: the app's user, and no caps
        os.chown(directory, 65534, 65534)
        os.chown(directory / "sessions.sqlite3", 65534, 65534)
        drop = "-dac_override,-dac_read_search"
        prefix = ["setpriv", f"--bounding-set={drop}", f"--inh-caps={drop}"]
    else:
        directory.chmod(0)
    path = str(directory / "sessions.sqlite3")
    user = [] if command == "clear-expired" else ["alice"]
    try:
        done = subprocess.run(
            [*prefix, sys.executable, "-m", "wsgisession", command]
            + ["--store", "sqlite", "--sqlite-path", path, *user],
            capture_output=True,
            text=True,
            env=environment(),
            timeout=60,
            check=False,
        )
    finally:
        directory.chmod(0o700)
    assert (done.returncode, done.stdout) == (1, ""), done.stderr
    one_line(done.stderr, command, "error: ")
    assert "no session store" not in done.stderr
    if prefix:
        assert "sudo -u nobody" in done.stderr  # run it as the app's user


# -- a store that is down -------------------------------------------------------


@pytest.mark.parametrize("command", ["sessions", "revoke"])
@pytest.mark.parametrize("store", ["redis", "memcached"])
def test_a_store_that_is_down_is_one_line_saying_what_to_do(
    command: str, store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """As check and clear-expired say it: start the server, or correct its
    address. sessions and revoke gave the client's complaint alone."""
    with dead_port() as port:  # connections refused
        where = {
            "redis": ["--redis-url", f"redis://127.0.0.1:{port}/0"],
            "memcached": ["--memcached-servers", f"127.0.0.1:{port}"],
        }[store]
        argv = ["--store", store, *where, "--key-prefix", "myapp:", "alice"]
        status, out, err = run(capsys, command, *argv)
        assert (status, out) == (1, "")
        one_line(err, command, "cannot reach the store", "start the store's server")
