"""The ``wsgisession`` command: clear-expired, check, --help and the demo server."""

from __future__ import annotations

import http.cookiejar
import re
import subprocess
import sys
import textwrap
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from demo_process import DemoProcess
from helpers import sqlite_rows
from paste.deploy import loadfilter

from wsgisession import SessionMiddleware
from wsgisession.cli import main
from wsgisession.errors import ConfigError
from wsgisession.stores import FileStore, SQLiteStore
from wsgisession.stores.base import Store

ROOT = Path(__file__).resolve().parent.parent


def no_app(environ: object, start_response: object) -> list[bytes]:
    return []


def populate(store: Store, live: int, expired: int) -> tuple[list[str], list[str]]:
    """Save ``live`` sessions and ``expired`` already-expired ones; their keys."""
    middleware = SessionMiddleware(no_app, store=store)
    keys: tuple[list[str], list[str]] = ([], [])
    for count, bucket in ((live, keys[0]), (expired, keys[1])):
        for number in range(count):
            session = middleware.open_session()
            session["number"] = number
            if bucket is keys[1]:
                session.set_expiry(-10)
            session.save()
            assert session.session_key is not None
            bucket.append(session.session_key)
    return keys


def session_files(path: Path) -> int:
    """The record files in a file store's directory, expired ones included."""
    return sum(
        1 for item in path.glob("*/*") if re.fullmatch(r"[0-9a-f]{64}", item.name)
    )


