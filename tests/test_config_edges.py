"""Configuration edge cases: passwords with / ? or # in URLs, Paste's explicit
factory keys, and a section that takes its keys from another with ``use``."""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path
from typing import Any

import pytest

from wsgisession.cli import main
from wsgisession.config import parse_settings
from wsgisession.errors import ConfigError
from wsgisession.redaction import redact_url

# -- a password holding / ? or # is hidden ------------------------------------

#: Generated passwords (base64) routinely hold '/' and '+'.
SQL_PASSWORD = "Zx9/kQ+7wP"


@pytest.mark.parametrize(
    "url",
    [
        f"redis://:{SQL_PASSWORD}@cache.internal:6379/0",
        "redis://:Qz?9xK@cache.internal:6379/0",
        "redis://user:Qz#9xK@cache.internal:6379/0",
        f"postgresql+psycopg://app:{SQL_PASSWORD}@db.internal/app",
    ],
)
def test_redact_url_hides_a_password_with_slash_question_or_hash(url: str) -> None:
    shown = redact_url(url)
    assert "Qz" not in shown and SQL_PASSWORD not in shown, shown


def test_store_spec_repr_and_debug_log_hide_a_valid_sql_password(
    caplog: Any,
) -> None:
    # SQLAlchemy takes this URL as it is: the password is "Zx9/kQ+7wP".
    url = f"postgresql+psycopg://app:{SQL_PASSWORD}@db.internal/app"
    with caplog.at_level(logging.DEBUG, logger="wsgisession"):
        _, spec = parse_settings({"store": "sql", "sql_url": url})
    assert SQL_PASSWORD not in repr(spec)
    assert SQL_PASSWORD not in caplog.text


@pytest.mark.parametrize(
    ("store", "url"),
    [
        ("sql", "postgresql+psycopg://app@db.internal/app?password=Zx9#kQ7wP"),
        ("sql", "postgresql+psycopg://app@db.internal/app?sslpassword=Zx9#kQ7wP"),
        ("redis", "redis://cache.internal:6379/0?password=Zx9#kQ7wP"),
    ],
)
def test_a_query_password_with_a_hash_is_hidden_whole(store: str, url: str) -> None:
    """SQLAlchemy takes ``?password=Zx9#kQ7wP`` whole; urlsplit ends the query
    at '#', which showed the rest of the password as a fragment."""
    assert "kQ7wP" not in redact_url(url), redact_url(url)
    _, spec = parse_settings({"store": store, f"{store}_url": url})
    assert "kQ7wP" not in repr(spec), repr(spec)


@pytest.mark.parametrize(
    ("store", "url"),
    [
        ("sql", "postgresql+psycopg://db.internal/app?user=app&password=Zx9@kQ7wP"),
        ("redis", "redis://cache.internal:6379/0?password=Zx9@kQ7wP"),
        ("redis", "redis://cache.internal:6379/0?password=Zx9/x@kQ7wP&db=1"),
    ],
)
def test_a_query_password_with_an_at_sign_is_hidden_whole(store: str, url: str) -> None:
    """``?password=Zx9@kQ7wP`` is a password with '@' (redis-py and SQLAlchemy
    take it whole): the part after the '@' was shown as if it were the host."""
    assert "kQ7wP" not in redact_url(url), redact_url(url)
    _, spec = parse_settings({"store": store, f"{store}_url": url})
    assert "kQ7wP" not in repr(spec), repr(spec)
    assert "kQ7wP" not in repr(spec.build()), repr(spec.build())


def test_redis_url_error_does_not_show_any_of_the_password() -> None:
    _, spec = parse_settings(
        {"store": "redis", "redis_url": "redis://:Qz?9xK@cache.internal:6379/0"}
    )
    with pytest.raises(ConfigError) as caught:
        spec.build()
    assert "Qz" not in str(caught.value), str(caught.value)


