"""Facts the reference pages state, checked against what the code does.

:mod:`test_docs` builds the pages and runs their examples; this module
checks sentences of them that no example runs:

* configuration.rst and stores.rst: a ``store = package.module:Class`` is
  "called with the store keys that are set in the section", every one;
* cli.rst: every command that reads an ini section "refuses what the
  middleware would refuse at startup (``lock = true`` with the cookie
  store, say)", and the section is read as Paste Deploy reads it, ``use``
  and ``set`` lines included (deploying.rst: "exactly as the app will");
* deploying.rst: ``check`` warns about "``store = redis`` or ``memcached``
  with the default :confval:`key_prefix`", however it is written;
* deploying.rst's Logging table (and troubleshooting.rst's Loggers): every
  module that logs does so under a logger the table names, so that an
  operator who configures those loggers sees every line;
* user_sessions.rst: "A revocation has 20 rounds", the code's count;
* security.rst and deploying.rst: waiting requests not asking the store
  "look at it again once a second", as both waits do.
* deploying.rst's Logging table, troubleshooting.rst's Loggers and its
  StoreUnavailable: the SQL store's WARNING for a missing ``user_key``
  index, and the StoreUnavailable of a table the app's user may not alter;
* security.rst: how far a ``Cookie`` header is read (16 pairs of the
  name, 64 cookies holding it), the code's bounds;
* quickstart.rst: without a store, the middleware "logs that choice once,
  at INFO on the ``wsgisession.middleware`` logger", the level and logger
  the code uses (at Python's default WARNING, a reader sees nothing).
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
from helpers import filter_ini, run_cli
from paste.deploy import loadfilter

import wsgisession
from wsgisession.config import parse_settings
from wsgisession.deploycheck import deploy_warnings
from wsgisession.stores import MemoryStore, _lockwaits, memory
from wsgisession.usersessions import _REVOKE_ROUNDS

DOCS = Path(__file__).resolve().parents[1] / "docs"


def page_text(name: str) -> str:
    """The page ``docs/name``, its whitespace runs made single spaces."""
    return " ".join((DOCS / name).read_text(encoding="utf-8").split())


class KeywordStore(MemoryStore):
    """A custom store with defaults of its own, which remembers its arguments."""

    def __init__(
        self, sql_table: str = "myapp_sessions", encrypt: bool = True, **rest: Any
    ) -> None:
        super().__init__()
        self.kwargs = {"sql_table": sql_table, "encrypt": encrypt, **rest}


class UnlockableStore(MemoryStore):
    """A custom store that cannot take the request lock (as the docs' DictStore)."""

    supports_locking = False


@pytest.mark.parametrize(
    ("key", "text", "value"),
    [
        ("sql_table", "wsgisession_sessions", "wsgisession_sessions"),
        ("encrypt", "false", False),
        ("key_prefix", "none", None),
    ],
)
def test_a_custom_store_gets_every_key_that_is_set(
    key: str, text: str, value: object
) -> None:
    """A key whose value is the built-in stores' default is still set: the
    class's own default must not replace it (another table, say)."""
    _, spec = parse_settings({"store": f"{__name__}:KeywordStore", key: text})
    store = spec.build()
    assert isinstance(store, KeywordStore)
    assert store.kwargs[key] == value, store.kwargs


@pytest.mark.parametrize(
    "command", [["clear-expired"], ["sessions", "42"], ["revoke", "42"]]
)
def test_every_store_command_refuses_what_the_middleware_refuses(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = filter_ini(tmp_path, f"store = {__name__}:UnlockableStore\nlock = true\n")
    status, out, err = run_cli(capsys, command[0], "--config", config, *command[1:])
    assert (status, out) == (1, ""), (out, err)
    assert err.startswith(f"wsgisession {command[0]}: error: lock: UnlockableStore")
    assert err.count("\n") == 1, err


@pytest.mark.parametrize("store", ["redis", "memcached"])
def test_check_warns_about_the_default_key_prefix_written_out(store: str) -> None:
    where = {"redis": ("redis_url", "redis://127.0.0.1:1/0")}.get(
        store, ("memcached_servers", "127.0.0.1:1")
    )
    for prefix in ("none", "wsgisession:"):
        settings, spec = parse_settings(
            {"store": store, where[0]: where[1], "key_prefix": prefix}
        )
        found = [w for w in deploy_warnings(settings, spec) if "key_prefix" in w]
        assert found, f"no warning for key_prefix = {prefix}"
    settings, spec = parse_settings(
        {"store": store, where[0]: where[1], "key_prefix": "myapp:"}
    )
    assert not [w for w in deploy_warnings(settings, spec) if "key_prefix" in w]


def test_check_reads_the_set_lines_of_a_used_section_as_paste_deploy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``use = base``: base's ``set`` lines win over this file's [DEFAULT],
    as Paste Deploy hands the filter its globals; this section's win last."""
    path = tmp_path / "app.ini"
    path.write_text(
        textwrap.dedent(
            """\
            [DEFAULT]
            cookie_age = 60
            lock_ttl = 30

            [filter:base]
            use = egg:wsgisession#session
            store = memory
            set cookie_age = 90
            set lock_ttl = 40

            [filter:session]
            use = base
            set lock_ttl = 50
            """
        )
    )
    middleware = loadfilter(f"config:{path}", name="session")(lambda e, s: [])
    assert (middleware.settings.cookie_age, middleware.settings.lock_ttl) == (90, 50)
    status, out, err = run_cli(capsys, "check", "--config", f"{path}#session")
    assert status == 0, err
    shown = re.search(r"cookie_age=(\d+).*lock_ttl=([\d.]+)", out)
    assert shown is not None, out
    assert (int(shown[1]), float(shown[2])) == (90, 50.0)


def documented_loggers() -> set[str]:
    """The loggers of deploying.rst's Logging table (``.sqlite`` after
    ``wsgisession.stores.file`` is ``wsgisession.stores.sqlite``)."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "deploying.rst").read_text(
        encoding="utf-8"
    )
    table = text[text.index("   * - logger") : text.index("No log line at any level")]
    names: set[str] = set()
    for row in re.findall(r"^   \* - (.*(?:\n {7}.*)*)", table, re.MULTILINE):
        found = re.findall(r"``([\w.]+)``", row)
        parent = found[0].rpartition(".")[0] if found else ""
        names.update(parent + name if name.startswith(".") else name for name in found)
    return names


def test_every_module_that_logs_uses_a_logger_the_docs_name() -> None:
    """The demo is left out: it is not part of an app's middleware (nor
    ``__main__``, which runs the command when imported)."""
    documented = documented_loggers()
    assert "wsgisession.stores.memcached" in documented, documented
    for module in pkgutil.walk_packages(wsgisession.__path__, "wsgisession."):
        if module.name.startswith(("wsgisession.demo", "wsgisession.__main__")):
            continue
        imported = importlib.import_module(module.name)
        logger = getattr(imported, "logger", None)  # logthrottle logs to others
        source = Path(str(imported.__file__)).read_text(encoding="utf-8")
        if logger and re.search(r"\blogger\.(debug|info|warning|error)\(", source):
            assert logger.name in documented, module.name


def test_the_revocation_rounds_the_page_states_are_the_codes() -> None:
    """The rule itself is pinned by test_user_sessions_churn; the page
    once said "after 20 rounds in which every followed session escaped",
    which the first round's catches and a round catching several belie."""
    text = page_text("user_sessions.rst")
    assert f"A revocation has {_REVOKE_ROUNDS} rounds" in text
    assert "one more for each followed session that a round after the first ends" in (
        text
    )
    assert "in which every followed session escaped" not in text


def test_the_pages_say_waiting_requests_look_again_once_a_second() -> None:
    """Since a wake-up lost to an interrupt cost a waiter its whole
    lock_timeout, both waits look again after at most a second; the pages
    said the waiters slept "without waking" until handed the turn."""
    assert _lockwaits.RECHECK == memory._LONGEST_WAIT == 1.0
    for name in ("security.rst", "deploying.rst"):
        text = page_text(name)
        assert "without waking" not in text, name
        assert "again once a second" in text, name


def test_the_default_store_notice_is_logged_as_the_quickstart_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import logging
    import tempfile

    from wsgisession import SessionMiddleware
    from wsgisession import middleware as middleware_module

    stated = re.search(
        r"logs that choice once, at (\w+) on the ``([\w.]+)`` logger",
        page_text("quickstart.rst"),
    )
    assert stated, "the quickstart does not say where the default store is logged"
    level, logger = stated.groups()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(middleware_module, "_default_store_logged", False)
    with caplog.at_level(logging.DEBUG, logger=logger):
        SessionMiddleware(lambda environ, start_response: []).close()
    notices = [r for r in caplog.records if "no store given" in r.getMessage()]
    assert [(r.levelname, r.name) for r in notices] == [(level, logger)]


def logging_row(logger: str) -> str:
    """The text of the row of deploying.rst's Logging table that names
    ``logger`` (``.sql`` after ``wsgisession.stores.file`` counts)."""
    text = (DOCS / "deploying.rst").read_text(encoding="utf-8")
    table = text[text.index("   * - logger") : text.index("No log line at any level")]
    short = "``." + logger.rpartition(".")[2] + "``"
    for row in table.split("\n   * - ")[1:]:
        first_cell = row.split("\n     - ")[0]
        if f"``{logger}``" in first_cell or short in first_cell:
            return " ".join(row.split())
    raise AssertionError(f"no row of the Logging table names {logger}")


def read_only_sql_store(tmp_path: Path, drop: str) -> Any:
    """An SQLStore on a read-only SQLite file whose sessions table lacks
    what ``drop`` removes (the app's user may not add it back)."""
    import sqlite3

    from wsgisession.stores import SQLStore

    path = tmp_path / "sessions.sqlite3"
    with SQLStore(f"sqlite:///{path}") as made:
        made.load(made.generate_key())  # the tables, as init-db makes them
    with sqlite3.connect(path) as conn:
        conn.executescript(drop)
    conn.close()
    return SQLStore(f"sqlite:///file:{path}?uri=true&mode=ro")


def test_the_missing_user_key_index_warning_is_in_both_logger_lists(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A sessions table without its ``user_key`` index that the app's user
    may not create is a WARNING an operator sees (once per process); the
    Logging table and troubleshooting.rst's Loggers named other lines only."""
    store = read_only_sql_store(tmp_path, "DROP INDEX wsgisession_sessions_user_key;")
    with caplog.at_level(logging.WARNING), store:
        assert store.load(store.generate_key()) is None
    warned = [r for r in caplog.records if "user_key" in r.getMessage()]
    assert [(r.levelname, r.name) for r in warned] == [
        ("WARNING", "wsgisession.stores.sql")
    ]
    assert "``user_key`` index" in logging_row("wsgisession.stores.sql")
    loggers = page_text("troubleshooting.rst").partition("Loggers -------")[2]
    assert "``user_key`` index" in loggers


def test_troubleshooting_names_the_sql_tables_the_app_may_not_alter(
    tmp_path: Path,
) -> None:
    """A table of an earlier version (no ``user_key``) the app's user may
    not alter fails every request: StoreUnavailable's "Why" must name it."""
    from wsgisession.errors import StoreUnavailable

    store = read_only_sql_store(
        tmp_path,
        "DROP INDEX wsgisession_sessions_user_key;"
        "ALTER TABLE wsgisession_sessions DROP COLUMN user_key;",
    )
    with store, pytest.raises(StoreUnavailable, match="no column user_key"):
        store.load(store.generate_key())
    text = page_text("troubleshooting.rst")
    why = text[text.index("StoreUnavailable ---") :]
    why = why[why.index("**Why.**") : why.index("**What to do.**")]
    assert "without the ``user_key`` column" in why
    assert "``wsgisession init-db``" in why


def test_security_states_how_far_a_cookie_header_is_read() -> None:
    """security.rst said cookies that merely contain the name "do not count";
    past 64 of them the header is read no further (cookie_header)."""
    from wsgisession import cookie_header

    most_hits = cookie_header.MOST_PAIRS_READ * cookie_header._MOST_HITS_PER_PAIR
    text = page_text("security.rst")
    assert f"only the first {cookie_header.MOST_PAIRS_READ} pairs" in text
    assert f"no further than {most_hits} of the cookies that contain it" in text
