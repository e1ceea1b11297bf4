"""Ini files as users write them for Paste Deploy: what ``loadapp()`` hands
the session filter and what ``wsgisession check`` reads must be the same.

Each case is loaded with the real Paste Deploy and checked with the CLI on
the same file: a value the app and the command see differently, a file one
of them cannot read, or a value silently swallowed into another.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
from helpers import run_cli

from wsgisession import make_middleware
from wsgisession.errors import ConfigError

SECRET = "Zq8vN3xK7pL2mR9tW4yB6cH1jF5gD0sA"


def make_app(global_conf: dict[str, str], **local: str) -> Any:
    """A Paste app factory: an app that answers ok."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    return app


def write(directory: Path, name: str, text: str) -> Path:
    """``text`` (dedented) as the file ``name`` of ``directory``."""
    path = directory / name
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def pipeline(directory: Path, sections: str) -> Path:
    """An ini file of ``sections`` and a pipeline of the filter session and an app."""
    return write(
        directory,
        "app.ini",
        textwrap.dedent(sections).lstrip()
        + f"\n[app:hello]\nuse = call:{__name__}:make_app\n\n"
        "[pipeline:main]\npipeline = session hello\n",
    )


def loaded_settings(ini: Path) -> Any:
    """The settings of the session middleware that ``loadapp()`` builds."""
    from paste.deploy import loadapp

    return loadapp(f"config:{ini}").settings


def checked(capsys: pytest.CaptureFixture[str], location: str) -> tuple[int, str]:
    """The status of ``wsgisession check --config location``, and what it printed."""
    status, out, err = run_cli(capsys, "check", "--config", location)
    return status, out + err


def checked_value(output: str, name: str) -> str:
    """The value of the option ``name`` in check's ``Settings(...)`` line."""
    found = re.search(rf"\b{name}=([^,)]+)", output)
    assert found, output
    return found.group(1)


# -- use = another section of the same file, with set lines ---------------------


def test_a_set_line_does_not_override_a_key_of_the_same_files_section_it_uses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``set cookie_age = 5`` beside ``use = base`` is a global; the base
    section's own ``cookie_age = 10`` is a local key, which wins (the app
    got 10). ``check`` read the base section with the set line among its
    defaults, took its cookie_age for a global and reported 5."""
    ini = pipeline(
        tmp_path,
        """
        [filter:session]
        use = base
        set cookie_age = 5

        [filter:base]
        use = egg:wsgisession#session
        store = memory
        cookie_age = 10
        """,
    )
    assert loaded_settings(ini).cookie_age == 10
    status, output = checked(capsys, f"{ini}#session")
    assert status == 0, output
    assert checked_value(output, "cookie_age") == "10"


def test_a_reference_to_a_set_line_fails_in_a_used_section_of_the_same_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Paste Deploy fills the base section's ``%(name)s`` from the file's
    globals, which a ``set`` line of the section using it is not part of:
    ``loadapp()`` fails, and ``check`` approved the file."""
    import configparser

    ini = pipeline(
        tmp_path,
        """
        [filter:session]
        use = base
        set session_name = from_set

        [filter:base]
        use = egg:wsgisession#session
        store = memory
        cookie_name = %(session_name)s
        """,
    )
    with pytest.raises(configparser.InterpolationMissingOptionError):
        loaded_settings(ini)
    status, output = checked(capsys, f"{ini}#session")
    assert status == 1
    assert "[filter:base] cookie_name uses %(session_name)s" in output


# -- section names as Paste Deploy finds them -----------------------------------


