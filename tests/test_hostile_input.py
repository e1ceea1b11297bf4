"""Hostile ``Cookie`` headers against the middleware, on every store.

A corpus of known-bad headers (path traversal, NUL and control bytes,
10 KB values, raw latin-1 bytes as WSGI hands them over, duplicates,
quotes, another store's id format, near-misses of a real session's id)
plus hypothesis-generated headers are sent to an app that only reads the
session and to one that writes it. Whatever the header:

* the response is never a 5xx, and no exception escapes the middleware;
* a read creates no record and no file;
* a write creates exactly one record, never under the id the client sent;
* nothing is written outside the store's directory, in ``/`` or in the cwd;
* the real ("victim") session is never served to a near-miss of its id.

Run with ``-s`` to see the totals per store.
"""

from __future__ import annotations

import base64
import os
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import servers
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from servers import ServerProcess

from wsgisession import SessionMiddleware
from wsgisession.keys import generate_key, storage_key
from wsgisession.stores import (
    FileStore,
    MemcachedStore,
    MemoryStore,
    RedisStore,
    SignedCookieStore,
    SQLiteStore,
)
from wsgisession.stores.base import Store

STORES = ["memory", "file", "sqlite", "memcached", "redis", "cookie"]
COOKIE = "sessionid"
SECRET = "hostile-input-secret-0123456789abcdef"
EXAMPLES = 150
#: Every code point a WSGI server can put in ``HTTP_COOKIE``: PEP 3333 hands
#: headers over as latin-1 decoded bytes, so this is the whole alphabet.
WSGI_CHARS = st.characters(min_codepoint=0, max_codepoint=255)
#: Beyond what PEP 3333 allows, for servers or frameworks that decode headers
#: themselves: a header must not crash the middleware whatever its characters.
ANY_CHARS = st.characters(exclude_categories=("Cs",))

Environ = dict[str, Any]


# -- the apps ------------------------------------------------------------------


def read_app(environ: Environ, start_response: Callable[..., Any]) -> list[bytes]:
    """Reads the session and shows what it found."""
    session = environ["wsgisession"]
    body = f"{session.get('secret')}|{len(session)}"
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body.encode()]


def write_app(environ: Environ, start_response: Callable[..., Any]) -> list[bytes]:
    """Reads, then writes the session."""
    session = environ["wsgisession"]
    body = f"{session.get('secret')}|{len(session)}"
    session["written"] = True
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body.encode()]


# -- the stores and how to count their records --------------------------------


@dataclass
class Totals:
    inputs: int = 0
    #: Read requests whose answer deleted the session cookie the client sent.
    cookies_deleted: int = 0
    #: Write requests answered with a fresh id (never the one the client sent).
    fresh_ids: int = 0


@dataclass
class Harness:
    """A store, its middleware pair, a way to count its records, and the tmp tree."""

    name: str
    store: Store
    count: Callable[[], int]
    root: Path
    store_dir: Path | None
    victim: str = ""
    variants: list[str] = field(default_factory=list)
    totals: Totals = field(default_factory=Totals)

    def __post_init__(self) -> None:
        self.reader = SessionMiddleware(read_app, store=self.store)
        self.writer = SessionMiddleware(write_app, store=self.store)


def tree(root: Path) -> set[str]:
    """Every path under ``root``, relative to it."""
    found = set()
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            found.add(os.path.relpath(os.path.join(directory, name), root))
    return found


def _memcached_items(server: ServerProcess) -> Callable[[], int]:
    from pymemcache.client.base import Client

    client = Client((server.host, server.port), timeout=5)
    return lambda: int(client.stats()[b"curr_items"])


def _redis_keys(server: ServerProcess) -> Callable[[], int]:
    import redis

    client = redis.Redis(host=server.host, port=server.port)
    return lambda: int(client.dbsize())


def _sqlite_rows(path: Path) -> Callable[[], int]:
    def count() -> int:
        with sqlite3.connect(path) as conn:
            return int(
                conn.execute("SELECT count(*) FROM wsgisession_sessions").fetchone()[0]
            )

    return count


