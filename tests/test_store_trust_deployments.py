"""The file and SQLite stores' trust in their directory, in real deployments.

Root (or a developer) running ``wsgisession check`` or ``clear-expired``
against the app's store is refused, as it should be: the app's user could
plant files there for root's process. The message must say to run the
command as the store's owner, not to take the store from the app with
``chown``. And a directory that another user can write through its group,
whatever its group is named, lets them plant a ``-wal`` file that SQLite
replays into the database: it is not the user's private group.
"""

from __future__ import annotations

import errno
import grp  # noqa: F401 - loaded before a child drops root (see as_user)
import os
import pwd
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers import later, run_cli

from wsgisession.errors import ConfigError
from wsgisession.stores.sqlite import SQLiteStore

ROOT = hasattr(os, "getuid") and os.getuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="needs root to make users")
NOBODY = 65534


def sudo_name(uid: int) -> str:
    """The user ``sudo -u`` takes for ``uid``."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"'#{uid}'"


def apps_store(kind: str, base: Path) -> list[str]:
    """A store of ``kind`` under ``base`` that uid 65534 (the app) owns,
    as it left it; the command-line arguments that name it."""
    if kind == "file":
        (base / "sessions").mkdir(mode=0o700)
        os.chown(base / "sessions", NOBODY, NOBODY)
        return ["--store", "file", "--file-path", str(base / "sessions")]
    path = base / "sessions.sqlite3"
    path.touch(mode=0o600)
    os.chown(path, NOBODY, NOBODY)
    os.chown(base, NOBODY, NOBODY)  # systemd's StateDirectory=, mode 0755
    if kind == "sql":
        return ["--store", "sql", "--sql-url", f"sqlite:///{path}"]
    return ["--sqlite-path", str(path)]


@pytest.mark.skipif(not ROOT, reason="needs root to give a store away")
@pytest.mark.parametrize("kind", ["file", "sqlite", "sql"])
@pytest.mark.parametrize("command", ["check", "clear-expired"])
def test_root_is_told_to_run_the_command_as_the_stores_owner(
    kind: str, command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Root's crontab, or ``sudo wsgisession check``: refused, and told to
    use ``sudo -u APPUSER`` (the message only said ``chown 0 DIR``, which
    takes the store from the app: every request then fails)."""
    base = tmp_path / "state"
    base.mkdir(mode=0o755)
    status, out, err = run_cli(capsys, command, *apps_store(kind, base))
    assert status == 1 and "store reached" not in out and "removed" not in out
    assert f"owned by uid {NOBODY}" in err
    assert f"sudo -u {sudo_name(NOBODY)}" in err
    assert all(path.stat().st_uid == NOBODY for path in base.rglob("*"))


