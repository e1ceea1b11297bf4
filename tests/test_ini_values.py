"""Odd but plausible values in an ini file: one ConfigError line, never a traceback."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from wsgisession.cli import main
from wsgisession.config import parse_settings
from wsgisession.errors import ConfigError

#: More digits than Python's int() converts from a string (4300 by default).
HUGE = "9" * 5000


def ini(tmp_path: Path, keys: str) -> str:
    """An ini file with a ``[filter:session]`` of ``keys``; its ``FILE#section``."""
    path = tmp_path / "app.ini"
    body = textwrap.dedent(keys).strip()
    path.write_text(f"[filter:session]\nuse = egg:wsgisession#session\n{body}\n")
    return f"{path}#session"


@pytest.mark.parametrize(
    "key", ["cookie_age", "cleanup_interval", "reissue_time", "absolute_timeout"]
)
@pytest.mark.parametrize("sign", ["", "-", "+"])
def test_a_huge_number_of_seconds_is_a_config_error(key: str, sign: str) -> None:
    """A pasted run of digits (a key or a hash in the wrong key) made int()
    raise ValueError, a traceback out of loadapp() and make_middleware()."""
    with pytest.raises(ConfigError, match=key) as caught:
        parse_settings({key: sign + HUGE, "store": "memory"})
    assert len(str(caught.value)) < 300


def test_check_reports_a_huge_number_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    location = ini(tmp_path, f"store = memory\ncookie_age = {HUGE}")
    assert main(["check", "--config", location]) != 0
    _out, err = capsys.readouterr()
    assert "Traceback" not in err
    assert err.count("\n") == 1
    assert "cookie_age" in err


def test_numbers_near_the_limit_keep_their_usual_messages() -> None:
    assert parse_settings({"cookie_age": "0003600"})[0].cookie_age == 3600
    with pytest.raises(ConfigError, match="from 0 to"):
        parse_settings({"cookie_age": "99999999999"})


def test_a_global_in_capitals_fills_its_reference(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """loadapp(global_conf={"DATA_DIR": ...}) keeps the name's case, as the
    file's own keys; check lower-cased it, then said %(DATA_DIR)s was not
    defined and told the user to give the --global they had given."""
    location = ini(tmp_path, "store = file\nfile_path = %(DATA_DIR)s/sessions")
    argv = ["check", "--config", location, "--global", f"DATA_DIR={tmp_path}"]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert "not defined" not in err
    assert f"FileStore('{tmp_path}/sessions')" in out