def make_harness(name: str, tmp_path: Path, request: pytest.FixtureRequest) -> Harness:
    root = tmp_path / "root"
    root.mkdir()
    store_dir: Path | None = None
    store: Store
    if name == "memory":
        memory = MemoryStore()
        store, count = memory, lambda: len(memory._records)
    elif name == "file":
        store_dir = root / "sessions"
        store, count = FileStore(store_dir), lambda: _file_records(store_dir)
    elif name == "sqlite":
        path = root / "sessions.sqlite3"
        store, count = SQLiteStore(path), _sqlite_rows(path)
    elif name == "memcached":
        server = request.getfixturevalue("private_memcached")
        store, count = MemcachedStore([server.address]), _memcached_items(server)
    elif name == "redis":
        server = request.getfixturevalue("private_redis")
        store, count = RedisStore(server.url), _redis_keys(server)
    else:
        store, count = SignedCookieStore(SECRET), lambda: 0
    harness = Harness(name, store, count, root, store_dir)
    plant_victim(harness)
    return harness


def _file_records(store_dir: Path) -> int:
    return sum(
        1
        for shard in store_dir.iterdir()
        if len(shard.name) == 2
        for entry in shard.iterdir()
        if len(entry.name) == 64
    )


def plant_victim(h: Harness) -> None:
    """Save a real session and list near-misses of its id that must not load it."""
    session = h.reader.open_session()
    session["secret"] = "victim"
    session.save()
    assert session.session_key is not None
    victim = h.victim = session.session_key
    h.variants = [
        victim[:-1],
        victim + "A",
        victim[1:],
        victim.swapcase(),
        victim[::-1],
        "../" + victim,
        victim + "/..",
        victim + "\x00",
        "\x00" + victim,
        victim + "\xe9",
        victim[:20] + "\n" + victim[20:],
        storage_key(victim) if h.name != "cookie" else victim[:-2],
        "wsgisession:" + storage_key(victim),
        victim * 2,
    ]
    if isinstance(h.store, SignedCookieStore):
        payload = h.store.load(victim).payload  # type: ignore[union-attr]
        h.variants += [
            SignedCookieStore("another-secret-0123456789abcdef-xyz").create(
                "", payload, 4e9
            ),
            h.store.create("", payload, 1.0),  # signed by us, but expired
            _flip_payload(victim),
        ]


def _flip_payload(value: str) -> str:
    """A signed value whose payload part was changed and signature kept."""
    body, _, signature = value.rpartition(".")
    flipped = "B" if body[5] != "B" else "C"
    return body[:5] + flipped + body[6:] + "." + signature


def _private(factory: Callable[[Path], ServerProcess], workdir: Path):
    server = factory(workdir)
    server.start()
    yield server
    server.stop(crash=True)  # nothing kept: no graceful exit to wait for


@pytest.fixture(scope="module")
def private_memcached(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServerProcess]:
    """A memcached only this module uses, never flushed, so counts are exact."""
    yield from _private(servers.memcached, tmp_path_factory.mktemp("memcached"))


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A redis-server only this module uses, so DBSIZE counts only our records."""
    yield from _private(servers.redis_server, tmp_path_factory.mktemp("redis"))


@pytest.fixture(params=STORES)
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    h = make_harness(request.param, tmp_path, request)
    top, cwd = set(os.listdir("/")), set(os.listdir(os.getcwd()))
    yield h
    t = h.totals
    print(
        f"\n[hostile] {h.name}: inputs tried {t.inputs}, "
        f"cookies deleted on read {t.cookies_deleted}, fresh ids issued {t.fresh_ids}"
    )
    assert set(os.listdir("/")) == top, "a file appeared in /"
    assert set(os.listdir(os.getcwd())) == cwd, "a file appeared in the cwd"
    assert h.reader.open_session(h.victim).get("secret") == "victim"


# -- one request and its checks -----------------------------------------------


def call(app: Any, header: str) -> tuple[str, list[tuple[str, str]], bytes]:
    """Run one request with ``header`` as its Cookie; an exception counts as 500."""
    environ: Environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/",
        "QUERY_STRING": "",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "HTTP_COOKIE": header,
    }
    captured: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info=None):
        captured["status"], captured["headers"] = status, headers
        return lambda data: None

    try:
        result = app(environ, start_response)
        try:
            body = b"".join(result)
        finally:
            getattr(result, "close", lambda: None)()
    except Exception as exc:  # noqa: BLE001 - a server would answer 500
        return f"500 {type(exc).__name__}: {exc}", [], b""
    return captured["status"], captured["headers"], body


def session_cookies(headers: list[tuple[str, str]]) -> list[str]:
    """The values of the session's ``Set-Cookie`` headers."""
    values = []
    for name, value in headers:
        if name.lower() == "set-cookie" and value.startswith(COOKIE + "="):
            values.append(value.split(";", 1)[0].split("=", 1)[1])
    return values


