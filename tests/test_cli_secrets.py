"""Secrets on the command line: from a file or the environment, never printed.

And ``%(name)s`` in ini files: ``--global NAME=VALUE`` and the environment,
so that ``secret_key = %(session_secret)s`` can be checked.
"""

from __future__ import annotations

import argparse
import os
import stat
import textwrap
from pathlib import Path

import pytest
from paste.deploy import loadfilter

from wsgisession import SessionMiddleware
from wsgisession.cli import main
from wsgisession.demo.command import demo_spec
from wsgisession.errors import ConfigError
from wsgisession.secretkey import (
    ENV_VAR,
    FALLBACKS_ENV_VAR,
    demo_secret_path,
    kept_demo_secret,
)

SECRET = "s3cret-" + "kf78759e918ed00c0ceb21653a5790664e6a58ca"
OLD_SECRET = "old-" + "o3115013178a3386610dd5adb51c3f1b558b95b6"


def run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    """Exit status, stdout and stderr; the secrets never appear in either."""
    status = main(argv)
    out, err = capsys.readouterr()
    for secret in (SECRET, OLD_SECRET):
        assert secret not in out and secret not in err
    return status, out, err


@pytest.fixture(autouse=True)
def no_secret_in_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in (ENV_VAR, FALLBACKS_ENV_VAR, "SESSION_SECRET", "session_secret"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


def secret_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "secret"
    path.write_text(text)
    path.chmod(0o600)
    return path


def test_secret_key_as_an_argument_is_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, out, err = run(
        capsys, ["check", "--store", "cookie", "--secret-key", SECRET]
    )
    assert status == 1 and "store reached" not in out
    assert "--secret-key is refused" in err and "ps" in err
    assert "--secret-key-file" in err and ENV_VAR in err


def test_secret_key_fallbacks_as_an_argument_is_refused_and_hidden(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = secret_file(tmp_path, SECRET)
    argv = ["check", "--store", "cookie", "--secret-key-file", str(path)]
    status, out, err = run(capsys, [*argv, "--secret-key-fallbacks", OLD_SECRET])
    assert status == 1 and "store reached" not in out
    assert "--secret-key-fallbacks is refused" in err and "ps" in err
    assert "further lines of --secret-key-file" in err and FALLBACKS_ENV_VAR in err
    with pytest.raises(SystemExit):
        main(["check", "--help"])
    help_text = capsys.readouterr().out
    assert "--secret-key-fallbacks" not in help_text
    assert "--secret-key " not in help_text and "--encrypt" in help_text


def test_encrypt_is_an_ordinary_option(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = secret_file(tmp_path, SECRET)
    argv = ["check", "--store", "cookie", "--secret-key-file", str(path)]
    status, out, err = run(capsys, [*argv, "--encrypt", "true"])
    assert status == 0, err
    assert "store reached: SignedCookieStore(<0 fallbacks>, encrypt=True)" in out


def test_secret_key_file_gives_the_key_and_fallbacks(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = secret_file(tmp_path, f"{SECRET}\n\n{OLD_SECRET}\n")
    argv = ["check", "--store", "cookie", "--secret-key-file", str(path)]
    status, out, err = run(capsys, argv)
    assert status == 0, err
    assert "store reached: SignedCookieStore(<1 fallbacks>" in out


def test_secret_key_from_the_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    status, _, err = run(capsys, ["check", "--store", "cookie"])
    assert status == 1 and "secret_key" in err
    monkeypatch.setenv(ENV_VAR, SECRET)
    status, out, err = run(capsys, ["check", "--store", "cookie"])
    assert status == 0, err
    assert "store reached: SignedCookieStore(<0 fallbacks>" in out
    # Only the cookie store takes it: another store is not disturbed by it.
    assert run(capsys, ["check", "--store", "memory"])[0] == 0


def test_secret_key_fallbacks_from_the_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(FALLBACKS_ENV_VAR, f" {OLD_SECRET}  {OLD_SECRET}2 ")
    status, _, err = run(capsys, ["check", "--store", "cookie"])
    assert status == 1 and f"${FALLBACKS_ENV_VAR} is set but ${ENV_VAR} is not" in err
    monkeypatch.setenv(ENV_VAR, SECRET)
    status, out, err = run(capsys, ["check", "--store", "cookie"])
    assert status == 0, err
    assert "store reached: SignedCookieStore(<2 fallbacks>" in out


@pytest.mark.parametrize(
    ("text", "message"),
    [(None, "cannot read the secret key file"), ("\n \n", "is empty")],
    ids=["missing", "empty"],
)
def test_an_unusable_secret_key_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str | None, message: str
) -> None:
    path = tmp_path / "secret" if text is None else secret_file(tmp_path, text)
    argv = ["check", "--store", "cookie", "--secret-key-file", str(path)]
    status, _, err = run(capsys, argv)
    assert status == 1
    assert err.startswith("wsgisession check: error: ") and message in err
    assert err.count("\n") == 1


def test_a_secret_key_of_bytes_that_are_not_utf8_is_one_error_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Raw bytes in $WSGISESSION_SECRET_KEY (``$(head -c 32 /dev/urandom)``)
    are refused as the secret key file's are, not with a UnicodeEncodeError
    traceback that shows bytes of the key."""
    monkeypatch.setenv(ENV_VAR, os.fsdecode(b"\xff\xfe" + SECRET.encode()))
    status, _, err = run(capsys, ["check", "--store", "cookie"])
    assert status == 1
    assert err.startswith("wsgisession check: error: ") and "UTF-8" in err
    assert err.count("\n") == 1 and "\\x" not in err and SECRET not in err


# -- %(name)s in ini files ---------------------------------------------------------

RECIPE = """
    [filter:session]
    use = egg:wsgisession#session
    store = cookie
    secret_key = %(session_secret)s
    """


def write_ini(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "production.ini"
    path.write_text(textwrap.dedent(text))
    return path


def test_the_security_recipe_needs_its_global(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = write_ini(tmp_path, RECIPE)
    status, _, err = run(capsys, ["check", "--config", f"{path}#session"])
    assert status == 1 and err.count("\n") == 1
    assert "secret_key uses %(session_secret)s, which is not defined" in err
    assert "--global session_secret=VALUE" in err and "SESSION_SECRET" in err


def test_global_fills_the_recipe(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = write_ini(tmp_path, RECIPE)
    argv = [
        "check",
        "--config",
        f"{path}#session",
        "--global",
        f"session_secret={SECRET}",
    ]
    status, out, err = run(capsys, argv)
    assert status == 0, err
    assert "store reached: SignedCookieStore" in out


@pytest.mark.parametrize("name", ["SESSION_SECRET", "session_secret"])
def test_the_environment_fills_the_recipe(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    name: str,
) -> None:
    path = write_ini(tmp_path, RECIPE)
    monkeypatch.setenv(name, SECRET + "%")  # taken literally: % is no reference
    status, out, err = run(capsys, ["check", "--config", f"{path}#session"])
    assert status == 0, err
    assert "store reached: SignedCookieStore" in out


def test_default_section_wins_over_global_as_in_paste_deploy(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = write_ini(
        tmp_path,
        """
        [DEFAULT]
        age = 60

        [filter:session]
        use = egg:wsgisession#session
        store = memory
        cookie_age = %(age)s
        cookie_path = /%(mount)s
        """,
    )
    argv = ["check", "--config", f"{path}#session", "--global", "age=120"]
    argv += ["--global", "mount=shop"]
    status, out, err = run(capsys, argv)
    assert status == 0, err
    assert "cookie_age=60" in out and "cookie_path='/shop'" in out
    wrap = loadfilter(
        f"config:{path}", name="session", global_conf={"age": "120", "mount": "shop"}
    )
    middleware = wrap(lambda environ, start_response: [])
    assert isinstance(middleware, SessionMiddleware)
    assert middleware.settings.cookie_age == 60
    assert middleware.settings.cookie_path == "/shop"


def test_global_without_config_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, ["check", "--store", "memory", "--global", "a=b"])
    assert status == 1 and "give --config too" in err


# -- the demo's key ----------------------------------------------------------------


def demo_args(**given: str) -> argparse.Namespace:
    return argparse.Namespace(store="cookie", secret_key_file=given.get("file"))


def test_the_demo_keeps_a_generated_key_in_the_state_directory(tmp_path: Path) -> None:
    path = demo_secret_path()
    assert path == tmp_path / "state" / "wsgisession" / "demo-secret"
    first = kept_demo_secret()
    assert len(first.key.encode()) >= 32
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert kept_demo_secret().key == first.key  # a restart logs nobody out
    spec, note = demo_spec(demo_args())
    assert spec.secret_key == first.key and str(path) in note
    assert first.key not in repr(first)


def test_the_demo_key_from_the_environment_or_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_VAR, SECRET)
    spec, note = demo_spec(demo_args())
    assert spec.secret_key == SECRET and ENV_VAR in note
    assert not demo_secret_path().exists()
    path = secret_file(tmp_path, OLD_SECRET + "\n")
    spec, note = demo_spec(demo_args(file=str(path)))
    assert spec.secret_key == OLD_SECRET and str(path) in note


def test_a_kept_key_others_can_read_is_refused(tmp_path: Path) -> None:
    kept_demo_secret()
    demo_secret_path().chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600") as caught:
        kept_demo_secret()
    assert demo_secret_path().read_text().strip() not in str(caught.value)


def test_secret_key_file_and_config_together_are_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = write_ini(tmp_path, RECIPE)
    key_file = secret_file(tmp_path, SECRET)
    argv = ["check", "--config", str(path), "--secret-key-file", str(key_file)]
    status, _, err = run(capsys, argv)
    assert status == 1
    assert "give either --config or --secret-key-file, not both" in err