# -- a group that is not the user's alone ---------------------------------------


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory outside pytest's root-only ones, which other users can reach."""
    path = Path(tempfile.mkdtemp(prefix="wsgisession-trust-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


@pytest.fixture
def app_and_peer() -> Iterator[tuple[pwd.struct_passwd, pwd.struct_passwd]]:
    """The app's user, with its private group, and a deployer whose primary
    group is the app's (``useradd -g myapp deploy``)."""
    if shutil.which("useradd") is None:
        pytest.skip("needs useradd")
    tag = os.getpid() % 100000
    app, peer = f"wst-app-{tag}", f"wst-peer-{tag}"
    made = []
    try:
        for argv in (["--user-group", app], ["-N", "-g", app, peer]):
            subprocess.run(["useradd", "-M", "-s", "/bin/false", *argv], check=True)
            made.append(argv[-1])
        yield pwd.getpwnam(app), pwd.getpwnam(peer)
    finally:
        for name in reversed(made):
            subprocess.run(["userdel", name], check=False)


def as_user(user: pwd.struct_passwd, action: Callable[[], None]) -> str:
    """``action`` run in a child process as ``user``: ``"ok"`` or the
    message of the exception it raised. The modules it needs are imported
    before: this interpreter's own files may be root's alone."""
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(reader)
        result = "ok"
        try:
            os.setgroups([])
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
            action()
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            result = f"{type(exc).__name__}: {exc}"
        os.write(writer, result.encode())
        os._exit(0)
    os.close(writer)
    with os.fdopen(reader, "rb") as pipe:
        result = pipe.read().decode()
    os.waitpid(pid, 0)
    return result


def use_sqlite_store(path: Path) -> Callable[[], None]:
    def action() -> None:
        store = SQLiteStore(path)
        store.create(store.generate_key(), b"{}", later())
        store.close()

    return action


@needs_root
def test_a_group_that_is_another_users_primary_group_is_not_private(
    shared_dir: Path, app_and_peer: tuple[pwd.struct_passwd, pwd.struct_passwd]
) -> None:
    """The group is named as the app's user and lists no member, but the
    deployer is in it through /etc/passwd and can plant a -wal file."""
    app, peer = app_and_peer
    project = shared_dir / "project"
    project.mkdir()
    os.chown(project, app.pw_uid, app.pw_gid)
    project.chmod(0o775)  # made under umask 002
    planted = project / "sessions.sqlite3-wal"
    assert as_user(peer, planted.touch) == "ok", "the peer can create files there"
    planted.unlink()
    result = as_user(app, use_sqlite_store(project / "sessions.sqlite3"))
    assert result.startswith("ConfigError: SQLite store directory"), result
    assert "mode 775: group or others can create files" in result


@needs_root
def test_the_apps_private_group_still_may_write(
    shared_dir: Path, app_and_peer: tuple[pwd.struct_passwd, pwd.struct_passwd]
) -> None:
    app, peer = app_and_peer
    subprocess.run(["userdel", peer.pw_name], check=True)  # only the app is left
    project = shared_dir / "project"
    project.mkdir()
    os.chown(project, app.pw_uid, app.pw_gid)
    project.chmod(0o775)
    assert as_user(app, use_sqlite_store(project / "sessions.sqlite3")) == "ok"


def grant_write_by_acl(path: Path, uid: int) -> None:
    """``setfacl -m u:UID:rwx path``, written as the kernel's xattr."""
    entries = [
        (0x01, 7, -1),
        (0x02, 7, uid),
        (0x04, 5, -1),
        (0x10, 7, -1),
        (0x20, 5, -1),
    ]
    data = struct.pack("<I", 2) + b"".join(
        struct.pack("<HHI", tag, perm, ident & 0xFFFFFFFF)
        for tag, perm, ident in entries
    )
    try:
        os.setxattr(path, "system.posix_acl_access", data)
    except (AttributeError, OSError) as exc:
        if isinstance(exc, OSError) and exc.errno not in (errno.ENOTSUP, errno.EPERM):
            raise
        pytest.skip("no POSIX ACLs here")


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX owners")
def test_a_directory_an_acl_lets_another_user_write_is_refused(tmp_path: Path) -> None:
    """``setfacl -m u:deploy:rwx`` on the app's 0755 directory shows as mode
    775 with the app's own group: the group bits are the ACL's mask."""
    project = tmp_path / "project"
    project.mkdir(mode=0o755)
    grant_write_by_acl(project, NOBODY)
    store = SQLiteStore(project / "sessions.sqlite3")
    with pytest.raises(ConfigError, match="group or others can create files"):
        store.create(store.generate_key(), b"{}", later())
    assert not (project / "sessions.sqlite3").exists()


@needs_root
def test_a_store_in_a_root_owned_system_directory_is_not_told_to_take_it(
    shared_dir: Path,
) -> None:
    """The app (uid 65534) pointed at a path in a directory of root's, such
    as /var/lib: the message said to run as root (``sudo -u root``) or to
    ``chown``/``chmod 700`` the directory, which would break the system.
    It now says to give the store a path of its own there, unless root made
    the directory for the app."""
    system = shared_dir / "lib"
    system.mkdir(mode=0o755)
    result = as_user(pwd.getpwuid(NOBODY), use_sqlite_store(system / "s.sqlite3"))
    assert result.startswith("ConfigError: ") and "owned by uid 0" in result
    assert "sudo -u root" not in result
    assert "if it is a system directory" in result and "path of its own" in result
