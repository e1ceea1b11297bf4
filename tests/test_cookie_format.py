"""The cookie fast paths give exactly what werkzeug gives.

``Set-Cookie`` headers come from a template made once per settings object,
and plain ``Cookie`` headers are split without werkzeug's parser; both
must agree with werkzeug on every input, the odd ones included.
"""

from __future__ import annotations

import pytest
from helpers import dump_cookie_header, fake_clock
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from werkzeug.http import dump_cookie, http_date
from werkzeug.sansio.http import parse_cookie

from wsgisession import cookie_header, cookies
from wsgisession.config import Settings

NAMES = st.from_regex(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,12}", fullmatch=True)
PATHS = st.from_regex(r"/[!-:<-~]{0,12}", fullmatch=True)
DOMAINS = st.none() | st.from_regex(
    r"\.?[A-Za-z0-9_-]{1,8}(\.[a-z]{1,4}){0,2}", fullmatch=True
)
ALL_SETTINGS = st.builds(
    Settings,
    cookie_name=NAMES,
    cookie_path=PATHS,
    cookie_domain=DOMAINS,
    cookie_httponly=st.booleans(),
    cookie_samesite=st.sampled_from(["Lax", "Strict", "None", False]),
    cookie_partitioned=st.booleans(),
)
VALUES = st.one_of(
    st.from_regex(r"[A-Za-z0-9_-]{43}", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9_.-]{1,80}", fullmatch=True),  # signed cookies
    st.text(st.characters(min_codepoint=0, max_codepoint=0x2FF), max_size=20),
)
AGES = st.none() | st.integers(-100, 10**9)


def werkzeug_header(
    settings: Settings, value: str, max_age: int | None, secure: bool
) -> str:
    return dump_cookie_header(settings, secure, value, max_age, 1_700_000_000)


@pytest.mark.slow  # hypothesis: many examples
@hypothesis_settings(max_examples=150)
@given(ALL_SETTINGS, VALUES, AGES, st.booleans())
def test_set_cookie_is_what_dump_cookie_makes(settings, value, max_age, secure):
    expected = werkzeug_header(settings, value, max_age, secure)
    with fake_clock(1_700_000_000.0):
        header = cookies.session_cookie(settings, value, max_age, secure)
    assert header == ("Set-Cookie", expected)


@given(ALL_SETTINGS, st.booleans())
def test_deleting_cookie_is_what_dump_cookie_makes(settings, secure):
    expected = dump_cookie(
        settings.cookie_name,
        "",
        max_age=0,
        expires=0,
        path=settings.cookie_path,
        domain=settings.cookie_domain,
        secure=secure,
        samesite=settings.cookie_samesite or None,
        partitioned=settings.cookie_partitioned,
        max_size=0,
    )
    assert cookies.deleting_cookie(settings, secure) == ("Set-Cookie", expected)


def test_a_header_is_made_afresh_for_another_second_value_or_settings() -> None:
    settings, value = Settings(), "k" * 43
    with fake_clock(1_700_000_000.0) as clock:
        first = cookies.session_cookie(settings, value, 60, False)
        assert cookies.session_cookie(settings, value, 60, False) is first
        assert first == ("Set-Cookie", werkzeug_header(settings, value, 60, False))
        clock.advance(1)
        next_second = cookies.session_cookie(settings, value, 60, False)
        other_value = cookies.session_cookie(settings, "j" * 43, 60, False)
        other_settings = cookies.session_cookie(
            Settings(cookie_name="other"), value, 60, False
        )
    assert f"Expires={http_date(1_700_000_061)}" in next_second[1]
    assert other_value[1].startswith("sessionid=" + "j" * 43)
    assert other_settings[1].startswith("other=" + value)


@pytest.mark.parametrize("max_age", [None, 0, 60, 1209600])
@pytest.mark.parametrize("secure", [False, True])
def test_default_set_cookie_is_what_dump_cookie_makes(max_age, secure):
    settings = Settings(cookie_domain="example.com", cookie_partitioned=secure)
    with fake_clock(1_700_000_000.0):
        header = cookies.session_cookie(settings, "k" * 43, max_age, secure)
    assert header == (
        "Set-Cookie",
        werkzeug_header(settings, "k" * 43, max_age, secure),
    )


