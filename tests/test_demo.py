"""The demo's tour, in-process: each action does what it says and shows what it sent."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import webtest
from servers import ServerProcess

from wsgisession.config import parse_settings
from wsgisession.demo import DemoApp, describe_store, facts
from wsgisession.stores import (
    FileStore,
    MemcachedStore,
    MemoryStore,
    RedisStore,
    SignedCookieStore,
    SQLiteStore,
)
from wsgisession.stores.base import Store

SECRET = "demo-test-" + "x" * 40


class Tour:
    """A browser's walk through the demo: page loads and button clicks."""

    def __init__(self, store: Store) -> None:
        self.app = DemoApp(store, "somewhere")
        self.browser = webtest.TestApp(self.app)
        self.text = ""

    def __repr__(self) -> str:
        return f"Tour({self.app!r})"

    def load(self) -> str:
        self.text = self.browser.get("/").text
        return self.text

    def click(self, action: str) -> str:
        response = self.browser.post("/", {"action": action})
        assert response.status_int == 303
        self.text = response.follow().text
        return self.text

    def find(self, element: str) -> str:
        pattern = rf'<(\w+)[^>]*\bid="{element}"[^>]*>(.*?)</\1>'
        match = re.search(pattern, self.text, re.DOTALL)
        assert match, f"no #{element} on the page"
        return (
            re.sub(r"<[^>]+>", "", match.group(2))
            .replace("&#x27;", "'")
            .replace("&quot;", '"')
        )

    @property
    def cookie(self) -> str:
        return self.browser.cookies.get("sessionid", "")

    @property
    def key(self) -> str:
        return self.cookie.strip('"')


@pytest.fixture
def memory_tour() -> Tour:
    return Tour(MemoryStore())


@pytest.fixture
def cookie_tour() -> Tour:
    return Tour(SignedCookieStore(SECRET))


@pytest.fixture(params=["memory", "file", "sqlite", "redis", "memcached", "cookie"])
def any_tour(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Tour]:
    kind = request.param
    if kind == "memory":
        store: Store = MemoryStore()
    elif kind == "file":
        store = FileStore(tmp_path / "sessions")
    elif kind == "sqlite":
        store = SQLiteStore(tmp_path / "sessions.sqlite3")
    elif kind == "redis":
        server: ServerProcess = request.getfixturevalue("clean_redis")
        store = RedisStore(server.url)
    elif kind == "memcached":
        server = request.getfixturevalue("clean_memcached")
        store = MemcachedStore([server.address])
    else:
        store = SignedCookieStore(SECRET)
    yield Tour(store)


# -- facts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (1209600, "14 days"),
        (1209599, "13 days 23 h"),
        (90000, "1 day 1 h"),
        (3600 * 5 + 60 * 12 + 9, "5 h 12 min"),
        (60, "1 min"),
        (200, "3 min 20 s"),
        (42, "42 s"),
        (-5, "0 s"),
    ],
)
def test_countdown_in_words(seconds: int, words: str) -> None:
    assert facts.countdown(seconds) == words


def test_fingerprint_is_a_hash_not_a_prefix() -> None:
    key = "abcdefgh" + "x" * 35
    other = "abcdefgh" + "y" * 35
    assert facts.fingerprint(key) != facts.fingerprint(other)
    assert not key.startswith(facts.fingerprint(key))
    assert len(facts.fingerprint(key)) == 8