class Cli:
    """The ``wsgisession`` command run in-process, with a folder for its ini file."""

    def __init__(self, directory: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.directory = directory
        self.capsys = capsys

    def __repr__(self) -> str:
        return f"Cli({str(self.directory)!r})"

    def ini(self, text: str) -> Path:
        """``text``, dedented, written as ``app.ini`` in the folder."""
        path = self.directory / "app.ini"
        path.write_text(textwrap.dedent(text))
        return path

    def run(self, argv: list[str]) -> tuple[int, str, str]:
        """The exit status, stdout and stderr of ``wsgisession argv``."""
        status = main(argv)
        out, err = self.capsys.readouterr()
        return status, out, err

    def fails(self, argv: list[str], *messages: str) -> str:
        """Run expecting status 1 and ``messages`` on stderr, no traceback; the stdout."""
        status, out, err = self.run(argv)
        assert status == 1
        for message in messages:
            assert message in err
        assert "Traceback" not in err
        return out

    def clear_and_check(
        self, store: Store, keys: tuple[list[str], list[str]], argv: list[str]
    ) -> None:
        """Run ``clear-expired argv``: the expired ``keys`` go, the live ones load."""
        live, expired = keys
        status, out, _ = self.run(["clear-expired", *argv])
        assert status == 0
        assert f"removed {len(expired)} expired sessions from {store!r}" in out
        middleware = SessionMiddleware(no_app, store=store)
        for number, key in enumerate(live):
            assert store.exists(key)
            assert middleware.open_session(key)["number"] == number
        for key in expired:
            assert not store.exists(key)


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(tmp_path, capsys)


def test_clear_expired_sqlite_from_config(tmp_path: Path, cli: Cli) -> None:
    ini = cli.ini(
        """
        [filter:session]
        use = egg:wsgisession#session
        store = sqlite
        sqlite_path = %(here)s/sessions.sqlite3

        [app:main]
        use = egg:myapp
        """
    )
    store = SQLiteStore(tmp_path / "sessions.sqlite3")
    live, expired = populate(store, live=3, expired=4)
    assert sqlite_rows(tmp_path / "sessions.sqlite3") == 7
    argv = ["--config", f"{ini}#session"]
    cli.clear_and_check(store, (live, expired), argv)
    assert sqlite_rows(tmp_path / "sessions.sqlite3") == 3
    cli.clear_and_check(store, (live, []), argv)  # "removed 0 expired sessions"


def test_clear_expired_file_store_from_config(tmp_path: Path, cli: Cli) -> None:
    ini = cli.ini(
        """
        [filter:session]
        use = egg:wsgisession#session
        store = file
        file_path = %(here)s/sessions
        cookie_age = 3600
        """
    )
    store = FileStore(tmp_path / "sessions")
    keys = populate(store, live=2, expired=3)
    assert session_files(tmp_path / "sessions") == 5
    cli.clear_and_check(store, keys, ["--config", f"{ini}#filter:session"])
    assert session_files(tmp_path / "sessions") == 2


@pytest.mark.parametrize("kind", ["file", "sqlite"])
def test_clear_expired_with_store_options(tmp_path: Path, cli: Cli, kind: str) -> None:
    if kind == "file":
        store: Store = FileStore(tmp_path / "sessions")
        argv = ["--store", "file", "--file-path", str(tmp_path / "sessions")]
    else:
        store = SQLiteStore(tmp_path / "s.sqlite3")
        argv = ["--store", "sqlite", "--sqlite-path", str(tmp_path / "s.sqlite3")]
    cli.clear_and_check(store, populate(store, live=2, expired=2), argv)


def test_clear_expired_from_a_pyramid_app_section(tmp_path: Path, cli: Cli) -> None:
    ini = cli.ini(
        """
        [DEFAULT]
        debug = true

        [app:main]
        use = egg:myapp
        pyramid.reload_templates = true
        sqlalchemy.url = sqlite:///%(here)s/app.sqlite
        wsgisession.store = file
        wsgisession.file_path = %(here)s/sessions
        wsgisession.cookie_age = 600

        [server:main]
        use = egg:waitress#main
        """
    )
    store = FileStore(tmp_path / "sessions")
    keys = populate(store, live=1, expired=2)
    cli.clear_and_check(store, keys, ["--config", f"{ini}#main"])


def test_check_ok_prints_the_store(tmp_path: Path, cli: Cli) -> None:
    ini = cli.ini(
        """
        [DEFAULT]
        debug = true

        [filter:session]
        use = egg:wsgisession#session
        set debug = false
        store = file
        file_path = %(here)s/sessions
        cookie_age = 3600
        """
    )
    status, out, err = cli.run(["check", "--config", f"{ini}#session"])
    assert status == 0, err
    assert "cookie_age=3600" in out
    assert f"store reached: FileStore({str(tmp_path / 'sessions')!r})" in out


def test_check_without_a_section_name_finds_the_only_filter(cli: Cli) -> None:
    ini = cli.ini(
        """
        [filter:sess]
        use = egg:wsgisession#session
        store = memory

        [app:main]
        use = egg:myapp
        """
    )
    status, out, _ = cli.run(["check", "--config", str(ini)])
    assert status == 0
    assert "store reached: MemoryStore" in out


@pytest.mark.parametrize(
    ("section", "key"),
    [("filter:session", "cookie_agee"), ("app:session", "wsgisession.cookie_agee")],
)
def test_check_reports_a_misspelled_key(cli: Cli, section: str, key: str) -> None:
    ini = cli.ini(
        f"""
        [{section}]
        use = egg:wsgisession#session
        {key.replace("cookie_agee", "store")} = memory
        {key} = 60
        """
    )
    out = cli.fails(["check", "--config", f"{ini}#session"], key)
    assert "store reached" not in out


def test_check_and_loadapp_agree_on_the_case_of_keys(cli: Cli) -> None:
    ini = cli.ini(
        """
        [filter:session]
        use = egg:wsgisession#session
        store = memory
        Cookie_Age = 60
        """
    )
    wrap = loadfilter(f"config:{ini}", name="session")
    with pytest.raises(ConfigError, match="Cookie_Age"):
        wrap(no_app)
    cli.fails(["check", "--config", f"{ini}#session"], "Cookie_Age")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("store = memory\n", "no section headers"),
        ("[filter:session]\nfile_path = %(nowhere)s\n", "nowhere"),
        ("[filter:other]\nstore = memory\n", "[filter:session]"),
    ],
    ids=["no-section", "interpolation", "missing-section"],
)
def test_check_reports_an_unusable_file(cli: Cli, text: str, message: str) -> None:
    ini = cli.ini(text)
    cli.fails(["check", "--config", f"{ini}#session"], message)


