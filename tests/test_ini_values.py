"""Odd but plausible values in an ini file: one ConfigError line, never a traceback."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import examples
from hypothesis import example, given, settings
from hypothesis import strategies as st

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


#: The units people write seconds in elsewhere, and their length in seconds.
UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}


@settings(max_examples=examples(50), deadline=None, database=None)
@given(
    count=st.integers(min_value=1, max_value=5_000),  # 5,000 weeks: 3.0e9 s
    unit=st.sampled_from(sorted(UNITS)),
    key=st.sampled_from(["cookie_age", "absolute_timeout", "lock_timeout"]),
    spacing=st.sampled_from(["", " "]),
)
def test_seconds_with_a_unit_name_the_line_to_write(
    count: int, unit: str, key: str, spacing: str
) -> None:
    """``cookie_age = 2w`` (or ``1h``) was refused without saying what 2w
    is in seconds; the error now gives the line to write, which parses to
    the same length."""
    written = f"{count}{spacing}{unit}"
    with pytest.raises(ConfigError) as caught:
        parse_settings({key: written, "store": "memory"})
    line = str(caught.value).rpartition("units are not read: write ")[2]
    assert line == f"{key} = {count * UNITS[unit]} for {written!r}"
    settings_, _spec = parse_settings({key: line.partition(" = ")[2].split()[0]})
    assert getattr(settings_, key) == count * UNITS[unit]


@pytest.mark.parametrize(
    ("key", "written", "line"),
    [
        ("lock_timeout", "0.25s", "lock_timeout = 0.25 for '0.25s'"),
        ("lock_timeout", "1.5m", "lock_timeout = 90 for '1.5m'"),
        ("cookie_age", "1.5h", "cookie_age = 5400 for '1.5h'"),
        ("lock_timeout", "0.00001s", "lock_timeout = 0.00001 for '0.00001s'"),
    ],
)
def test_a_fraction_with_a_unit_names_the_line_to_write(
    key: str, written: str, line: str
) -> None:
    with pytest.raises(ConfigError, match=f"units are not read: write {line}$"):
        parse_settings({key: written})


@settings(max_examples=examples(50), deadline=None, database=None)
@given(
    tenths=st.integers(min_value=1, max_value=50_000),  # 5,000 weeks at most
    unit=st.sampled_from(["m", "min", "h", "d", "w"]),
    key=st.sampled_from(["cookie_age", "lock_timeout"]),
)
@example(tenths=11, unit="h", key="cookie_age")  # 1.1h: no line
@example(tenths=11, unit="h", key="lock_timeout")  # 1.1h: 3960.0000000000005
def test_a_decimal_with_a_unit_names_its_exact_seconds(
    tenths: int, unit: str, key: str
) -> None:
    """``1.1h`` is 3960 s: the float product (3960.0000000000005) offered
    ``lock_timeout = 3960.0000000000005`` and ``cookie_age`` no line."""
    written = f"{tenths // 10}.{tenths % 10}{unit}"
    seconds = tenths * UNITS[unit] // 10  # every unit here is a multiple of 10 s
    with pytest.raises(ConfigError) as caught:
        parse_settings({key: written})
    assert str(caught.value).endswith(f"write {key} = {seconds} for {written!r}")


@pytest.mark.parametrize(
    "written", ["0.5s", "3600.0", "1e3", "2 weeks", "h", "2M", "1H", "10000w"]
)
def test_no_line_is_offered_that_would_be_refused_or_guessed(written: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings({"cookie_age": written})
    assert "units are not read" not in str(caught.value)


def test_check_names_the_seconds_of_a_unit_in_its_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    location = ini(tmp_path, f"store = file\nfile_path = {tmp_path}\ncookie_age = 2w")
    assert main(["check", "--config", location]) == 1
    _out, err = capsys.readouterr()
    assert err == (
        "wsgisession check: error: invalid value for 'cookie_age': '2w'; expected "
        "a whole number of seconds written in digits, e.g. 3600; units are not "
        "read: write cookie_age = 1209600 for '2w'\n"
    )


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda path: None, "No such file or directory"),
        (lambda path: path.mkdir(), "Is a directory"),
    ],
    ids=["missing", "a directory"],
)
def test_a_config_file_that_cannot_be_read_says_why(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    make: Callable[[Path], None],
    reason: str,
) -> None:
    """The message named the file only: a typo in its name, a directory
    given for the file and a file the user may not read looked the same."""
    path = tmp_path / "production.ini"
    make(path)
    assert main(["check", "--config", f"{path}#session"]) == 1
    _out, err = capsys.readouterr()
    assert err == (
        f"wsgisession check: error: cannot read configuration file {path}: {reason}\n"
    )