def call_counted(
    h: Harness, app: Any, header: str
) -> tuple[list[tuple[str, str]], bytes]:
    """Call ``app`` with ``header``, count it, and require a non-5xx answer."""
    status, headers, body = call(app, header)
    assert int(status[:3]) < 500, f"{status} for Cookie: {header!r}"
    h.totals.inputs += 1
    return headers, body


def check_read(h: Harness, header: str) -> None:
    before_count, before_tree = h.count(), tree(h.root)
    headers, body = call_counted(h, h.reader, header)
    created = h.count() - before_count
    assert created == 0, f"a read created {created} record(s) for {header!r}"
    assert tree(h.root) == before_tree, f"a read changed the files for {header!r}"
    values = session_cookies(headers)
    assert [v for v in values if v] == [], header
    h.totals.cookies_deleted += len(values)
    assert_clean_headers(headers)
    assert not body.startswith(b"victim"), f"{header!r} loaded the victim's session"


def check_write(h: Harness, header: str) -> None:
    before_count, before_tree = h.count(), tree(h.root)
    headers, body = call_counted(h, h.writer, header)
    assert not body.startswith(b"victim"), f"{header!r} loaded the victim's session"
    assert_clean_headers(headers)
    (value,) = session_cookies(headers)
    assert value not in header, f"the id the client sent was adopted: {header!r}"
    assert h.store.is_valid_key(value)
    h.totals.fresh_ids += 1
    expected = 0 if h.store.client_side else 1
    assert h.count() - before_count == expected
    new = tree(h.root) - before_tree
    outside = [p for p in new if h.store_dir is None or not _under(h, p)]
    assert outside == [], f"files outside the store directory: {outside}"


def _under(h: Harness, relative: str) -> bool:
    assert h.store_dir is not None
    return (h.root / relative).resolve().is_relative_to(h.store_dir.resolve())


def assert_clean_headers(headers: list[tuple[str, str]]) -> None:
    """No response header carries CR, LF, NUL or another control character."""
    for name, value in headers:
        bad = [ch for ch in name + value if ord(ch) < 0x20 or ord(ch) == 0x7F]
        assert bad == [], f"control characters in response header {name}: {value!r}"


# -- the corpus ------------------------------------------------------------------

TRAVERSALS = [
    "../../etc/passwd",
    "..%2F..%2Fetc%2Fpasswd",
    "/etc/passwd",
    "....//....//etc/passwd",
    "..\\..\\windows\\win.ini",
    "sessions/../../escape",
    "../" * 20 + "tmp/wsgisession-escape",
    "%2e%2e/%2e%2e/etc/passwd",
    ".",
    "..",
    "~root",
]

CONTROL = [chr(c) for c in range(0x20)] + ["\x7f"]


def corpus(h: Harness) -> list[str]:
    """Every hand-written hostile header, with the victim's near-misses."""
    values = [
        *TRAVERSALS,
        *(f"abc{ch}def" for ch in CONTROL),
        "\x00" * 43,
        "A" * 42 + "\x00",
        "A" * 10240,
        "A" * 43 + "B" * 10240,
        "caf\xc3\xa9",  # UTF-8 bytes, latin-1 decoded as WSGI gives them
        "caf\xe9",  # a latin-1 byte that is not UTF-8
        "\xff\xfe\xfd",
        "\xc3\x28",
        "\x80" * 43,
        generate_key(),
        "A" * 43,
        "-" * 43,
        "_" * 43,
        generate_key()[:42],
        generate_key() + "A",
        '"' + generate_key() + '"',
        '"',
        '"\\"',
        '"\\000"',
        "\\x00",
        '"\\',
        '\\"\\\\',
        "'" + "a" * 41 + "'",
        "eyJ2IjoxfQ.abc.def",
        "wsgisession:" + "0" * 64,
        "0" * 64,
        "",
        " ",
        *h.variants,
    ]
    headers = [f"{COOKIE}={value}" for value in values]
    headers += [
        "",
        " ",
        ";;;;",
        "=",
        "==",
        "; ;",
        "a",
        COOKIE,
        COOKIE + ";",
        "=" + COOKIE,
        f"; {COOKIE} =  x",
        f"{COOKIE}==x",
        f"{COOKIE}=x=y",
        f"=value; {COOKIE}=",
        f"{COOKIE}=a; {COOKIE}=b",
        f"{COOKIE}=; {COOKIE}=",
        f"{COOKIE}={generate_key()}; {COOKIE}={generate_key()}",
        f"{COOKIE}=junk; {COOKIE}={h.variants[0]}; {COOKIE}=../x",
        f"{COOKIE}={h.victim[:-1]},{COOKIE}={h.victim}",
        "; ".join(f"junk{i}=v{i}" for i in range(1000)) + f"; {COOKIE}=x",
        "; ".join(f"{COOKIE}={generate_key()}" for _ in range(200)),
        f"{COOKIE.upper()}={h.victim}",
        f"{COOKIE}\x00={h.victim}",
        f"sess\xefonid={h.victim}",
        f"x{COOKIE}={h.victim}",
        f"{COOKIE}x={h.victim}",
        f"{COOKIE}=a\r\nSet-Cookie: {COOKIE}=injected",
        f"{COOKIE}=a\nX-Injected: 1",
        "\x00" * 100,
        "\xff" * 100,
    ]
    return headers