def test_config_and_store_options_together_are_refused(cli: Cli) -> None:
    ini = cli.ini("[filter:session]\nstore = memory\n")
    argv = ["clear-expired", "--config", f"{ini}#session", "--store", "file"]
    cli.fails(argv, "--store")


def test_missing_config_file(tmp_path: Path, cli: Cli) -> None:
    cli.fails(["check", "--config", str(tmp_path / "nope.ini")], "nope.ini")


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "wsgisession", *args]


@pytest.mark.slow  # a Python subprocess
def test_python_m_wsgisession_help() -> None:
    done = subprocess.run(
        command("--help"), capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0
    for name in ("demo", "clear-expired", "check"):
        assert name in done.stdout


@pytest.mark.slow  # a Python subprocess
def test_console_script_runs_check(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("wsgisession")
    assert script.exists(), "the package's console script is not installed"
    done = subprocess.run(
        [str(script), "check", "--store", "file", "--file-path", str(tmp_path / "s")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "store reached: FileStore" in done.stdout


@pytest.mark.slow  # starts the demo server in a subprocess
def test_demo_serves_and_keeps_a_session() -> None:
    demo = DemoProcess("--store", "memory")
    try:
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPCookieProcessor(jar)
        )

        def page(action: str | None = None) -> str:
            data = None
            if action is not None:
                data = urllib.parse.urlencode({"action": action}).encode()
            with opener.open(demo.url, data=data, timeout=10) as response:
                return str(response.read().decode("utf-8"))

        def visits(text: str) -> int:
            match = re.search(r'<strong id="visits">(\d+)</strong>', text)
            assert match, text
            return int(match.group(1))

        first = page()
        assert visits(first) == 1 and "no session yet" in first
        assert [cookie.name for cookie in jar] == ["sessionid"]
        assert visits(page()) == 2  # a reload counts, as in the README's example
        after = page("flush")
        assert "flush(): the data cleared" in after
        assert "sessionid=&quot;&quot;; Expires=Thu, 01 Jan 1970" in after
        assert visits(after) == 1  # the page load after the logout starts anew
    finally:
        demo.stop()


@pytest.mark.parametrize("kind", ["file", "sqlite"])
def test_clear_expired_reports_its_progress(kind: str, tmp_path: Path) -> None:
    store: Store = (
        FileStore(tmp_path / "s") if kind == "file" else SQLiteStore(tmp_path / "s.db")
    )
    populate(store, live=3, expired=40)
    calls: list[tuple[int, int]] = []
    assert (
        store.clear_expired(progress=lambda done, total: calls.append((done, total)))
        == 40
    )
    assert calls, "no progress reported"
    assert all(0 <= done <= total for done, total in calls)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
    done, total = calls[-1]
    assert done == total and total == (40 if kind == "sqlite" else len(calls))


def test_progress_bar_draws_only_for_long_runs() -> None:
    import io

    from wsgisession.cli_streams import ProgressBar

    quick, slow = io.StringIO(), io.StringIO()
    bar = ProgressBar(quick)  # a run shorter than its one-second delay
    bar.update(5, 10)
    bar.finish()
    assert quick.getvalue() == ""
    bar = ProgressBar(slow, delay=0)
    bar.update(5, 10)
    bar.update(10, 10)
    bar.finish()
    assert "[###############---------------]  50% (5/10)" in slow.getvalue()
    assert slow.getvalue().endswith("100% (10/10)\n")
