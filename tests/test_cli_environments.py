"""The ``wsgisession`` command in the process environments deployments give
it: standard error closed, no home directory, a umask of 000, the C locale
with Python's UTF-8 mode off.

Each runs the command in a subprocess, as cron, a container or a
supervisor would, and expects it to do its work or to end in one line
saying what to do: never a traceback, never work silently left undone.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from wsgisession import SessionMiddleware
from wsgisession.stores import SQLiteStore

pytestmark = pytest.mark.slow  # a Python subprocess per case

ROOT = Path(__file__).resolve().parent.parent
USER = "José 😀"  # an emoji: no 8-bit encoding has it
#: An address of no machine (TEST-NET-1): the demo fails to listen at once,
#: after it has made its secret key, and serves nothing.
NOT_HERE = "192.0.2.1"


def no_app(environ: object, start_response: object) -> list[bytes]:
    return []


def environment(**changes: str | None) -> dict[str, str]:
    """This checkout importable, with ``changes`` (None: unset)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for name, value in changes.items():
        env.pop(name, None)
        if value is not None:
            env[name] = value
    return env


def wsgisession(
    *argv: str, env: dict[str, str], prefix: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """``python -m wsgisession argv`` (after ``prefix``, a shell's or
    another command's), its output read as UTF-8, escapes kept."""
    return subprocess.run(
        [*prefix, sys.executable, "-m", "wsgisession", *argv],
        capture_output=True,
        encoding="utf-8",
        errors="backslashreplace",
        env=env,
        timeout=60,
        check=False,
    )


def one_line(err: str, command: str, *fragments: str) -> None:
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"wsgisession {command}: "), err
    for fragment in fragments:
        assert fragment in err, err


# -- standard error closed ------------------------------------------------------


def test_clear_expired_with_standard_error_closed_still_clears(
    tmp_path: Path,
) -> None:
    """``wsgisession clear-expired ... 2>&-`` from cron or a supervisor that
    closes what it does not collect: the check for a terminal (to draw a
    progress bar) met no stderr and ended the command in an AttributeError
    before it removed anything, with status 1 and no message anywhere."""
    path = tmp_path / "sessions.sqlite3"
    with SessionMiddleware(no_app, SQLiteStore(path)) as middleware:
        for _ in range(3):
            session = middleware.open_session()
            session["n"] = 1
            session.set_expiry(-10)
            session.save()
    argv = ["clear-expired", "--store", "sqlite", "--sqlite-path", str(path)]
    done = wsgisession(*argv, env=environment(), prefix=("sh", "-c", '"$@" 2>&-', "-"))
    assert (done.returncode, done.stderr) == (0, ""), done.stdout
    assert done.stdout.startswith("removed 3 expired sessions from SQLiteStore(")


def test_an_error_with_standard_error_closed_stays_out_of_standard_output(
    tmp_path: Path,
) -> None:
    """``print(..., file=sys.stderr)`` with stderr closed writes to stdout:
    the error line landed in the output a script reads as the listing."""
    missing = str(tmp_path / "no-such-directory" / "sessions.sqlite3")
    argv = ["sessions", "--store", "sqlite", "--sqlite-path", missing, "ann"]
    done = wsgisession(*argv, env=environment(), prefix=("sh", "-c", '"$@" 2>&-', "-"))
    assert (done.returncode, done.stdout, done.stderr) == (1, "", "")


# -- no home directory ----------------------------------------------------------


def _without_a_home() -> tuple[str, ...]:
    """A prefix running a command as a user id the system has no account
    (so no home directory) for, as a container's arbitrary user: as root,
    ``setpriv`` switches to it; otherwise a user namespace maps it."""
    prefixes = [("unshare", "--user", "--map-user=54321", "--map-group=54321")]
    if os.geteuid() == 0:
        setpriv = ("setpriv", "--reuid=54321", "--regid=54321", "--clear-groups")
        prefixes.insert(0, setpriv)
    tried = []
    for prefix in prefixes:
        try:
            probe = subprocess.run(
                [*prefix, "true"], capture_output=True, timeout=30, check=False
            )
        except FileNotFoundError:
            tried.append(f"{prefix[0]}: not installed")
            continue
        if probe.returncode == 0:
            return prefix
        tried.append(f"{prefix[0]}: {probe.stderr!r}")
    pytest.fail(f"cannot run as a user without an account here: {tried}")


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["check", "--store", "memory"],
        ["clear-expired", "--store", "memory"],
    ],
)
def test_commands_run_without_a_home_directory(argv: list[str]) -> None:
    """HOME unset and a user id without an account (a container run with
    an arbitrary uid, ``env -i`` in a unit file): building the parser
    asked for the demo's key path under the home directory, and every
    command, ``--help`` too, ended in "RuntimeError: Could not determine
    home directory" before reading its arguments."""
    env = environment(HOME=None, XDG_STATE_HOME=None)
    done = wsgisession(*argv, env=env, prefix=_without_a_home())
    assert "Traceback" not in done.stderr, done.stderr
    if argv == ["--help"]:
        assert done.returncode == 0 and "usage: wsgisession" in done.stdout
    elif argv[0] == "check":
        assert done.returncode == 0 and "store reached" in done.stdout
    else:  # a memory store has nothing to clear, and says so
        assert done.returncode == 1
        one_line(done.stderr, "clear-expired", "store = memory")