@pytest.mark.slow  # hundreds of requests per store
def test_corpus_of_hostile_cookies(harness: Harness) -> None:
    """Every header of the corpus, all checked before reporting what failed."""
    failures = []
    for header in corpus(harness):
        for check in (check_read, check_write):
            try:
                check(harness, header)
            except AssertionError as exc:
                failures.append(f"{check.__name__}: {str(exc).splitlines()[0]}")
    assert failures == [], f"{len(failures)} failures:\n" + "\n".join(failures)


def test_victim_itself_is_served(harness: Harness) -> None:
    """The control: the real id does load, so the near-miss checks mean something."""
    status, headers, body = call(harness.reader, f"{COOKIE}={harness.victim}")
    assert status.startswith("200")
    assert body == b"victim|1"
    status, headers, body = call(harness.writer, f"junk=1; {COOKIE}={harness.victim}")
    assert body == b"victim|1"
    (value,) = session_cookies(headers)
    assert harness.store.client_side or value == harness.victim


# -- generated headers ----------------------------------------------------------


def cookie_values(h: Harness) -> st.SearchStrategy[str]:
    return st.one_of(
        st.from_regex(r"[A-Za-z0-9_-]{43}", fullmatch=True),
        st.from_regex(r"[A-Za-z0-9_.-]{1,120}", fullmatch=True),
        st.text(WSGI_CHARS, max_size=60),
        st.sampled_from(TRAVERSALS + h.variants),
        st.builds(lambda ch, n: ch * n, WSGI_CHARS, st.integers(0, 10240)),
        st.text(WSGI_CHARS, max_size=20).map(lambda v: f'"{v}"'),
    )


def cookie_names() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(
            [COOKIE, COOKIE, COOKIE.upper(), f" {COOKIE}", f"{COOKIE} ", "", "x"]
        ),
        st.text(WSGI_CHARS, max_size=12),
    )


def structured_headers(h: Harness) -> st.SearchStrategy[str]:
    """``name=value`` pairs, often naming the session cookie, joined oddly."""
    pair = st.one_of(
        st.builds(lambda n, v: f"{n}={v}", cookie_names(), cookie_values(h)),
        st.text(WSGI_CHARS, max_size=20),
    )
    separators = st.sampled_from(["; ", ";", ",", " ; ", ";;", "; ; ", "\x00; "])
    return st.builds(
        lambda sep, pairs: sep.join(pairs), separators, st.lists(pair, max_size=8)
    )


def free_text_headers() -> st.SearchStrategy[str]:
    """Any text a WSGI server could hand over, often with the cookie's name in it."""
    text = st.text(WSGI_CHARS, max_size=300)
    wide = st.text(ANY_CHARS, max_size=100)
    return st.one_of(
        text,
        st.builds(lambda a, b: f"{a}{COOKIE}={b}", text, text),
        st.builds(lambda a, b: f"{a}{COOKIE}={b}", wide, wide),
    )


HYPOTHESIS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)


@HYPOTHESIS
@pytest.mark.slow  # hypothesis: many examples per store
@given(data=st.data())
def test_generated_structured_cookies(harness: Harness, data: st.DataObject) -> None:
    header = data.draw(structured_headers(harness), label="Cookie")
    check_read(harness, header)
    check_write(harness, header)


@HYPOTHESIS
@pytest.mark.slow  # hypothesis: many examples per store
@given(header=free_text_headers())
def test_generated_free_text_cookies(harness: Harness, header: str) -> None:
    check_read(harness, header)
    check_write(harness, header)


def test_values_as_base64_of_control_bytes(harness: Harness) -> None:
    """Ids that decode to odd bytes are still just unknown ids."""
    for raw in (b"\x00" * 32, b"\xff" * 32, b"../../etc/passwd" * 2):
        value = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        check_read(harness, f"{COOKIE}={value}")
        check_write(harness, f"{COOKIE}={value}")
