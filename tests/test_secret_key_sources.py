"""Where the cookie store's keys come from, read as the operator meant them.

* A list of fallbacks separated by commas (``old1, old2``), in an ini file,
  ``$WSGISESSION_SECRET_KEY_FALLBACKS`` or a line of ``--secret-key-file``,
  was read as keys ending in a comma (or one key holding both): it verified
  no cookie, so the rotation secrets.rst describes logged everyone out,
  while ``check`` counted the fallbacks and said all was well.
* ``--secret-key-file /dev/urandom`` (or ``/dev/zero``) was read whole: it
  never ends, so the command filled the memory and died with a MemoryError
  traceback.
* secrets.rst's Paste Deploy recipe passed a key holding ``%`` to
  ``loadapp`` as it is: ``check`` accepted it, the app failed at startup
  with an InterpolationSyntaxError quoting the key.
"""

from __future__ import annotations

import os
import resource
import secrets
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import webtest
from test_docs import DOCS, _run_python, code_blocks

from wsgisession import SessionMiddleware, make_middleware
from wsgisession.cli import main
from wsgisession.errors import ConfigError
from wsgisession.secretkey import ENV_VAR, FALLBACKS_ENV_VAR
from wsgisession.stores import SignedCookieStore

OLD, OLDER, NEW = (secrets.token_urlsafe(32) for _ in range(3))


@pytest.fixture(autouse=True)
def no_secret_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (ENV_VAR, FALLBACKS_ENV_VAR, "SESSION_SECRET", "session_secret"):
        monkeypatch.delenv(name, raising=False)


def counter(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    session = environ["wsgisession"]
    session["n"] = session.get("n", 0) + 1
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(session["n"]).encode()]


def make_app(global_conf: dict[str, str], **local: str) -> Any:
    return counter


def cookie_of(key: str) -> str:
    """A session cookie value signed with ``key``."""
    session = SessionMiddleware(counter, store=SignedCookieStore(key)).open_session()
    session["user"] = "ann"
    session.save()
    return session.session_key


def check(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    status = main(["check", "--store", "cookie", *argv])
    out, err = capsys.readouterr()
    for key in (OLD, OLDER, NEW):
        assert key not in out and key not in err
    return status, err


# -- fallbacks separated by commas ---------------------------------------------------


@pytest.mark.parametrize(
    "fallbacks",
    [f"{OLD}, {OLDER}", f"{OLD},{OLDER}", f"{OLD} ,{OLDER}"],
    ids=["comma-space", "comma", "space-comma"],
)
def test_fallbacks_separated_by_commas_are_refused_in_an_ini_section(
    fallbacks: str,
) -> None:
    settings = {"store": "cookie", "secret_key": NEW}
    with pytest.raises(ConfigError, match="not commas") as caught:
        make_middleware(
            counter, {**settings, "secret_key_fallbacks": fallbacks}, prefix=""
        )
    assert OLD not in str(caught.value) and OLDER not in str(caught.value)


def test_fallbacks_separated_by_commas_are_refused_in_the_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_VAR, NEW)
    monkeypatch.setenv(FALLBACKS_ENV_VAR, f"{OLD}, {OLDER}")
    status, err = check(capsys)
    assert status == 1 and "not commas" in err and err.count("\n") == 1


def test_fallbacks_separated_by_commas_are_refused_in_a_key_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "secret"
    path.write_text(f"{NEW}\n{OLD},{OLDER}\n")
    path.chmod(0o600)
    status, err = check(capsys, "--secret-key-file", str(path))
    assert status == 1 and "not commas" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    "separator", [" ", "\n", "\t"], ids=["space", "newline", "tab"]
)
def test_fallbacks_separated_by_whitespace_verify_old_cookies(separator: str) -> None:
    settings = {"store": "cookie", "secret_key": NEW}
    fallbacks = f"{OLD}{separator}{OLDER}"
    app = make_middleware(
        counter, {**settings, "secret_key_fallbacks": fallbacks}, prefix=""
    )
    for key in (OLD, OLDER):
        assert app.open_session(cookie_of(key))["user"] == "ann"


def test_a_fallback_that_holds_a_comma_is_still_one_key() -> None:
    """A key of pwgen -y may hold a comma: it is no list of keys."""
    key = "Zq8,Lm2" + "x" * 40
    settings = {"store": "cookie", "secret_key": NEW, "secret_key_fallbacks": key}
    app = make_middleware(counter, settings, prefix="")
    assert app.open_session(cookie_of(key))["user"] == "ann"