def test_the_demo_without_a_home_directory_asks_for_a_key(tmp_path: Path) -> None:
    """The cookie store's demo keeps its key under the home directory; with
    none, one line says how to give a key, not a RuntimeError traceback."""
    env = environment(HOME=None, XDG_STATE_HOME=None, WSGISESSION_SECRET_KEY=None)
    argv = ["demo", "--store", "cookie", "--host", NOT_HERE, "--port", "0"]
    done = wsgisession(*argv, env=env, prefix=_without_a_home())
    assert (done.returncode, done.stdout) == (1, "")
    one_line(done.stderr, "demo", "--secret-key-file", "WSGISESSION_SECRET_KEY")


# -- a umask of 000 -------------------------------------------------------------


@pytest.mark.parametrize("where", ["HOME", "XDG_STATE_HOME"])
def test_the_demo_keeps_its_key_in_private_directories_whatever_the_umask(
    tmp_path: Path, where: str
) -> None:
    """Under a umask of 000 the demo made the missing parents of its key's
    directory (``~/.local`` and ``~/.local/state``) writable by everyone:
    another local user could then move the directory away, or plant
    ``~/.local/bin`` programs that the user's PATH runs."""
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    env = environment(HOME=str(home), XDG_STATE_HOME=None, WSGISESSION_SECRET_KEY=None)
    made = [home / ".local", home / ".local" / "state"]
    if where == "XDG_STATE_HOME":
        env["XDG_STATE_HOME"] = str(home / "var" / "state")
        made = [home / "var", home / "var" / "state"]
    argv = ["demo", "--store", "cookie", "--host", NOT_HERE, "--port", "0"]
    done = wsgisession(*argv, env=env, prefix=("sh", "-c", 'umask 000; exec "$@"', "-"))
    assert done.returncode == 1 and "cannot listen" in done.stderr, done.stderr
    key = made[-1] / "wsgisession" / "demo-secret"
    modes = {path: stat.S_IMODE(path.stat().st_mode) for path in [*made, key.parent]}
    assert modes == dict.fromkeys(modes, 0o700)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


# -- the C locale, UTF-8 mode off ------------------------------------------------


def c_locale() -> dict[str, str]:
    """``LC_ALL=C`` with Python's UTF-8 mode off: ASCII for argv and files."""
    return environment(LC_ALL="C", LANG=None, PYTHONUTF8="0", PYTHONIOENCODING=None)


def test_a_user_id_given_in_the_c_locale_is_read_as_utf8(tmp_path: Path) -> None:
    """An operator's terminal sends the user id as UTF-8 and the command
    runs in the C locale (with UTF-8 mode off): Python hands the bytes it
    cannot decode as ASCII over as lone surrogates, and ``sessions`` and
    ``revoke`` refused the id ("it holds a lone surrogate"), so that the
    user's sessions could be neither listed nor ended."""
    path = tmp_path / "sessions.sqlite3"
    with SessionMiddleware(no_app, SQLiteStore(path)) as middleware:
        middleware.open_session().bind_user(USER)
    store = ["--store", "sqlite", "--sqlite-path", str(path)]
    listing = wsgisession("sessions", *store, USER, env=c_locale())
    assert (listing.returncode, listing.stderr) == (0, "")
    assert listing.stdout.splitlines()[-1] == "1 live session of 'Jos\\xe9 \\U0001f600'"
    revoking = wsgisession("revoke", *store, USER, env=c_locale())
    assert (revoking.returncode, revoking.stderr) == (0, "")
    assert revoking.stdout.startswith("revoked 1 session of ")
    with SessionMiddleware(no_app, SQLiteStore(path)) as middleware:
        assert middleware.user_sessions(USER) == []


def test_a_utf8_ini_file_in_the_c_locale_is_not_called_something_else(
    tmp_path: Path,
) -> None:
    """Paste Deploy, and so ``check``, read an ini file in the locale's
    encoding: in the C locale a UTF-8 file with an accent fails in the app
    as in ``check``. The error said "not UTF-8 text ... save the file as
    UTF-8" of a file that is UTF-8: it now names the locale's encoding and
    how to read the file as UTF-8."""
    ini = tmp_path / "app.ini"
    ini.write_text(
        "[filter:session]\nuse = egg:wsgisession#session\n"
        "# sessions of the café\nstore = memory\n",
        encoding="utf-8",
    )
    done = wsgisession("check", "--config", f"{ini}#session", env=c_locale())
    assert (done.returncode, done.stdout) == (1, "")
    one_line(done.stderr, "check", "ascii", "PYTHONUTF8=1")
    assert "save the file as UTF-8" not in done.stderr