def test_set_cookie_summary_hides_the_key() -> None:
    key = "k" * 43
    header = f"sessionid={key}; Max-Age=60; HttpOnly; Path=/"
    shown = facts.summarize_set_cookie(header, "sessionid")
    assert key not in shown
    assert (
        shown
        == f"sessionid=«key {facts.fingerprint(key)}, 43 chars»; Max-Age=60; HttpOnly; Path=/"
    )


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        (
            {"store": "memory"},
            "this process's memory (MemoryStore): they end when the demo stops",
        ),
        (
            {"store": "redis", "redis_url": "redis://:pw123456@db.local:6380/2"},
            "Redis at db.local:6380, database 2 (RedisStore)",
        ),
        (
            {"store": "memcached", "memcached_servers": "a:1 b:2"},
            "memcached at a:1 and b:2 (MemcachedStore)",
        ),
        (
            {"store": "cookie", "secret_key": SECRET},
            "the cookie itself, signed, readable by you (SignedCookieStore): the server keeps nothing",
        ),
    ],
)
def test_the_store_in_words(settings: dict[str, str], words: str) -> None:
    spec = parse_settings(settings)[1]
    description = describe_store(spec, spec.build())
    assert description == words
    assert "pw123456" not in description and SECRET not in description


# -- the tour ------------------------------------------------------------------------


def test_first_load_has_no_session_yet_and_each_load_counts(memory_tour: Tour) -> None:
    memory_tour.load()
    assert memory_tour.find("status").startswith(
        "Before this page load: no session yet"
    )
    assert memory_tour.find("visits") == "1"
    memory_tour.load()
    assert "the store found the session" in memory_tour.find("status")
    assert memory_tour.find("visits") == "2"
    assert memory_tour.key and memory_tour.key not in memory_tour.text  # never shown
    assert memory_tour.find("fingerprint") == facts.fingerprint(memory_tour.key)


def test_expiry_as_a_date_and_a_countdown(memory_tour: Tour) -> None:
    memory_tour.load()
    expiry = memory_tour.find("expiry")
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC: in (14 days|13 days 23 h) unless the session changes",
        expiry,
    ), expiry
    memory_tour.click("expire-60")
    report = memory_tour.find("report")
    assert report.startswith("Expire 60 s after the last change: set_expiry(60)")
    assert "Max-Age=60;" in report
    assert re.search(r"UTC: in (1 min|59 s) unless", memory_tour.find("expiry"))
    memory_tour.click("browser-close")
    sent = memory_tour.find("report").partition("Set-Cookie: ")[2]
    assert sent.startswith("sessionid=«key ")
    assert "Max-Age" not in sent and "Expires" not in sent
    assert memory_tour.find("expiry").startswith("when the browser closes")
    memory_tour.click("default-expiry")
    assert "Max-Age=1209600" in memory_tour.find("report")
    memory_tour.click("default-expiry")
    assert memory_tour.find("report").endswith(
        "already had the default expiry.no Set-Cookie: nothing changed"
    )


def test_actions_do_only_what_they_say(memory_tour: Tour) -> None:
    memory_tour.load()
    session = memory_tour.app.middleware.open_session(memory_tour.key)
    assert dict(session) == {"visits": 1}
    for action in ("expire-60", "browser-close", "default-expiry"):
        memory_tour.browser.post("/", {"action": action})
        session = memory_tour.app.middleware.open_session(memory_tour.key)
        assert dict(session) == {"visits": 1}, action  # no visit counted by a click


def test_cycle_changes_the_fingerprint_and_keeps_the_data(any_tour: Tour) -> None:
    any_tour.load()
    before, old_key = any_tour.find("fingerprint"), any_tour.key
    any_tour.click("cycle")
    report = any_tour.find("report")
    assert report.startswith("Cycle the key (log in): cycle_key()")
    assert "Set-Cookie: sessionid=«key " in report
    assert any_tour.find("fingerprint") != before
    assert any_tour.find("visits") == "2"  # the data moved with the key
    store = any_tour.app.middleware.store
    if not store.client_side:
        assert not store.exists(old_key)


def test_flush_deletes_the_cookie(memory_tour: Tour) -> None:
    memory_tour.load()
    old_key = memory_tour.key
    memory_tour.click("flush")
    report = memory_tour.find("report")
    assert report.startswith("Flush (log out): flush(): the data cleared")
    assert (
        'Set-Cookie: sessionid=""; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0'
        in report
    )
    assert not memory_tour.app.middleware.store.exists(old_key)
    assert memory_tour.find("visits") == "1"


