"""What the command's ``--help`` and the pages promise, run as a reader would.

:mod:`test_docs` runs the pages' examples and checks that every flag and
error they name exists; :mod:`test_docs_facts` checks sentences about
configuration. This module checks the rest of what a reader acts on
without running an example:

* each command's ``--help``: a URL it shows as an example is one the
  command takes, every ``--flag`` it mentions is the command's own, the
  overview names every command, and the demo lists only the stores it
  serves;
* troubleshooting.rst: the message quoted for a missing ini section is
  the one the command prints;
* stores.rst, troubleshooting.rst and security.rst: the defaults and limits
  stated in prose (timeouts, pool sizes, batch sizes) are the code's.
"""

from __future__ import annotations

import argparse
import inspect
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from helpers import run_cli

from wsgisession import cleanup, offered_keys
from wsgisession.cli import build_parser
from wsgisession.demo.command import DEMO_STORES
from wsgisession.stores import (
    FileStore,
    MemcachedStore,
    RedisStore,
    SignedCookieStore,
    SQLiteStore,
    SQLStore,
    _memcached_servers,
    _redis_pool,
    _sqliteconn,
    _sqlrun,
    cookie,
    memcached,
)

DOCS = Path(__file__).resolve().parent.parent / "docs"
_URL = re.compile(r"\b[a-z][a-z0-9+]*://[^\s)]+")
_FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def subcommands() -> dict[str, argparse.ArgumentParser]:
    """Every subcommand of ``wsgisession`` by name, as the parser builds it."""
    parser = build_parser()
    (action,) = [
        a for a in parser._actions if isinstance(a, argparse._SubParsersAction)
    ]
    return dict(action.choices)


def test_no_url_a_command_shows_holds_a_password() -> None:
    """The commands refuse a URL with a password (``ps`` shows arguments):
    an example of one in ``--help`` would be refused if copied."""
    count = 0
    for name, parser in subcommands().items():
        for url in _URL.findall(parser.format_help()):
            count += 1
            assert urlsplit(url).password is None, f"{name} --help: {url}"
    print(f"URLs in the commands' help: {count}")
    assert count >= 3


def test_the_sql_url_the_help_shows_is_taken(
    capsys: pytest.CaptureFixture[str],
) -> None:
    help_text = " ".join(subcommands()["init-db"].format_help().split())
    (example,) = re.findall(r"e\.g\. (postgresql\S*://\S+)", help_text)
    status, out, err = run_cli(
        capsys, "init-db", "--store", "sql", "--sql-url", example, "--sql"
    )
    assert (status, err) == (0, ""), err
    assert "CREATE TABLE wsgisession_sessions" in out


def test_every_flag_a_command_help_mentions_is_its_own() -> None:
    """Text shared between commands must not name another command's flag
    (the demo has no ``--config``)."""
    for name, parser in subcommands().items():
        own = {option for action in parser._actions for option in action.option_strings}
        mentioned = set(_FLAG.findall(parser.format_help()))
        assert mentioned <= own, f"{name} --help mentions {mentioned - own}"


def test_the_overview_names_every_command() -> None:
    description = " ".join((build_parser().description or "").split())
    missing = [name for name in subcommands() if f"({name})" not in description]
    assert not missing, f"wsgisession --help's description lacks {missing}"


def test_the_demo_help_lists_only_the_stores_it_serves() -> None:
    help_text = subcommands()["demo"].format_help()
    listed = re.findall(
        r"^  (\w+) {2,}", help_text.split("store kinds")[1], re.MULTILINE
    )
    assert listed == list(DEMO_STORES), listed


def test_the_missing_section_message_is_the_one_quoted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = " ".join((DOCS / "troubleshooting.rst").read_text().split())
    quoted = re.search(
        r"\(``(wsgisession check: error: (\S+) has no section [^`]+)``\)", text
    )
    assert quoted is not None, "troubleshooting.rst quotes no missing-section error"
    ini = tmp_path / "app.ini"
    ini.write_text("[filter:other]\nuse = egg:wsgisession#session\n")
    status, _, err = run_cli(capsys, "check", "--config", f"{ini}#session")
    assert status == 1
    assert err.strip() == quoted[1].replace(quoted[2], str(ini))


