"""SQLiteStore refuses a database file that someone else could have written:
whoever can write it can plant a session (and be logged in as anyone)."""

from __future__ import annotations

import os
import sqlite3
import stat
import time
from pathlib import Path

import pytest
from helpers import later, payload_of, run_cli

from wsgisession.errors import ConfigError, StoreUnavailable
from wsgisession.stores.base import storage_key
from wsgisession.stores.sql import SQLStore
from wsgisession.stores.sqlite import SQLiteStore

pytestmark = pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX owners")


def planted(path: Path, key: str) -> None:
    """A database made at ``path`` before the app ran, holding a session
    for ``key``, as a local user who could write there would make it."""
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE wsgisession_sessions (key TEXT PRIMARY KEY,"
            " payload BLOB NOT NULL, expires_at REAL NOT NULL) WITHOUT ROWID"
        )
        db.execute(
            "INSERT INTO wsgisession_sessions VALUES (?, ?, ?)",
            (storage_key(key), b'{"user_id": "admin"}', time.time() + 600),
        )
    db.close()


def test_a_database_file_others_can_write_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "sessions.sqlite3"
    store = SQLiteStore(path)
    key = store.generate_key()
    planted(path, key)
    path.chmod(0o666)
    with pytest.raises(ConfigError) as info:
        store.load(key)
    assert "mode 666" in str(info.value)
    assert f"chmod 600 {path}" in str(info.value)


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to give a file away")
def test_a_database_file_another_user_owns_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "sessions.sqlite3"
    store = SQLiteStore(path)
    key = store.generate_key()
    planted(path, key)
    path.chmod(0o600)
    os.chown(path, 65534, 65534)
    with pytest.raises(ConfigError) as info:
        store.load(key)
    assert "uid 65534" in str(info.value)


def test_a_database_file_of_this_user_closed_to_others_is_used(
    tmp_path: Path,
) -> None:
    path = tmp_path / "sessions.sqlite3"
    store = SQLiteStore(path)
    key = store.generate_key()
    planted(path, key)
    path.chmod(0o644)  # readable, as sqlite3 makes it: not refused
    assert payload_of(store, key) == b'{"user_id": "admin"}'
    store.update(key, lambda current: (b"{}", later()), None)
    assert payload_of(store, key) == b"{}"


# -- the directory: SQLite replays a -wal file it finds there ------------------


def planted_wal(path: Path, elsewhere: Path) -> str:
    """A ``-wal`` file put beside the database at ``path`` while the app is
    stopped, by a local user who can write to its directory (not to the
    database file): made with this library in a directory of their own, it
    holds a whole database with a session of theirs, which SQLite replays
    into the app's database when it next opens it. The session's key."""
    theirs = SQLiteStore(elsewhere / "sessions.sqlite3")
    key = theirs.generate_key()
    theirs.create(key, b'{"user_id": "admin"}', later())
    wal = path.with_name(path.name + "-wal")
    wal.write_bytes((elsewhere / "sessions.sqlite3-wal").read_bytes())
    theirs.close()
    return key


@pytest.mark.parametrize("mode", [0o777, 0o1777])
def test_a_directory_others_can_write_is_refused(tmp_path: Path, mode: int) -> None:
    """A WAL planted there would log its maker in as anyone: the README's
    "a session directory that other users can write stops startup"."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(mode)  # /tmp itself is 1777: others may create files in it
    path = shared / "sessions.sqlite3"
    store = SQLiteStore(path)
    with pytest.raises(ConfigError) as info:
        store.create(store.generate_key(), b"{}", later())
    assert f"{shared}" in str(info.value)
    assert f"mode {mode:o}" in str(info.value)
    assert "directory of its own" in str(info.value)
    assert not path.exists()


def test_a_planted_wal_is_never_replayed(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    path = shared / "sessions.sqlite3"
    app = SQLiteStore(path)
    app.create(app.generate_key(), b'{"user_id": "alice"}', later())
    app.close()  # the app stops: SQLite checkpoints and removes its -wal
    shared.chmod(0o777)
    mine = tmp_path / "mine"
    mine.mkdir()
    key = planted_wal(path, mine)
    with pytest.raises(ConfigError, match="can create files in it"):
        SQLiteStore(path).load(key)  # the app starts again
    shared.chmod(0o700)
    os.unlink(path.with_name(path.name + "-wal"))  # the operator cleans up
    assert SQLiteStore(path).load(key) is None


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to give a directory away")
def test_a_directory_another_group_can_write_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chown(shared, -1, 65534)
    shared.chmod(0o770)
    store = SQLiteStore(shared / "sessions.sqlite3")
    with pytest.raises(ConfigError, match="mode 770: group or others can create"):
        store.load(store.generate_key())


def has_a_private_group() -> bool:
    """Whether this user's group is named as the user, with no other member."""
    import grp
    import pwd

    user = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid())
    return group.gr_name == user and set(group.gr_mem) <= {user}


