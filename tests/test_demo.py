"""The demo's tour, in-process: each action does what it says and shows what it sent."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
import webtest
from helpers import USER_SESSION_STORES
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

SECRET = "demo-test-" + "x56350c6a55fe0f898106b0231f45f1d977636a9"


class Tour:
    """A browser's walk through the demo: page loads and button clicks."""

    def __init__(self, store: Store, *, agent: str = "", app: DemoApp | None = None):
        self.app = app or DemoApp(store, "somewhere")
        environ = {"HTTP_USER_AGENT": agent} if agent else {}
        self.browser = webtest.TestApp(self.app, extra_environ=environ)
        self.text = ""

    def another_browser(self, agent: str) -> Tour:
        """A second browser on the same demo, with its own cookies."""
        return Tour(self.app.middleware.store, agent=agent, app=self.app)

    def __repr__(self) -> str:
        return f"Tour({self.app!r})"

    def load(self) -> str:
        self.text = self.browser.get("/").text
        return self.text

    def click(self, action: str, **fields: str) -> str:
        response = self.browser.post("/", {"action": action, **fields})
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


def _store(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Store:
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
    return store


@pytest.fixture(params=["memory", "file", "sqlite", "redis", "memcached", "cookie"])
def any_tour(request: pytest.FixtureRequest, tmp_path: Path) -> Tour:
    return Tour(_store(request.param, request, tmp_path))


#: The demo's stores with user sessions (tests/helpers.py lists which support them).
USER_SESSION_KINDS = [
    kind
    for kind in ("memory", "file", "sqlite", "redis", "memcached")
    if kind in USER_SESSION_STORES
]


@pytest.fixture(params=USER_SESSION_KINDS)
def server_side_tour(request: pytest.FixtureRequest, tmp_path: Path) -> Tour:
    """A first browser ("Browser A") on a demo whose store has user sessions."""
    return Tour(_store(request.param, request, tmp_path), agent="Browser A")


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


@pytest.mark.parametrize(
    ("url", "words"),
    [
        (
            "redis+cluster://:pw123456@10.0.0.7:7000,10.0.0.8:7000",
            "a Redis Cluster through 10.0.0.7:7000 and 10.0.0.8:7000 (RedisStore)",
        ),
        (
            "redis+cluster://10.0.0.7:7000",
            "a Redis Cluster through 10.0.0.7:7000 (RedisStore)",
        ),
    ],
)
def test_a_redis_cluster_in_words(url: str, words: str) -> None:
    """``wsgisession demo --redis-url`` with the cluster URL the docs show
    (several nodes): it printed a ValueError traceback once the store was
    reached (the host list read as one port)."""
    spec = parse_settings({"store": "redis", "redis_url": url})[1]
    description = describe_store(spec, spec.build())
    assert description == words
    assert "pw123456" not in description


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


# -- a user's sessions -----------------------------------------------------------------


def _inner(pattern: str, html: str) -> str:
    """The text of the first match of ``pattern``'s group, tags dropped."""
    match = re.search(pattern, html, re.DOTALL)
    assert match, f"{pattern!r} not in {html!r}"
    return " ".join(re.sub(r"<[^>]+>", "", match.group(1)).split())


def _listed(tour: Tour) -> list[dict[str, str]]:
    """The sessions the page lists: handle, shown handle, device, times, this browser."""
    entries = re.findall(
        r'<li class="user-session" data-handle="([^"]+)">(.*?)</li>',
        tour.text,
        re.DOTALL,
    )
    return [
        {
            "handle": handle,
            "shown": _inner(r'<code class="handle">(.*?)</code>', body),
            "device": _inner(r'<span class="device">(.*?)</span>', body),
            "times": _inner(r'<span class="times">(.*?)(?:<form|$)', body),
            "this": str("this browser" in body),
        }
        for handle, body in entries
    ]


def _logged_in(tour: Tour, name: str = "alice") -> str:
    tour.load()
    return tour.click("log-in", user=name)


def test_two_browsers_log_in_see_both_and_one_revokes_the_other(
    server_side_tour: Tour,
) -> None:
    laptop, phone = server_side_tour, server_side_tour.another_browser("Browser B")
    _logged_in(phone)
    laptop.load()
    before = laptop.key
    _logged_in(laptop)
    report = laptop.find("report")
    assert report.startswith("Log in: bind_user('alice'): a new key")
    assert "Set-Cookie: sessionid=«key " in report
    assert laptop.key != before  # a login cycles the key
    assert laptop.find("user") == "alice"
    laptop.load()
    listed = _listed(laptop)
    assert sorted((s["device"], s["this"]) for s in listed) == [
        ("Browser A", "True"),
        ("Browser B", "False"),
    ]
    for entry in listed:
        assert entry["shown"] == entry["handle"][:8] + "…"
        assert entry["times"] == (
            "created just now, last saved just now, expires in 13 days 23 h"
        )
    assert laptop.find("user-count") == "2"
    other = next(s for s in listed if s["this"] == "False")
    assert f'id="revoke-{other["handle"]}"' in laptop.text
    assert not any(
        f'id="revoke-{s["handle"]}"' in laptop.text
        for s in listed
        if s["this"] == "True"
    )

    report = laptop.click("revoke-one", handle=other["handle"])
    assert laptop.find("report").startswith(
        f"Sign out this other session: revoke_user_session('alice', '{other['handle'][:8]}…'): its record deleted"
    )
    assert laptop.find("report").endswith("no Set-Cookie: nothing changed")
    assert [s["device"] for s in _listed(laptop)] == ["Browser A"]

    phone.load()  # the revoked browser's next page load: logged out
    assert phone.find("status").startswith("Before this page load: no session yet")
    assert phone.find("user-status") == "Not logged in in this browser."
    assert 'id="user-name"' in phone.text
    assert phone.find("visits") == "1"
    assert laptop.app.middleware.user_sessions("alice")[0].data["agent"] == "Browser A"
    assert len(laptop.app.middleware.user_sessions("alice")) == 1


def test_sign_out_everywhere_else_keeps_this_browser(server_side_tour: Tour) -> None:
    browsers = [server_side_tour] + [
        server_side_tour.another_browser(f"Browser {n}") for n in "BC"
    ]
    for browser in browsers:
        _logged_in(browser)
    stranger = server_side_tour.another_browser("Browser D")
    _logged_in(stranger, "bob")
    first = browsers[0]
    first.load()
    assert first.find("user-count") == "3"
    first.click("revoke-others")
    assert first.find("report").startswith(
        "Sign out everywhere else: revoke_user_sessions('alice', keep=session): "
        "2 other session(s) of 'alice' deleted, this one kept"
    )
    assert [s["device"] for s in _listed(first)] == ["Browser A"]
    for browser in browsers[1:]:
        browser.load()
        assert browser.find("user-status") == "Not logged in in this browser."
    stranger.load()
    assert stranger.find("user") == "bob"  # another user's sessions are untouched
    first.click("revoke-others")
    assert "no other session of 'alice' deleted" in first.find("report")


def test_log_out_leaves_the_users_other_sessions(server_side_tour: Tour) -> None:
    laptop, phone = server_side_tour, server_side_tour.another_browser("Browser B")
    _logged_in(laptop)
    _logged_in(phone)
    laptop.click("log-out")
    report = laptop.find("report")
    assert report.startswith("Log out: flush(): this session deleted")
    assert 'Set-Cookie: sessionid=""; Expires=Thu, 01 Jan 1970' in report
    assert laptop.find("user-status") == "Not logged in in this browser."
    phone.load()
    assert phone.find("user") == "alice"
    assert [s["device"] for s in _listed(phone)] == ["Browser B"]


def test_a_revoked_handle_a_foreign_handle_and_no_login(memory_tour: Tour) -> None:
    other = memory_tour.another_browser("Browser B")
    _logged_in(other, "bob")
    bob_handle = _listed(other)[0]["handle"]
    memory_tour.load()
    memory_tour.click("revoke-one", handle=bob_handle)
    assert "Not logged in: log in first" in memory_tour.find("report")
    _logged_in(memory_tour, "alice")
    memory_tour.click("revoke-one", handle=bob_handle)  # not alice's: nothing ends
    assert "That session was already gone" in memory_tour.find("report")
    other.load()
    assert other.find("user") == "bob"
    for name in ("", "   ", "x" * 41, "tab\there"):
        fresh = memory_tour.another_browser("Browser C")
        fresh.load()
        fresh.click("log-in", user=name)
        assert fresh.find("report").startswith("Log in: Type a name of 1 to 40")
        assert fresh.find("user-status") == "Not logged in in this browser."
    this = _listed(memory_tour)[0]["handle"]
    memory_tour.click("revoke-one", handle=this)
    assert "That is this browser's session: use Log out" in memory_tour.find("report")


def test_the_name_is_shown_escaped(memory_tour: Tour) -> None:
    _logged_in(memory_tour, "<b>eve</b>")
    assert "<b>eve</b>" not in memory_tour.text
    assert memory_tour.find("user") == "&lt;b&gt;eve&lt;/b&gt;"


class NoUserSessionsStore(MemoryStore):
    """A third-party store without the optional user-session methods."""

    supports_user_sessions = False


def test_a_store_without_user_sessions_says_so() -> None:
    tour = Tour(NoUserSessionsStore())
    tour.load()
    assert tour.find("users-unavailable") == (
        "Not available: NoUserSessionsStore does not support user sessions."
    )
    tour.click("log-in", user="alice")
    assert tour.find("report").startswith("Log in: Not available: NoUserSessionsStore")
    assert tour.app.middleware.open_session(tour.key).user_id is None


def test_user_sessions_on_the_cookie_store_say_why_not(cookie_tour: Tour) -> None:
    cookie_tour.load()
    reason = cookie_tour.find("users-unavailable")
    assert reason.startswith("Not available on the cookie store: the whole session")
    assert 'id="user-name"' not in cookie_tour.text
    cookie_tour.click("log-in", user="alice")  # posted anyway: an answer, not a 500
    assert cookie_tour.find("report").startswith(
        "Log in: Not available on the cookie store"
    )
    assert cookie_tour.find("report").endswith("no Set-Cookie: nothing changed")
    for action in ("revoke-others", "revoke-one", "log-out"):
        cookie_tour.click(action)
        assert "Not logged in" in cookie_tour.find("report")
