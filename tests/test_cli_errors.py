"""The ``wsgisession`` command answers each user mistake with one line and the fix.

Also: ``--help`` of every command, secrets read from a file or the
environment (never from an argument, never printed), and ``--global`` and
the environment for ``%(name)s`` in ini files.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from listening_ports import dead_port
from servers import ServerProcess

from wsgisession.cli import main
from wsgisession.secretkey import ENV_VAR

SECRET = (
    "s3cret-" + "kf78759e918ed00c0ceb21653a5790664e6a58ca"
)  # long enough for any key-length rule
OLD_SECRET = "old-" + "o3115013178a3386610dd5adb51c3f1b558b95b6"


def run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    """Exit status, stdout and stderr of ``wsgisession argv`` run in-process."""
    try:
        status = main(argv)
    except SystemExit as exc:  # argparse's exits
        status = int(exc.code or 0)
    out, err = capsys.readouterr()
    return status, out, err


def one_error_line(err: str, command: str, *fragments: str) -> None:
    """``err`` is one ``wsgisession COMMAND: error: ...`` line holding ``fragments``."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"wsgisession {command}: error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0]


def ini(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "app.ini"
    path.write_text(textwrap.dedent(text))
    return path


# -- help ----------------------------------------------------------------------


@pytest.mark.parametrize("command", ["demo", "check", "clear-expired"])
def test_help_has_a_description_store_kinds_extras_and_examples(
    capsys: pytest.CaptureFixture[str], command: str
) -> None:
    status, out, _ = run(capsys, [command, "--help"])
    assert status == 0
    _, _, rest = out.partition("\n\n")
    assert rest.split("\n\n")[0].strip(), "no description under the usage line"
    for kind in ("memory", "file", "sqlite", "memcached", "redis", "cookie"):
        assert f"\n  {kind} " in out
    assert "pip install 'wsgisession[redis]'" in out
    assert "pip install 'wsgisession[memcached]'" in out
    assert "examples" in out and f"wsgisession {command} " in out
    assert "--secret-key-file" in out and ENV_VAR in out
    assert "--secret-key " not in out  # the refused argument is not offered


def test_top_level_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, ["--help"])
    assert status == 0
    for name in ("demo", "check", "clear-expired", "pip install"):
        assert name in out


# -- usage mistakes --------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["demo", "--port", "eighty"], "not a port number: 'eighty'"),
        (["demo", "--port", "-1"], "-1 is not a port (0 to 65535)"),
        (["demo", "--store", "mongo"], "invalid choice: 'mongo'"),
        (["check", "--global", "novalue"], "expected NAME=VALUE"),
        (["check", "--no-such-flag"], "unrecognized arguments"),
    ],
)
def test_a_bad_option_is_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], fragment: str
) -> None:
    status, _, err = run(capsys, argv)
    assert status == 2
    one_error_line(err, argv[0], fragment, f"see wsgisession {argv[0]} --help")


def test_a_busy_port_says_to_pick_another(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        status, out, err = run(
            capsys, ["demo", "--store", "memory", "--port", str(port)]
        )
    assert status == 1 and out == ""
    one_error_line(err, "demo", f"port {port}", "already in use", "--port")


def test_an_address_not_of_this_machine(capsys: pytest.CaptureFixture[str]) -> None:
    # 192.0.2.1 is TEST-NET-1: binding to it fails at once, with no traffic.
    argv = ["demo", "--store", "memory", "--host", "192.0.2.1", "--port", "0"]
    status, _, err = run(capsys, argv)
    assert status == 1
    one_error_line(err, "demo", "cannot listen on 192.0.2.1:0", "--host")


@pytest.mark.parametrize("host", ["", "  "])
def test_an_empty_host_is_refused_not_every_address(
    capsys: pytest.CaptureFixture[str], host: str
) -> None:
    """``--host "$HOST"`` with the variable unset: wsgiref would listen on
    every address of the machine, and print the URL http://:PORT/."""
    argv = ["demo", "--store", "memory", "--host", host, "--port", "0"]
    status, out, err = run(capsys, argv)
    assert (status, out) == (1, "")
    one_error_line(err, "demo", "--host is empty", "127.0.0.1", "0.0.0.0")


@pytest.mark.parametrize(
    ("kind", "package", "module", "argv"),
    [
        (
            "redis",
            "redis",
            "wsgisession.stores.redis",
            ["--redis-url", "redis://127.0.0.1:1/0"],
        ),
        (
            "memcached",
            "pymemcache",
            "wsgisession.stores.memcached",
            ["--memcached-servers", "127.0.0.1:1"],
        ),
    ],
)
@pytest.mark.slow  # a Python subprocess per command
def test_a_missing_extra_names_the_pip_command(
    kind: str, package: str, module: str, argv: list[str]
) -> None:
    """The client library unimportable from the start, as when the extra is
    not installed: the store's module still imports (the ini schema knows the
    store), and the command says which pip command installs it."""

    for command, after in (("demo", []), ("check", []), ("sessions", ["42"])):
        script = (
            "import sys\n"
            f"sys.modules[{package!r}] = None\n"
            "from wsgisession.cli import main\n"
            f"import {module}\n"
            f"sys.exit(main({[command, '--store', kind, *argv, *after]!r}))\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 1, done.stderr
        one_error_line(done.stderr, command, f"pip install 'wsgisession[{kind}]'")


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        (
            [
                "--store",
                "redis",
                "--redis-url",
                "redis://127.0.0.1:{port}/0",
            ],
            ["cannot reach the store", "start redis-server", "--redis-url"],
        ),
        (
            ["--store", "memcached", "--memcached-servers", "127.0.0.1:{port}"],
            ["cannot reach the store", "start memcached", "--memcached-servers"],
        ),
    ],
)
def test_demo_checks_its_store_at_startup(
    capsys: pytest.CaptureFixture[str], argv: list[str], fragments: list[str]
) -> None:
    with dead_port() as port:  # connections refused
        argv = [arg.format(port=port) for arg in argv]
        status, out, err = run(capsys, ["demo", "--port", "0", *argv])
        assert status == 1 and out == ""  # it never started serving
        one_error_line(err, "demo", *fragments)
        assert "hunter2pw" not in err