@pytest.mark.skipif(not has_a_private_group(), reason="the user has no private group")
def test_the_users_private_group_may_write(tmp_path: Path) -> None:
    """A project directory made with umask 002 (a user private group, as on
    Debian and Fedora) holds the quickstart's sessions.sqlite3."""
    project = tmp_path / "project"
    project.mkdir()
    project.chmod(0o775)
    store = SQLiteStore(project / "sessions.sqlite3")
    key = store.generate_key()
    store.create(key, b"{}", later())
    assert payload_of(store, key) == b"{}"


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to give a directory away")
def test_a_directory_another_user_owns_is_refused(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, 65534, 65534)
    store = SQLiteStore(theirs / "sessions.sqlite3")
    with pytest.raises(ConfigError, match="owned by uid 65534"):
        store.load(store.generate_key())


def test_check_reports_a_directory_others_can_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    path = shared / "sessions.sqlite3"
    status, out, err = run_cli(capsys, "check", "--sqlite-path", str(path))
    assert status == 1 and "store reached" not in out
    assert f"wsgisession check: error: SQLite store directory {str(shared)!r}" in err


# -- the SQL store on a SQLite URL: the same file, the same planting ------------


@pytest.mark.parametrize("mode", [0o777, 0o1777])
def test_the_sql_store_on_sqlite_refuses_a_directory_others_can_write(
    tmp_path: Path, mode: int
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(mode)
    store = SQLStore(f"sqlite:///{shared}/sessions.sqlite3")
    with pytest.raises(ConfigError, match="can create files in it"):
        store.create(store.generate_key(), b"x", later())
    assert not (shared / "sessions.sqlite3").exists(), "refused before opening"
    store.close()


def test_the_sql_store_on_sqlite_refuses_a_database_file_others_can_write(
    tmp_path: Path,
) -> None:
    path = tmp_path / "sessions.sqlite3"
    store = SQLStore(f"sqlite:///{path}")
    key = store.generate_key()
    assert store.create(key, b"mine", later()) == key
    store.close()  # the next use opens a new connection, which checks again
    path.chmod(0o666)
    with pytest.raises(ConfigError, match="mode 666"):
        store.load(key)
    path.chmod(0o600)
    assert payload_of(store, key) == b"mine"
    store.close()


@pytest.mark.parametrize(
    "form", ["sqlite:///{path}", "sqlite:///file:{path}?uri=true&mode=rwc"]
)
def test_the_sql_store_on_sqlite_makes_its_database_private(
    tmp_path: Path, form: str
) -> None:
    """As SQLiteStore: mode 0600, not the 0644 sqlite3 gives it under umask
    022, which let every local user read the sessions (the directory of
    /var/lib/myapp is often 0755)."""
    path = tmp_path / "sessions.sqlite3"
    previous = os.umask(0o022)  # the usual umask of a service
    try:
        store = SQLStore(form.format(path=path))
        assert store.create(store.generate_key(), b"secret", later())
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    store.close()


def test_the_sql_store_on_sqlite_makes_private_the_file_a_symlink_names(
    tmp_path: Path,
) -> None:
    """A database path that is a symlink to a file not made yet (a deploy
    linking the data directory in): SQLite creates the file it points to,
    which must be 0600 too, as SQLiteStore makes it."""
    (tmp_path / "data").mkdir(mode=0o700)
    target = tmp_path / "data" / "sessions.sqlite3"
    link = tmp_path / "sessions.sqlite3"
    link.symlink_to(target)
    previous = os.umask(0o022)
    try:
        store = SQLStore(f"sqlite:///{link}")
        assert store.create(store.generate_key(), b"secret", later())
    finally:
        os.umask(previous)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    store.close()


def test_the_sql_store_on_a_read_only_sqlite_uri_makes_no_file(
    tmp_path: Path,
) -> None:
    """``mode=ro`` opens an existing database only: none is made for it."""
    path = tmp_path / "sessions.sqlite3"
    store = SQLStore(f"sqlite:///file:{path}?uri=true&mode=ro")
    with pytest.raises(StoreUnavailable):
        store.load(store.generate_key())
    assert not path.exists()
    store.close()


@pytest.mark.parametrize(
    "form",
    [
        "sqlite:///{path}?uri=true",
        "sqlite:///file:{path}?uri=true&mode=rwc",
        "sqlite:///file://{path}?uri=true",
        "sqlite+pysqlite:///file:{path}?uri=1",
    ],
)
def test_the_sql_store_on_a_sqlite_uri_refuses_a_directory_others_can_write(
    tmp_path: Path, form: str
) -> None:
    """``uri=true`` (for SQLite's own options, as ``mode=rwc``) still opens
    a file, beside which SQLite replays a planted ``-wal``."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    store = SQLStore(form.format(path=shared / "sessions.sqlite3"))
    with pytest.raises(ConfigError, match="can create files in it"):
        store.create(store.generate_key(), b"x", later())
    assert not (shared / "sessions.sqlite3").exists(), "refused before opening"
    store.close()


def test_the_sql_store_on_an_in_memory_sqlite_uri_is_not_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No file, no directory to plant in, whatever the working directory."""
    tmp_path.chmod(0o777)
    monkeypatch.chdir(tmp_path)
    store = SQLStore("sqlite:///file::memory:?cache=shared&uri=true")
    key = store.generate_key()
    assert store.create(key, b"x", later()) == key
    store.close()


@pytest.mark.parametrize("made", [True, False], ids=["target", "missing-target"])
@pytest.mark.parametrize("kind", ["sqlite", "sql"])
def test_a_database_symlinked_into_a_directory_others_can_write_is_refused(
    tmp_path: Path, kind: str, made: bool
) -> None:
    """SQLite follows the symlink and keeps the ``-wal`` beside its target:
    the target's directory is the one others must not write."""
    shared, private = tmp_path / "shared", tmp_path / "private"
    shared.mkdir()
    shared.chmod(0o777)
    private.mkdir(mode=0o700)
    if made:
        (shared / "sessions.sqlite3").touch(mode=0o600)
    path = private / "sessions.sqlite3"
    path.symlink_to(shared / "sessions.sqlite3")
    store = SQLiteStore(path) if kind == "sqlite" else SQLStore(f"sqlite:///{path}")
    with pytest.raises(ConfigError, match="can create files in it") as info:
        store.create(store.generate_key(), b"x", later())
    assert f"{str(shared)!r}" in str(info.value)
    assert not (shared / "sessions.sqlite3-wal").exists()
    store.close()


def test_a_database_symlinked_into_a_private_directory_is_used(
    tmp_path: Path,
) -> None:
    """``/var/lib/myapp/sessions.sqlite3`` linking to a volume of its own."""
    volume, private = tmp_path / "volume", tmp_path / "private"
    volume.mkdir(mode=0o700)
    private.mkdir(mode=0o700)
    (private / "sessions.sqlite3").symlink_to(volume / "sessions.sqlite3")
    for store in (
        SQLiteStore(private / "sessions.sqlite3"),
        SQLStore(f"sqlite:///{private}/sessions.sqlite3"),
    ):
        key = store.generate_key()
        assert store.create(key, b"x", later()) == key
        store.close()