def test_cli_refuses_a_redis_url_argument_with_a_slash_password(capsys: Any) -> None:
    url = f"redis://:{SQL_PASSWORD}@127.0.0.1:1/0"
    assert main(["check", "--store", "redis", "--redis-url", url]) == 1
    err = capsys.readouterr().err
    assert SQL_PASSWORD not in err, err
    assert "refused" in err


@pytest.mark.parametrize(
    "url",
    ["redis+sentinel://:Qz9xK@10.0.0.5:26379/mymaster", "sentinel://10.0.0.5:26379"],
)
def test_a_sentinel_url_is_sent_to_a_store_function(url: str) -> None:
    """redis_url has no scheme for Redis Sentinel: the error says what to do
    instead (docs/stores.rst), and still shows nothing past the scheme."""
    with pytest.raises(ConfigError) as caught:
        parse_settings({"store": "redis", "redis_url": url})
    message = str(caught.value)
    assert "Redis Sentinel has no URL here: set store = package.module:function" in (
        message
    )
    assert "Qz9xK" not in message and "10.0.0.5" not in message, message
    assert "Sentinel has no URL" not in _message_for("http://10.0.0.5/")


def _message_for(url: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_settings({"store": "redis", "redis_url": url})
    return str(caught.value)


# -- check accepts Paste's explicit factory key -------------------------------


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def test_check_accepts_an_explicit_paste_filter_app_factory(
    tmp_path: Path, capsys: Any
) -> None:
    # loadapp() builds this filter (Paste removes the protocol key).
    ini = write(
        tmp_path / "app.ini",
        """\
        [filter:session]
        paste.filter_app_factory = wsgisession.paste:filter_app_factory
        store = memory
        cookie_age = 120
        """,
    )
    from paste.deploy import loadfilter

    assert (
        loadfilter(f"config:{ini}", name="session")(lambda e, s: []).settings.cookie_age
        == 120
    )
    status = main(["check", "--config", f"{ini}#session"])
    out, err = capsys.readouterr()
    assert status == 0, err
    assert "cookie_age=120" in out


# -- check and clear-expired follow `use = another section` --------------------

INHERITING = """\
    [filter:session_base]
    use = egg:wsgisession#session
    store = file
    file_path = %(here)s/sessions

    [filter:session]
    use = session_base
    cookie_age = 60
    """


def test_check_follows_use_of_another_section(tmp_path: Path, capsys: Any) -> None:
    ini = write(tmp_path / "app.ini", INHERITING)
    from paste.deploy import loadfilter

    built = loadfilter(f"config:{ini}", name="session")(lambda e, s: [])
    assert repr(built.store) == f"FileStore({str(tmp_path / 'sessions')!r})"
    assert built.settings.cookie_age == 60
    assert main(["check", "--config", f"{ini}#session"]) == 0
    out = capsys.readouterr().out
    assert "cookie_age=60" in out
    assert f"store reached: FileStore({str(tmp_path / 'sessions')!r})" in out, out


def test_check_follows_use_of_a_config_uri(tmp_path: Path, capsys: Any) -> None:
    write(
        tmp_path / "base.ini",
        """\
        [filter:session]
        use = egg:wsgisession#session
        store = file
        file_path = %(here)s/sessions
        cookie_age = 1h
        """,
    )
    ini = write(
        tmp_path / "app.ini",
        """\
        [filter:session]
        use = config:base.ini#session
        cookie_secure = true
        """,
    )
    from paste.deploy import loadfilter

    with pytest.raises(ConfigError, match="cookie_age"):  # startup fails
        loadfilter(f"config:{ini}", name="session")(lambda e, s: [])
    assert main(["check", "--config", f"{ini}#session"]) == 1  # so must check
    assert "cookie_age" in capsys.readouterr().err


def test_redact_url_keeps_a_host_less_url_with_an_at_sign() -> None:
    assert redact_url("sqlite:////srv/app@1/sessions.db") == (
        "sqlite:////srv/app@1/sessions.db"
    )
