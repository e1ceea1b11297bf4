"""No error, log line (any level), ``repr`` or command output shows a secret.

Each test feeds a secret where the attack found it leaking (a non-ASCII
fallback in ``wsgisession check``, a bytes ``secret_key``, a ``redis_url``
with a bad scheme, the DEBUG line of the parsed store spec), captures every
log record at DEBUG, the exception, the ``repr``s and the command's output,
and scans them all for the secret.
"""

from __future__ import annotations

import logging
import textwrap
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from wsgisession import SessionMiddleware
from wsgisession.cli import main
from wsgisession.config import parse_settings
from wsgisession.errors import ConfigError, SessionError
from wsgisession.paste import make_middleware
from wsgisession.stores import RedisStore, SignedCookieStore
from wsgisession.storespec import StoreSpec

PASSWORD = "Pa55w0rd-never-shown"
SECRET = "the-signing-secret-never-shown-0123456789"
FALLBACK = "ancienne-cl\u00e9-secr\u00e8te-jamais-montr\u00e9e-\u00e9\u00e9\u00e9"
SHORT = "sh0rt-s3cret"


class Leaks:
    """Everything a run showed: log records at DEBUG, errors, reprs, output."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self.caplog = caplog
        self.texts: list[str] = []

    def add(self, *texts: object) -> None:
        self.texts.extend(map(str, texts))

    def raised(self, action: Callable[[], Any]) -> SessionError:
        """Run ``action``, which must raise a SessionError; keep its message,
        and its traceback with every exception chained to it (what a server
        logs)."""
        with pytest.raises(SessionError) as caught:
            action()
        error = caught.value
        self.add(error, repr(error), "".join(traceback.format_exception(error)))
        return error

    def assert_none_of(self, *secrets: str | bytes) -> None:
        shown = self.texts + [record.getMessage() for record in self.caplog.records]
        assert shown, "nothing was captured: the test checks nothing"
        for secret in secrets:
            text = secret.decode("latin-1") if isinstance(secret, bytes) else secret
            for item in shown:
                assert text not in item and repr(secret) not in item, item


@pytest.fixture
def leaks(caplog: pytest.LogCaptureFixture) -> Iterator[Leaks]:
    # On the package's logger itself: another test may have left it at INFO.
    with caplog.at_level(logging.DEBUG), caplog.at_level(logging.DEBUG, "wsgisession"):
        yield Leaks(caplog)


def run_check(tmp_path: Path, section: str, capsys: Any, leaks: Leaks) -> int:
    ini = tmp_path / "app.ini"
    ini.write_text(textwrap.dedent(section), encoding="utf-8")
    status = main(["check", "--config", f"{ini}#session"])
    out, err = capsys.readouterr()
    leaks.add(out, err)
    return status


def test_check_with_a_non_ascii_fallback(
    tmp_path: Path, capsys: Any, leaks: Leaks
) -> None:
    section = f"""
        [filter:session]
        use = egg:wsgisession#session
        store = cookie
        secret_key = {SECRET}
        secret_key_fallbacks = {FALLBACK} {SECRET[::-1]}
        """
    assert run_check(tmp_path, section, capsys, leaks) == 0
    leaks.assert_none_of(SECRET, FALLBACK, SECRET[::-1])


def test_check_with_a_short_fallback(tmp_path: Path, capsys: Any, leaks: Leaks) -> None:
    section = f"""
        [filter:session]
        use = egg:wsgisession#session
        store = cookie
        secret_key = {SECRET}
        secret_key_fallbacks = {FALLBACK} {SHORT}\u00e9
        """
    assert run_check(tmp_path, section, capsys, leaks) == 1
    assert "at least 32 bytes" in "".join(leaks.texts)
    leaks.assert_none_of(SECRET, FALLBACK, SHORT)


@pytest.mark.parametrize("secret", [SHORT.encode(), b"\xff\xfe" + SHORT.encode()])
def test_a_bytes_secret_is_not_echoed(secret: bytes, leaks: Leaks) -> None:
    leaks.raised(lambda: SignedCookieStore(secret))
    leaks.raised(lambda: SignedCookieStore(SECRET, [secret]))
    leaks.raised(lambda: StoreSpec(store="cookie", secret_key=secret))
    leaks.raised(lambda: StoreSpec(store="cookie", secret_key=SHORT))
    leaks.raised(
        lambda: StoreSpec(store="cookie", secret_key=SECRET, secret_key_fallbacks=[5])
    )
    leaks.assert_none_of(secret, SHORT, SECRET)


@pytest.mark.parametrize(
    "url",
    [
        f"http://user:{PASSWORD}@localhost:6379/0",
        f"user:{PASSWORD}@localhost:6379",
        f"{PASSWORD}@localhost",
        f"redis//:{PASSWORD}@localhost",
    ],
)
def test_a_redis_url_with_a_bad_scheme_hides_its_password(
    url: str, leaks: Leaks
) -> None:
    error = leaks.raised(lambda: parse_settings({"store": "redis", "redis_url": url}))
    assert "redis_url" in str(error)
    leaks.raised(lambda: RedisStore(url))
    leaks.raised(lambda: StoreSpec(store="redis", redis_url=url))
    leaks.raised(
        lambda: make_middleware(
            lambda e, s: [],
            {"wsgisession.store": "redis", "wsgisession.redis_url": url},
        )
    )
    leaks.assert_none_of(PASSWORD)


def test_debug_log_of_the_store_spec_hides_the_redis_password(leaks: Leaks) -> None:
    url = f"redis://:{PASSWORD}@127.0.0.1:1/0?password={PASSWORD}"
    settings, spec = parse_settings({"store": "redis", "redis_url": url})
    store = spec.build()
    middleware = SessionMiddleware(lambda e, s: [], store=store, settings=settings)
    leaks.add(repr(spec), repr(store), repr(middleware), repr(settings))
    assert any("parsed" in r.getMessage() for r in leaks.caplog.records)
    leaks.assert_none_of(PASSWORD)


def test_an_unreachable_redis_does_not_show_its_password(leaks: Leaks) -> None:
    store = RedisStore(f"redis://:{PASSWORD}@127.0.0.1:1/0", socket_timeout=0.5)
    leaks.raised(lambda: store.load("x" * 43))
    leaks.add(repr(store))
    leaks.assert_none_of(PASSWORD)


def test_check_against_redis_does_not_show_its_password(
    tmp_path: Path, capsys: Any, leaks: Leaks, clean_redis: Any
) -> None:
    section = f"""
        [filter:session]
        use = egg:wsgisession#session
        store = redis
        redis_url = redis://user:{PASSWORD}@{clean_redis.host}:{clean_redis.port}/0
        """
    run_check(tmp_path, section, capsys, leaks)  # AUTH fails: no such user
    leaks.assert_none_of(PASSWORD)


def test_cookie_store_repr_and_rejections_hide_the_keys(leaks: Leaks) -> None:
    store = SignedCookieStore(SECRET, [FALLBACK, FALLBACK.encode()])
    assert store.load("forged.value") is None
    leaks.add(repr(store))
    leaks.assert_none_of(SECRET, FALLBACK)


@pytest.mark.parametrize(
    "placeholder",
    [
        "x" * 32,
        "changeme" * 4,
        "0123456789abcdef" * 3,  # a pattern of 16 repeated
        "ab" * 20 + "a",  # a pattern cut short
        "bacacbacabaabdaacdcbdadbaabdaccbcaaacbbc",  # 4 different characters
    ],
)
def test_a_placeholder_secret_is_refused_however_long(placeholder: str) -> None:
    """Length alone let ``"x" * 32`` or ``"changeme" * 4`` sign sessions:
    anyone guesses them. A key that repeats a pattern of up to 16
    characters or has fewer than 5 different ones is refused, as a short
    one is, as a fallback too, as bytes and from an ini file, never echoed."""
    for make in (
        lambda: SignedCookieStore(placeholder),
        lambda: SignedCookieStore(placeholder.encode()),
        lambda: SignedCookieStore(SECRET, [placeholder]),
        lambda: parse_settings({"store": "cookie", "secret_key": placeholder})[
            1
        ].build(),
    ):
        with pytest.raises(ConfigError, match="placeholder") as caught:
            make()
        assert placeholder not in str(caught.value)
        assert "secrets.token_urlsafe(32)" in str(caught.value)


@pytest.mark.parametrize(
    "secret",
    [
        "0123456789abcdefg" * 2,  # a pattern of 17
        "dddedeacedeacbccabbedadadaaebbeebecdbede",  # 5 different characters
    ],
)
def test_a_key_just_past_the_placeholder_rule_is_accepted(secret: str) -> None:
    assert SignedCookieStore(secret).load("nothing") is None


def test_weak_key_error_says_how_to_make_one() -> None:
    for make in (
        lambda: SignedCookieStore("a"),
        lambda: SignedCookieStore("x" * 31),
        lambda: SignedCookieStore("\u00e9" * 15),  # 30 bytes in UTF-8
        lambda: SignedCookieStore(SECRET, ["a"]),
        lambda: parse_settings({"store": "cookie", "secret_key": "x"})[1].build(),
        lambda: parse_settings(
            {"store": "cookie", "secret_key": SECRET, "secret_key_fallbacks": "old"}
        ),
    ):
        with pytest.raises(ConfigError) as caught:
            make()
        message = str(caught.value)
        assert "at least 32 bytes" in message
        assert 'python -c "import secrets; print(secrets.token_urlsafe(32))"' in message
    assert SignedCookieStore("x40f4a39fd00e0f49e288f0320331cdc").load("nothing") is None
    # 32 bytes: 11 of two bytes each and 10 digits
    assert SignedCookieStore("\u00e9" * 11 + "0123456789").load("nothing") is None


@pytest.mark.parametrize(
    "url",
    [
        f"redis://user:{PASSWORD}?x@localhost:6379/0",
        f"redis://user:{PASSWORD}#x@localhost:6379/0",
        f"rediss://:{PASSWORD}?x@localhost/0",
        f"redis+cluster://user:{PASSWORD}?x@h1:7000,h2:7000",
    ],
)
def test_a_redis_url_that_cannot_be_parsed_hides_its_password_in_the_traceback(
    url: str, leaks: Leaks
) -> None:
    """An unencoded '?' or '#' in the password ends the host part: redis-py's
    ValueError quotes the password as the port. The ConfigError leaves the
    message out, and the server's traceback (its chained causes) shows it
    nowhere either."""
    error = leaks.raised(lambda: RedisStore(url))
    assert "cannot be parsed" in str(error)
    leaks.raised(lambda: StoreSpec(store="redis", redis_url=url).build())
    leaks.raised(
        lambda: make_middleware(
            lambda e, s: [],
            {"wsgisession.store": "redis", "wsgisession.redis_url": url},
        )
    )
    leaks.assert_none_of(PASSWORD)