def test_the_template_is_made_once_per_settings_object():
    settings = Settings()
    template = cookies.cookie_template(settings, False)
    assert template is not None
    assert cookies.cookie_template(settings, False) is template
    assert cookies.cookie_template(settings, True) is not template


def test_a_new_settings_object_never_gets_another_ones_template():
    """Settings dropped (the cache is emptied when full) may share an id: never a header."""
    for number in range(3 * cookies._MAX_TEMPLATES):
        name = f"sid{number}"
        header = cookies.session_cookie(Settings(cookie_name=name), "v", 60, False)[1]
        assert header.startswith(f"{name}=v; ")


def test_a_name_containing_a_placeholder_falls_back_to_werkzeug():
    settings = Settings(cookie_name="wsgisessionvaluemark")
    assert cookies.cookie_template(settings, False) is None
    with fake_clock(1_700_000_000.0):
        header = cookies.session_cookie(settings, "abc", 60, False)[1]
    assert header == werkzeug_header(settings, "abc", 60, False)


# -- reading --------------------------------------------------------------------

LATIN_1 = st.characters(min_codepoint=0, max_codepoint=255)
PAIR_NAMES = st.sampled_from(
    ["sessionid", "sessionid", "other", "x", "sessionidx", "", "=sessionid"]
)
PAIR_VALUES = st.one_of(
    st.from_regex(r"[A-Za-z0-9_-]{43}", fullmatch=True),
    st.text(st.sampled_from('ab=; \t"\\,é\x00'), max_size=8),
    st.text(LATIN_1, max_size=10),
)
SEPARATORS = st.sampled_from(["; ", "; ", ";", " ; ", ";;", "\t; ", ", "])
HEADERS = st.one_of(
    st.builds(
        lambda sep, pairs: sep.join(f"{n}={v}" for n, v in pairs),
        SEPARATORS,
        st.lists(st.tuples(PAIR_NAMES, PAIR_VALUES), max_size=6),
    ),
    # As browsers send it: "; " between pairs, bare names among them.
    st.lists(
        st.one_of(
            st.builds(lambda n, v: f"{n}={v}", PAIR_NAMES, PAIR_VALUES),
            PAIR_NAMES,
        ),
        max_size=8,
    ).map("; ".join),
    st.text(LATIN_1, max_size=60),
    st.text(st.sampled_from("sessionid=; \t\"'x"), max_size=30),
)


def werkzeug_per_pair(text: str, name: str) -> list[str]:
    """werkzeug's reading of each ";"-separated pair: as browsers split the
    header (no value holds ";", quoted or not, RFC 6265)."""
    return [v for pair in text.split(";") for v in parse_cookie(pair).getlist(name)]


@pytest.mark.slow  # hypothesis: many examples
@hypothesis_settings(max_examples=200)
@given(HEADERS, st.sampled_from(["sessionid", "x", "other"]))
def test_cookie_values_are_what_werkzeug_parses(header, name):
    text = header.encode("latin-1").decode("utf-8", "replace")
    expected = werkzeug_per_pair(text, name) if name in header else []
    assert cookie_header.cookie_values(header, name) == expected


#: Pairs of long hostile headers: the name padded with what werkzeug's
#: parser treats as part of it or not, values with quotes and odd spaces.
LONG_PAIR_NAMES = st.sampled_from(
    ["sessionid", "sessionid", " sessionid", "sessionid ", "\tsessionid"]
    + ["\x0bsessionid", "\xa0sessionid", "sessionidx", "xsessionid", "", "="]
)
LONG_PAIR_VALUES = st.one_of(
    st.text(st.sampled_from('ab=; \t"\\\x0b\x0c\r\n\xa0é,'), max_size=6),
    st.sampled_from(["abc", "sessionid"]),
)
LONG_HEADERS = st.builds(
    lambda separator, pairs: separator.join(pairs),
    st.sampled_from(["; ", ";", " ; ", ";;", "\t;", "; \x0b"]),
    st.lists(
        st.one_of(
            st.builds(lambda n, v: f"{n}={v}", LONG_PAIR_NAMES, LONG_PAIR_VALUES),
            LONG_PAIR_NAMES,
        ),
        max_size=90,
    ),
)