@pytest.mark.parametrize(
    "header", ["filter: session", "filter:session ", "filter:  session "]
)
def test_a_section_name_with_spaces_is_found_as_paste_finds_it(
    header: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Paste Deploy strips the name after ``filter:``: the pipeline's
    ``session`` is ``[filter: session]``; ``check`` said there was no such
    section."""
    ini = pipeline(
        tmp_path,
        f"""
        [{header}]
        use = egg:wsgisession#session
        store = memory
        cookie_age = 33
        """,
    )
    assert loaded_settings(ini).cookie_age == 33
    status, output = checked(capsys, f"{ini}#session")
    assert status == 0, output
    assert checked_value(output, "cookie_age") == "33"


def test_an_application_section_holds_prefixed_keys_as_an_app_section(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``[application:main]`` is Paste Deploy's other spelling of
    ``[app:main]``: a Pyramid app's ``wsgisession.`` settings live there."""
    from paste.deploy import appconfig

    ini = write(
        tmp_path,
        "app.ini",
        f"""
        [application:main]
        use = call:{__name__}:make_app
        wsgisession.store = memory
        wsgisession.cookie_age = 44
        """,
    )
    settings = appconfig(f"config:{ini}")
    assert make_middleware(make_app({}), settings).settings.cookie_age == 44
    status, output = checked(capsys, f"{ini}#main")
    assert status == 0, output
    assert checked_value(output, "cookie_age") == "44"


def test_a_config_uri_with_a_quoted_space_names_the_file_paste_opens(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A ``config:`` URI is %-quoted (written %% in the ini): Paste Deploy
    opens ``my base.ini``; ``check`` looked for ``my%20base.ini``."""
    write(
        tmp_path,
        "my base.ini",
        """
        [filter:base]
        use = egg:wsgisession#session
        store = memory
        cookie_age = 55
        """,
    )
    ini = pipeline(tmp_path, "[filter:session]\nuse = config:my%%20base.ini#base\n")
    assert loaded_settings(ini).cookie_age == 55
    status, output = checked(capsys, f"{ini}#session")
    assert status == 0, output
    assert checked_value(output, "cookie_age") == "55"


# -- text that a reader takes for a comment or a key of its own -----------------


@pytest.mark.parametrize(
    "lines",
    [
        f"secret_key = {SECRET} # production key",
        f"secret_key = {SECRET} ; production key",
        f"secret_key = {SECRET}\n    encrypt = true",
    ],
    ids=["hash-comment", "semicolon-comment", "indented-key"],
)
def test_a_comment_or_key_swallowed_into_the_secret_key_is_refused(
    lines: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Paste Deploy keeps ``# production key`` in the value, and reads an
    indented ``encrypt = true`` as the secret's second line: the app signed
    with that text as its key and left encryption off, and ``check`` said
    ok. Such a key could not become a (whitespace-separated) fallback."""
    ini = pipeline(
        tmp_path,
        f"[filter:session]\nuse = egg:wsgisession#session\nstore = cookie\n{lines}\n",
    )
    with pytest.raises(ConfigError, match="secret_key holds whitespace"):
        loaded_settings(ini)
    status, output = checked(capsys, f"{ini}#session")
    assert status == 1
    assert "secret_key holds whitespace" in output
    assert "'#' or ';' after a value is part of the value" in output
    assert SECRET not in output


def test_a_comment_after_the_fallbacks_is_named_as_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ini = pipeline(
        tmp_path,
        f"""
        [filter:session]
        use = egg:wsgisession#session
        store = cookie
        secret_key = {SECRET}
        secret_key_fallbacks = {SECRET[::-1]}  # remove in June
        """,
    )
    with pytest.raises(ConfigError, match=r"secret_key_fallbacks\[1\] is no key"):
        loaded_settings(ini)
    status, output = checked(capsys, f"{ini}#session")
    assert status == 1
    assert "secret_key_fallbacks[1] is no key but a comment" in output
    assert SECRET[::-1] not in output


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("cookie_age = 3600  # one hour", "cookie_age"),
        ("lock = true ; always", "lock"),
        ("store = memory\n  cookie_age = 5", "store"),
    ],
)
def test_a_refused_value_holding_a_comment_says_ini_files_have_none(
    line: str, key: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ini = pipeline(
        tmp_path, f"[filter:session]\nuse = egg:wsgisession#session\n{line}\n"
    )
    with pytest.raises(ConfigError, match=f"invalid value for '{key}'"):
        loaded_settings(ini)
    status, output = checked(capsys, f"{ini}#session")
    assert status == 1
    assert f"invalid value for '{key}'" in output
    assert "'#' or ';' after a value is part of the value" in output


# -- errors that name what the user can change ----------------------------------


def test_a_percent_in_the_files_path_is_named_as_the_cause(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Paste Deploy cannot load a file in a directory named ``50%off``: its
    ``%(here)s`` holds a lone ``%``. ``check`` said ``[DEFAULT] here: bad
    %-substitution; write a literal % as %%``, of a key no one wrote."""
    import configparser

    directory = tmp_path / "50%off"
    directory.mkdir()
    ini = pipeline(
        directory,
        "[filter:session]\nuse = egg:wsgisession#session\nstore = memory\n",
    )
    with pytest.raises(configparser.InterpolationSyntaxError):
        loaded_settings(ini)
    status, output = checked(capsys, f"{ini}#session")
    assert status == 1
    assert "the file's path holds a '%'" in output
    assert "write a literal %" not in output


def test_a_get_line_without_its_global_names_the_file_it_is_in(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The section may be in another file (``use = config:``): the error
    named the section and not the file."""
    write(
        tmp_path,
        "base.ini",
        """
        [filter:base]
        use = egg:wsgisession#session
        store = memory
        get cookie_age = session_age
        """,
    )
    ini = pipeline(tmp_path, "[filter:session]\nuse = config:base.ini#base\n")
    with pytest.raises(KeyError):
        loaded_settings(ini)
    status, output = checked(capsys, f"{ini}#session")
    assert status == 1
    assert (
        f"{tmp_path / 'base.ini'}: [filter:base] get cookie_age = session_age" in output
    )