def test_check_and_clear_expired_report_an_unreachable_store(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with dead_port() as port:  # connections refused
        url = f"redis://127.0.0.1:{port}/0"
        for command in ("check", "clear-expired"):
            argv = [command, "--store", "redis", "--redis-url", url]
            status, _, err = run(capsys, argv)
            assert status == 1
            one_error_line(
                err, command, "cannot reach the store", "start the store's server"
            )


def test_check_of_a_local_store_hints_at_its_path_not_a_server(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A SQLite or file store has no server to start: the hint is the path."""
    not_a_directory = tmp_path / "a-file"
    not_a_directory.write_text("")
    where = {
        "sqlite": ["--sqlite-path", str(not_a_directory / "sessions.sqlite3")],
        "sql": ["--sql-url", f"sqlite:///{not_a_directory}/sessions.sqlite3"],
    }
    for store, arguments in where.items():
        status, _, err = run(capsys, ["check", "--store", store, *arguments])
        assert status == 1
        one_error_line(err, "check", "check the path and its permissions")
        assert "start the store's server" not in err


@pytest.mark.slow  # a subprocess
def test_demo_reaches_a_running_redis_then_serves(
    capsys: pytest.CaptureFixture[str], clean_redis: ServerProcess
) -> None:
    from demo_process import DemoProcess

    demo = DemoProcess("--store", "redis", "--redis-url", clean_redis.url)
    try:
        assert demo.url
        assert f"Redis at 127.0.0.1:{clean_redis.port}, database 0" in "".join(
            demo.lines
        )
    finally:
        demo.stop()


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("[filter:session]\nstore = mongo\n", ["store", "mongo"]),
        ("[filter:session]\nstore = memory\nbogus\n", ["cannot parse line 3"]),
        ("[filter:session]\nstore = memory\nstore = file\n", ["sets store twice"]),
        ("[filter:session]\nsecret_key = ab%cd\n", ["bad %-substitution", "%%"]),
    ],
    ids=["bad-value", "bad-line", "duplicate", "lone-percent"],
)
def test_a_bad_config_file_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str, fragments: list[str]
) -> None:
    path = ini(tmp_path, text)
    for command in ("check", "clear-expired"):
        status, _, err = run(capsys, [command, "--config", f"{path}#session"])
        assert status == 1
        one_error_line(err, command, *fragments)
        assert "ab%cd" not in err  # a value may be a secret: never echoed


# -- check reads an ini file as Paste Deploy does --------------------------------


def checked(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """``wsgisession check ARGV`` that succeeds; its output."""
    status, out, err = run(capsys, ["check", *argv])
    assert status == 0, err
    return out


def test_check_reads_set_and_get_lines_and_the_global_conf_as_loadapp(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = ini(
        tmp_path,
        """\
        [DEFAULT]
        short_age = 88
        lock_timeout = 3

        [filter:session]
        use = egg:wsgisession#session
        store = memory
        set cookie_age = 77
        get lock_ttl = short_age
        """,
    )
    out = checked(capsys, "--config", f"{path}#session")
    assert "cookie_age=77," in out and "lock_ttl=88.0" in out
    assert "lock_timeout=3.0" in out
    # The global_conf an app passes in wins over [DEFAULT] (as loadapp's does).
    out = checked(capsys, "--config", f"{path}#session", "--global", "lock_timeout=4")
    assert "lock_timeout=4.0" in out
    path.write_text(path.read_text().replace("= short_age", "= no_such_global"))
    status, _, err = run(capsys, ["check", "--config", f"{path}#session"])
    assert status == 1
    one_error_line(err, "check", "get lock_ttl = no_such_global", "no global")


def test_globals_are_interpolated_as_paste_deploys_are(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = ini(
        tmp_path,
        """\
        [DEFAULT]
        sessions_dir = %(here)s/sessions

        [filter:session]
        use = egg:wsgisession#session
        store = file
        get file_path = sessions_dir
        """,
    )
    out = checked(capsys, "--config", f"{path}#session")
    assert f"FileStore({str(tmp_path / 'sessions')!r})" in out


def test_check_finds_sections_as_paste_deploy_names_them(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = ini(
        tmp_path,
        """\
        [session]
        store = not-a-store

        [filter-app:wrapped]
        use = egg:wsgisession#session
        next = hello
        store = memory
        cookie_age = 61

        [filter:session]
        use = egg:wsgisession#session
        store = memory
        cookie_age = 62
        """,
    )
    assert "cookie_age=62," in checked(capsys, "--config", f"{path}#session")
    assert "cookie_age=61," in checked(capsys, "--config", f"{path}#wrapped")
    assert "cookie_age=61," in checked(capsys, "--config", f"{path}#filter-app:wrapped")


def test_check_reads_pyramids_names_in_an_app_section(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = ini(
        tmp_path,
        """\
        [app:main]
        use = egg:myapp
        wsgisession.store = memory
        wsgisession.set_on_exception = true
        """,
    )
    assert "save_on_error=True" in checked(capsys, "--config", f"{path}#main")


def test_check_refuses_what_the_middleware_would(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = ini(
        tmp_path,
        f"""\
        [filter:session]
        use = egg:wsgisession#session
        store = cookie
        secret_key = {SECRET}
        lock = true
        """,
    )
    status, out, err = run(capsys, ["check", "--config", f"{path}#session"])
    assert (status, out) == (1, "")
    one_error_line(err, "check", "cannot lock sessions")


def test_odd_input_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    latin = tmp_path / "latin.ini"
    latin.write_bytes(b"[filter:session]\n# caf\xe9\nstore = memory\n")
    status, _, err = run(capsys, ["check", "--config", f"{latin}#session"])
    assert status == 1
    one_error_line(err, "check", "not UTF-8")
    port = ini(tmp_path, "[filter:session]\nstore = sql\nsql_url = sqlite://h:bad/x\n")
    status, _, err = run(capsys, ["check", "--config", f"{port}#session"])
    assert status == 1
    one_error_line(err, "check", "not a database URL")
    status, _, err = run(capsys, ["demo", "--port", "99999"])
    assert status == 2
    one_error_line(err, "demo", "99999 is not a port")


def test_a_redis_url_with_a_password_is_refused_as_an_argument(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["check", "--store", "redis", "--redis-url", "redis://:pw@127.0.0.1:1/0"]
    status, out, err = run(capsys, argv)
    assert (status, out) == (1, "")
    one_error_line(err, "check", "--redis-url with a password is refused")
    assert ":pw@" not in err


def test_the_store_kind_is_read_whatever_its_case(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_VAR, SECRET)
    out = checked(capsys, "--store", "Cookie")
    assert "SignedCookieStore" in out


def test_demo_refuses_a_redis_url_with_a_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """docs/cli.rst: no command takes a --redis-url with a password (ps shows it)."""
    status = main(
        [
            "demo",
            "--store",
            "redis",
            "--port",
            "0",
            "--redis-url",
            "redis://:hunter2@127.0.0.1:1/0",
        ]
    )
    _, err = capsys.readouterr()
    assert status == 1
    assert "with a password is refused" in err, err


@pytest.mark.parametrize(
    "option, url",
    [
        ("--sql-url", "postgresql://app@127.0.0.1:1/app"),
        ("--redis-url", "redis://app@127.0.0.1:1/0"),
    ],
)
def test_a_url_with_a_user_name_and_no_password_is_taken_as_an_argument(
    option: str, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Peer or certificate authentication names a user and no password:
    nothing secret shows in ps, so the option is taken (it was refused as
    "with a password"), and the command goes on to try the store."""
    store = "sql" if option == "--sql-url" else "redis"
    status, _, err = run(capsys, ["check", "--store", store, option, url])
    assert status == 1 and "password is refused" not in err, err
    one_error_line(err, "check", "127.0.0.1:1")
