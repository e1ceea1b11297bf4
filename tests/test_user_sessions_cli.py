"""``wsgisession sessions`` and ``wsgisession revoke``: a user's sessions for operators."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from wsgisession import SessionMiddleware
from wsgisession.cli import main
from wsgisession.stores import SQLiteStore

ISO = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00"


def no_app(environ: object, start_response: object) -> list[bytes]:
    return []


def write_ini(tmp_path: Path, store_lines: str) -> str:
    ini = tmp_path / "app.ini"
    ini.write_text(
        textwrap.dedent(
            """\
            [filter:session]
            use = egg:wsgisession#session
            """
        )
        + textwrap.dedent(store_lines)
    )
    return f"{ini}#session"


@pytest.fixture
def sqlite_ini(tmp_path: Path) -> str:
    return write_ini(
        tmp_path, "store = sqlite\nsqlite_path = %(here)s/sessions.sqlite3\n"
    )


def log_in(tmp_path: Path, user: str, times: int) -> list[str]:
    """``times`` sessions of ``user`` in the ini's store; their handles."""
    handles = []
    with SessionMiddleware(no_app, SQLiteStore(tmp_path / "sessions.sqlite3")) as m:
        for _ in range(times):
            session = m.open_session()
            session.bind_user(user)
            assert session.handle is not None
            handles.append(session.handle)
    return handles


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_sessions_lists_handles_and_iso_dates(
    tmp_path: Path, sqlite_ini: str, capsys: pytest.CaptureFixture[str]
) -> None:
    handles = log_in(tmp_path, "alice", 2)
    log_in(tmp_path, "bob", 1)
    status, out, err = run(capsys, "sessions", "--config", sqlite_ini, "alice")
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == ["HANDLE", "CREATED", "LAST", "SAVED", "EXPIRES"]
    rows = [
        re.fullmatch(rf"(\S+) +({ISO}) +({ISO}) +({ISO})", line) for line in lines[1:3]
    ]
    assert all(rows)
    assert sorted(row.group(1) for row in rows if row) == sorted(handles)
    assert lines[3] == "2 live sessions of 'alice'"
    status, out, _ = run(capsys, "sessions", "--config", sqlite_ini, "carol")
    assert (status, out) == (0, "no live sessions of 'carol'\n")


def test_revoke_one_then_all(
    tmp_path: Path, sqlite_ini: str, capsys: pytest.CaptureFixture[str]
) -> None:
    handles = log_in(tmp_path, "alice", 3)
    status, out, _ = run(
        capsys, "revoke", "--config", sqlite_ini, "alice", "--handle", handles[0]
    )
    assert (status, out) == (0, "revoked 1 session of 'alice'\n")
    status, out, err = run(
        capsys, "revoke", "--config", sqlite_ini, "alice", "--handle", handles[0]
    )
    assert status == 1 and out == ""
    assert err == (
        f"wsgisession revoke: error: no live session of 'alice' has handle "
        f"{handles[0]!r}\n"
    )
    status, out, _ = run(capsys, "revoke", "--config", sqlite_ini, "alice")
    assert (status, out) == (0, "revoked 2 sessions of 'alice'\n")
    status, out, _ = run(capsys, "sessions", "--config", sqlite_ini, "alice")
    assert out == "no live sessions of 'alice'\n"


def log_in_until_a_handle_starts_with_a_dash(tmp_path: Path, user: str) -> str:
    """Sessions of ``user`` until one's handle starts with ``-`` (one in 64)."""
    with SessionMiddleware(no_app, SQLiteStore(tmp_path / "sessions.sqlite3")) as m:
        for _ in range(5000):  # misses all with a chance of 1e-34
            session = m.open_session()
            session.bind_user(user)
            if session.handle and session.handle.startswith("-"):
                return session.handle
    raise AssertionError("no handle started with a dash")


def listed_handles(listing: str) -> set[str]:
    """The handles a ``sessions`` listing names (none: "no live sessions")."""
    lines = listing.splitlines()
    if not lines or not lines[0].startswith("HANDLE"):
        return set()
    return {line.split()[0] for line in lines[1:-1]}