def _default(cls: type, name: str) -> object:
    return inspect.signature(cls).parameters[name].default


#: ``(page, pattern whose group is the figure, the code's value)``.
STATED_DEFAULTS = [
    (
        "stores.rst",
        r"``connect_timeout`` \((\d+) s\)",
        _default(MemcachedStore, "connect_timeout"),
    ),
    (
        "stores.rst",
        r"and ``timeout`` \((\d+) s\) bound",
        _default(MemcachedStore, "timeout"),
    ),
    (
        "stores.rst",
        r"waits the store's ``timeout`` \((\d+) s\)",
        _default(MemcachedStore, "timeout"),
    ),
    (
        "stores.rst",
        r"``socket_timeout`` \((\d+) s\)",
        _default(RedisStore, "socket_timeout"),
    ),
    (
        "stores.rst",
        r"``busy_timeout`` seconds \(default (\d+)\)",
        _default(SQLiteStore, "busy_timeout"),
    ),
    (
        "troubleshooting.rst",
        r"``busy_timeout`` \((\d+) s\)",
        _default(SQLiteStore, "busy_timeout"),
    ),
    (
        "stores.rst",
        r"``timeout`` \((\d+) s\) bounds connecting",
        _default(SQLStore, "timeout"),
    ),
    (
        "stores.rst",
        r"``table`` names the sessions table \(default ``(\w+)``\)",
        _default(SQLStore, "table"),
    ),
    (
        "stores.rst",
        r"Payloads of (\d+) bytes or more",
        _default(SignedCookieStore, "compress_threshold"),
    ),
    ("stores.rst", r"A payload over (\d+) KiB", cookie.MAX_PAYLOAD_SIZE // 1024),
    ("stores.rst", r"lock_timeout`\s*\((\d+) s\)", FileStore.lock_timeout),
    (
        "stores.rst",
        r"A process opens at most (\d+) to each server",
        _memcached_servers.MAX_CONNECTIONS,
    ),
    ("stores.rst", r"to come back, up to (\d+) seconds", _memcached_servers.POOL_WAIT),
    (
        "stores.rst",
        r"writers of that record that conflicted are done \(waiting (\d+) seconds",
        memcached.TURN_WAIT,
    ),
    ("stores.rst", r"at most (\d+) stay open idle", _sqliteconn.KEEP_IDLE),
    ("stores.rst", r"keeps at most (\d+) connections", _redis_pool.POOL_SIZE),
    ("stores.rst", r"waits up to (\d+) seconds for one", _redis_pool.POOL_WAIT),
    ("stores.rst", r"keeps up to (\d+) idle connections", _sqlrun.KEEP_IDLE),
    ("stores.rst", r"at most (\d+) open", _sqlrun.MAX_OPEN),
    ("stores.rst", r"one of the store's (\d+) connections", _sqlrun.MAX_OPEN),
    ("stores.rst", r"or (\d+) saves, if sooner", cleanup.CATCH_UP_SAVES),
    ("deploying.rst", r"a bounded batch \((\d+)\) at a time", cleanup.SWEEP_BATCH),
    ("security.rst", r"a bounded batch \((\d+)\) of expired", cleanup.SWEEP_BATCH),
    ("security.rst", r"At most (\d+) are tried", offered_keys.MAX_KEY_CANDIDATES),
]


@pytest.mark.parametrize(
    ("page", "pattern", "value"),
    STATED_DEFAULTS,
    ids=[f"{page}:{pattern[:30]}" for page, pattern, _ in STATED_DEFAULTS],
)
def test_a_default_the_pages_state_is_the_codes(
    page: str, pattern: str, value: object
) -> None:
    text = " ".join((DOCS / page).read_text(encoding="utf-8").split())
    found = re.findall(pattern, text)
    assert found, f"{page} no longer says {pattern!r}: update this test"
    for figure in found:
        stated = figure if isinstance(value, str) else float(figure)
        assert stated == value, f"{page}: {pattern} says {figure}, the code {value}"