#: Keys of ``pwgen -sy 48`` holding a comma where a list would not: at the
#: end, at the start, or two together between short pieces.
COMMA_KEYS = {
    "ends-with-comma": ("Zq8!Lm2x" + "x" * 40 + ",", "{old} {key}"),
    "starts-with-comma": (",Zq8!Lm2x" + "x" * 40, "{key} {old}"),
    "two-commas": ("Zq8,,Lm2x" + "x" * 40, "{old} {key} {older}"),
}


@pytest.mark.parametrize("name", COMMA_KEYS)
def test_a_secret_key_holding_a_comma_can_be_rotated_to_a_fallback(name: str) -> None:
    """The key was accepted as secret_key; rotated, as secrets.rst says, to
    a fallback listed with whitespace, it was refused as a comma-separated
    list: the old key had to go, and every user was logged out."""
    key, listed = COMMA_KEYS[name]
    cookie = cookie_of(key)  # signed while it was the secret_key
    fallbacks = listed.format(key=key, old=OLD, older=OLDER)
    settings = {"store": "cookie", "secret_key": NEW, "secret_key_fallbacks": fallbacks}
    app = make_middleware(counter, settings, prefix="")
    assert app.open_session(cookie)["user"] == "ann"


def test_a_key_file_fallback_line_ending_with_a_comma_is_one_key(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    key = COMMA_KEYS["ends-with-comma"][0]
    path = tmp_path / "secret"
    path.write_text(f"{NEW}\n{OLD}\n{key}\n")
    path.chmod(0o600)
    status, err = check(capsys, "--secret-key-file", str(path))
    assert status == 0, err


# -- a key file that never ends ------------------------------------------------------


def test_a_secret_key_file_too_large_for_a_key_is_one_error_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "secret"
    path.write_text(NEW * 2000)
    status, err = check(capsys, "--secret-key-file", str(path))
    assert status == 1 and err.count("\n") == 1
    assert "no key file" in err and "token_urlsafe" in err


def _limited_memory() -> None:  # in the child: a MemoryError, not the machine's
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


def _command(*argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wsgisession", "check", "--store", "cookie", *argv],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        preexec_fn=_limited_memory,
        env={k: v for k, v in os.environ.items() if k not in (ENV_VAR,)},
    )


@pytest.mark.slow  # Python subprocesses
@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_a_device_that_never_ends_as_the_key_file_is_one_error_line(
    device: str,
) -> None:
    done = _command("--secret-key-file", device)
    assert done.returncode == 1, done.stderr[-300:]
    assert done.stderr.startswith("wsgisession check: error: ")
    assert "no key file" in done.stderr and done.stderr.count("\n") == 1


@pytest.mark.slow  # a Python subprocess
def test_the_key_file_may_still_be_standard_input() -> None:
    done = _command("--secret-key-file", "/dev/stdin", stdin=f"{NEW}\n{OLD}\n")
    assert done.returncode == 0, done.stderr
    assert "SignedCookieStore(<1 fallbacks>" in done.stdout


# -- the Paste Deploy recipe of secrets.rst ----------------------------------------


def recipe() -> Callable[[str], Any]:
    """``application_from`` as secrets.rst defines it."""
    page = DOCS / "secrets.rst"
    block = next(b for b in code_blocks(page) if "def application_from" in b.text)
    namespace: dict[str, Any] = {}
    _run_python(block, "secrets", namespace)
    return namespace["application_from"]  # type: ignore[no-any-return]


def test_the_recipe_loads_a_key_holding_a_percent_sign_as_check_reads_it(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    key = "Django-style%^&*(key)%(x)s%%" + NEW
    ini = tmp_path / "production.ini"
    ini.write_text(
        textwrap.dedent(
            f"""
            [filter:session]
            use = egg:wsgisession#session
            store = cookie
            secret_key = %(session_secret)s

            [app:counter]
            use = call:{__name__}:make_app

            [pipeline:main]
            pipeline = session counter
            """
        )
    )
    monkeypatch.setenv("SESSION_SECRET", key)
    assert main(["check", "--config", f"{ini}#session"]) == 0, capsys.readouterr()
    browser = webtest.TestApp(recipe()(str(ini)))
    browser.get("/")
    value = browser.cookies["sessionid"]
    literal = SessionMiddleware(counter, store=SignedCookieStore(key))
    assert literal.open_session(value)["n"] == 1