def test_add_kilobyte_hits_the_cookie_limit_as_a_readable_message(
    cookie_tour: Tour,
) -> None:
    cookie_tour.load()
    sizes = [int(cookie_tour.find("cookie-size"))]
    for _ in range(3):
        cookie_tour.click("add-kb")
        sizes.append(int(cookie_tour.find("cookie-size")))
    assert all(b - a > 1000 for a, b in itertools.pairwise(sizes))
    refused = cookie_tour.browser.post("/", {"action": "add-kb"})  # no 500
    assert refused.status_int == 303
    assert "Set-Cookie" not in refused.headers  # raised before any header left
    cookie_tour.text = refused.follow().text
    report = cookie_tour.find("report")
    assert report.startswith("Add 1 KB: SessionCookieTooLarge: session cookie would be")
    assert "over the 4093-byte limit" in report
    assert "your browser keeps its previous cookie" in report
    assert "3 KB of random text" in cookie_tour.find("data")
    cookie_tour.click("drop-padding")
    assert int(cookie_tour.find("cookie-size")) < 400


def test_add_kilobyte_on_a_server_side_store_keeps_the_cookie_small(
    memory_tour: Tour,
) -> None:
    memory_tour.load()
    size = int(memory_tour.find("cookie-size"))
    memory_tour.click("add-kb")
    memory_tour.click("add-kb")
    assert "2 KB of padding): the record grew, the cookie did not" in memory_tour.find(
        "report"
    )
    assert int(memory_tour.find("cookie-size")) == size


def test_no_lost_updates(any_tour: Tour) -> None:
    any_tour.load()
    any_tour.click("race")
    report = any_tour.find("report")
    match = re.search(r"(\d+) of 20 survived", report)
    assert match, report
    scratch = re.search(r"scratch copy kept (\d+) of 20: (\d+) lost", report)
    assert scratch, report
    kept, lost = int(scratch.group(1)), int(scratch.group(2))
    assert kept + lost == 20 and lost >= 1  # all loaded before any saved
    store = any_tour.app.middleware.store
    if store.client_side:
        assert int(match.group(1)) == 1  # the cookie store cannot merge, and says so
        assert "The cookie store cannot merge" in report
        return
    assert int(match.group(1)) == 20
    assert report.endswith("no Set-Cookie: nothing changed")
    session = any_tour.app.middleware.open_session(any_tour.key)
    runs = {session[f"race-{n:02d}"] for n in range(20)}
    assert len(runs) == 1  # all 20 keys, all from this run


def test_race_without_a_session(memory_tour: Tour) -> None:
    response = memory_tour.browser.post("/", {"action": "race"}).follow()
    assert "No session yet: load the page once" in response.text


def test_unknown_action_and_paths(memory_tour: Tour) -> None:
    assert memory_tour.browser.post("/", {"action": "nope"}, status=400)
    assert memory_tour.browser.get("/favicon.ico", status=404)


def test_the_page_names_the_store_in_words(cookie_tour: Tour) -> None:
    cookie_tour.app.pages.store_description = describe_store(
        parse_settings({"store": "cookie", "secret_key": SECRET})[1],
        cookie_tour.app.middleware.store,
    )
    text = cookie_tour.load()
    assert "Sessions live in the cookie itself, signed" in text
    assert "SignedCookieStore(&lt;" not in text and SECRET not in text


def test_a_store_that_goes_away_is_a_readable_503(fresh_redis: ServerProcess) -> None:
    tour = Tour(RedisStore(fresh_redis.url))
    tour.load()
    fresh_redis.stop(crash=True)
    response = tour.browser.get("/", status=503)
    assert "The session store is unreachable" in response.text
    assert "Start it again, then reload this page." in response.text
    response = tour.browser.post("/", {"action": "cycle"}, status=503)
    assert "The session store is unreachable" in response.text