@pytest.mark.slow  # hypothesis: many long headers
@hypothesis_settings(max_examples=500)
@given(LONG_HEADERS, st.booleans(), st.sampled_from([1, 2, 16]))
def test_the_bounded_reading_of_long_headers_is_werkzeugs(header, quotes, most_pairs):
    """Past 16 names the header is read pair by pair, at most ``most_pairs``
    of the name: without quotes that is werkzeug's reading of the whole
    header; a bounded reading is its start, and says when pairs were left."""
    header = header if quotes else header.replace('"', "")
    text = header.encode("latin-1", "replace").decode("utf-8", "replace")
    expected = werkzeug_per_pair(text, "sessionid") if "sessionid" in header else []
    if '"' not in text and "sessionid" in header:
        assert expected == parse_cookie(text).getlist("sessionid")
    assert cookie_header.cookie_values(header, "sessionid") == expected
    values, unread = cookie_header.first_cookie_values(header, "sessionid", most_pairs)
    assert values == expected[: len(values)]
    assert unread or values == expected


@pytest.mark.parametrize(
    "header",
    ["sessionid=abc", "sessionid=", "sessionid=a=b", "sessionid=a,b\x00", "sessionid"],
)
def test_a_lone_pair_reads_as_werkzeug_reads_it(header):
    assert cookie_header.cookie_values(header, "sessionid") == parse_cookie(
        header
    ).getlist("sessionid")


def test_plain_headers_take_the_fast_path_with_the_same_result():
    header = (
        "a=1; sessionid=abc; b=x=y;sessionid=def; =sessionid=x; ;c=\x00; "
        "d=1 sessionid=x; sessionidx; e=sessionid;  sessionid=; xsessionid=y"
    )
    expected = ["abc", "def", ""]
    assert cookie_header._plain_values(header, "sessionid") == expected
    assert cookie_header.cookie_values(header, "sessionid") == expected
    assert parse_cookie(header).getlist("sessionid") == expected


@pytest.mark.parametrize(
    "header",
    [
        'a="x; sessionid=abc; b="',  # a quote never spans ";" (cookie sandwich)
        "a=1;\tsessionid=abc",
        "a=1; sessionid =abc",
        "a=1; sessionid=ab c",
        "a=1; sessionid=abc ; b=2",
        "a=" + "sessionid" * 17,  # many names: one pass of werkzeug's parser
        "; ".join(["sessionid=x"] * 17),
        "a=1; sessionid; sessionid=abc",  # a bare name reads as ""
    ],
)
def test_headers_werkzeug_must_read_leave_the_fast_path(header):
    assert cookie_header._plain_values(header, "sessionid") is None
    assert cookie_header.cookie_values(header, "sessionid") == werkzeug_per_pair(
        header, "sessionid"
    )


def test_a_host_prefixed_cookie_from_the_middleware_is_what_dump_cookie_makes():
    """The template serves the security round's options too: __Host- name,
    Secure, Path=/, no Domain, and Cache-Control: private on the response."""
    from wsgisession import SessionMiddleware
    from wsgisession.stores import MemoryStore

    def app(environ, start_response):
        environ["wsgisession"]["n"] = 1
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    settings = Settings(cookie_name="__Host-sid", cookie_secure=True)
    middleware = SessionMiddleware(app, MemoryStore(), settings=settings)
    sent: list[tuple[str, str]] = []
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "wsgi.url_scheme": "https"}
    with fake_clock(1_700_000_000.0):
        b"".join(middleware(environ, lambda status, headers, *a: sent.extend(headers)))
    (cookie,) = [value for name, value in sent if name == "Set-Cookie"]
    key = cookie.split(";", 1)[0].removeprefix("__Host-sid=")
    assert len(key) == 43
    assert cookie == werkzeug_header(settings, key, settings.cookie_age, True)
    assert (
        cookie.startswith("__Host-sid=") and "Secure" in cookie and "Path=/" in cookie
    )
    assert "Domain" not in cookie
    assert ("Cache-Control", "private") in sent