def test_a_handle_starting_with_a_dash_is_taken_as_the_handle(
    tmp_path: Path, sqlite_ini: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """argparse takes ``--handle -Xy...`` for a missing value followed by an
    option, so a handle copied from ``sessions`` failed one time in 64."""
    handle = log_in_until_a_handle_starts_with_a_dash(tmp_path, "alice")
    before = listed_handles(run(capsys, "sessions", "--config", sqlite_ini, "alice")[1])
    assert handle in before
    status, out, err = run(
        capsys, "revoke", "--config", sqlite_ini, "alice", "--handle", handle
    )
    assert (status, out, err) == (0, "revoked 1 session of 'alice'\n", "")
    after = run(capsys, "sessions", "--config", sqlite_ini, "alice")[1]
    assert listed_handles(after) == before - {handle}
    status, out, err = run(
        capsys, "revoke", "--config", sqlite_ini, "alice", f"--handle={handle}"
    )
    assert (status, out) == (1, "")
    assert err.endswith(f"has handle {handle!r}\n")


def test_an_option_after_handle_is_still_a_missing_handle(
    sqlite_ini: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["revoke", "alice", "--handle", "--config", sqlite_ini])
    assert raised.value.code == 2
    assert "argument --handle: expected one argument" in capsys.readouterr().err


def test_store_flags_work_as_well_as_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log_in(tmp_path, "alice", 1)
    path = str(tmp_path / "sessions.sqlite3")
    status, out, _ = run(
        capsys, "revoke", "--store", "sqlite", "--sqlite-path", path, "alice"
    )
    assert (status, out) == (0, "revoked 1 session of 'alice'\n")


def test_a_store_without_user_sessions_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ini = write_ini(
        tmp_path,
        "store = cookie\nsecret_key = "
        + "kf78759e918ed00c0ceb21653a5790664e6a58ca"
        + "\n",
    )
    for command in ("sessions", "revoke"):
        status, out, err = run(capsys, command, "--config", ini, "alice")
        assert status == 1 and out == ""
        assert err.startswith(
            f"wsgisession {command}: error: SignedCookieStore does not support "
            "user sessions: the session lives in the client's cookie"
        )
        assert (
            err.count("\n") == 1
            and "kf78759e918ed00c0ceb21653a5790664e6a58ca" not in err
        )


def test_an_empty_user_id_is_one_error_line(
    sqlite_ini: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log_in(tmp_path, "alice", 1)
    status, out, err = run(capsys, "sessions", "--config", sqlite_ini, "")
    assert (status, out) == (1, "")
    assert err == "wsgisession sessions: error: user_id must not be empty\n"


@pytest.mark.parametrize("command", ["sessions", "revoke", "clear-expired"])
@pytest.mark.parametrize(
    "store", ["sqlite", "file", "sql"], ids=["sqlite", "file", "sql-on-sqlite"]
)
def test_a_store_path_that_does_not_exist_is_refused_not_made(
    command: str, store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A mistyped path must not look like success ("revoked 0 sessions" of a
    user whose sessions live on): the command made an empty store there."""
    missing = tmp_path / "typo"
    where = {
        "sqlite": ["--sqlite-path", str(missing)],
        "file": ["--file-path", str(missing)],
        "sql": ["--sql-url", f"sqlite:///{missing}"],
    }[store]
    user = [] if command == "clear-expired" else ["alice"]
    status, out, err = run(capsys, command, "--store", store, *where, *user)
    assert (status, out) == (1, "")
    assert f"no session store at {str(missing)!r}" in err
    assert "check the path" in err and err.count("\n") == 1
    assert not missing.exists()


@pytest.mark.parametrize("command", ["sessions", "revoke"])
def test_a_private_store_is_refused_for_a_users_sessions(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """No path: a new private store, which cannot hold the app's sessions."""
    status, out, err = run(capsys, command, "--store", "sqlite", "alice")
    assert (status, out) == (1, "")
    assert "without a path is a new, private store" in err
    assert "--sqlite-path" in err


def test_an_existing_store_is_used(
    sqlite_ini: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log_in(tmp_path, "alice", 2)
    assert run(capsys, "revoke", "--config", sqlite_ini, "alice")[:2] == (
        0,
        "revoked 2 sessions of 'alice'\n",
    )


def test_revoke_reports_every_session_it_deleted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An app on serializer = pickle; the operator uses the store flags (which
    cannot name a serializer): revoke deletes both sessions, and must say so."""
    path = tmp_path / "s.sqlite3"
    with SessionMiddleware(no_app, SQLiteStore(path), serializer="pickle") as mw:
        for _ in range(2):
            session = mw.open_session()
            session["n"] = 1
            session.bind_user("alice")
    status = main(["revoke", "--store", "sqlite", "--sqlite-path", str(path), "alice"])
    out, _ = capsys.readouterr()
    with SessionMiddleware(no_app, SQLiteStore(path), serializer="pickle") as mw:
        assert mw.user_sessions("alice") == []  # both were deleted
    assert (status, out) == (0, "revoked 2 sessions of 'alice'\n")


def test_sessions_says_how_many_records_it_could_not_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same pickle app: ``sessions`` with the store flags said "no live
    sessions" (status 0) while two live ones existed, which revoke then
    ended. It now says, on stderr, that two records could not be read."""
    path = tmp_path / "s.sqlite3"
    with SessionMiddleware(no_app, SQLiteStore(path), serializer="pickle") as mw:
        for _ in range(2):
            session = mw.open_session()
            session["n"] = 1
            session.bind_user("alice")
    status = main(
        ["sessions", "--store", "sqlite", "--sqlite-path", str(path), "alice"]
    )
    out, err = capsys.readouterr()
    assert (status, out) == (0, "no readable sessions of 'alice'\n")
    assert "2 more record(s) of 'alice' could not be read" in err
    assert "revoke ends them too" in err
