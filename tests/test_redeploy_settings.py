"""Settings changed between deploys, with sessions alive in browsers and the store.

Each test runs a middleware of the old settings and one of the new over one
store, and one browser (webtest's cookie jar keeps Path and Domain, and
sends the longer path first, then the older cookie, as browsers do):

* upgrading.rst: another ``cookie_path`` or ``cookie_domain`` under the
  same ``cookie_name`` leaves the old cookie in the browser, which the app
  can neither delete nor tell apart; sent first, it wins (the first value
  the store knows, API.md). With the signed cookie store, changes saved
  since are not seen there, and a logout leaves the user logged in there; a
  server-side session the old cookie names shadows a login made outside
  the old path. Renaming the cookie in the same deploy ends every session
  once, and nothing more. The page said none of this.
* upgrading.rst: a rolling deploy that changes the serializer or the store
  ends a session at each switch between the old and the new processes.
* secrets.rst's recipe splits ``SESSION_SECRET_FALLBACKS`` on whitespace
  and passes the list to ``SignedCookieStore``: ``old1,old2`` became one
  key holding both, which verified no cookie, so the rotation logged every
  user out, with no error at startup (the ini file refused it already).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from typing import Any

import pytest
import webtest
from test_docs import DOCS

from wsgisession import SessionMiddleware
from wsgisession.errors import ConfigError
from wsgisession.stores import MemoryStore, SignedCookieStore
from wsgisession.stores.base import Store

SECRET, OLD, OLDER = (secrets.token_urlsafe(32) for _ in range(3))
HOST = "www.example.com"


def site(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """``?login=U`` logs U in, ``?logout`` logs out, ``?inc`` counts; the
    body is ``user count``."""
    session = environ["wsgisession"]
    query = environ["QUERY_STRING"]
    if query.startswith("login="):
        session.cycle_key()
        session["user"] = query.removeprefix("login=")
    elif query == "logout":
        session.flush()
    elif query == "inc":
        session["n"] = session.get("n", 0) + 1
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{session.get('user')} {session.get('n')}".encode()]


def stores() -> list[Store]:
    return [SignedCookieStore(SECRET), MemoryStore()]


def deploy(store: Store, old: dict[str, Any], new: dict[str, Any]) -> tuple[Any, Any]:
    """The old and the new process over ``store``."""
    return (
        SessionMiddleware(site, store=store, **old),
        SessionMiddleware(site, store=store, **new),
    )


def browser(app: Any) -> webtest.TestApp:
    return webtest.TestApp(app, extra_environ={"HTTP_HOST": HOST})


def on(browser: webtest.TestApp, app: Any, url: str) -> str:
    browser.app = app
    return str(browser.get(url).text)


# -- cookie_path and cookie_domain under the same name (upgrading.rst) ----------------

CHANGES = {
    "path": ({"cookie_path": "/app"}, {"cookie_path": "/"}),
    "domain": ({"cookie_domain": "example.com"}, {}),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_the_cookie_stores_old_cookie_still_wins_as_upgrading_says(
    change: str,
) -> None:
    old, new = deploy(SignedCookieStore(SECRET), *CHANGES[change])
    user = browser(old)
    assert on(user, old, "/app/x?login=ann") == "ann None"
    assert on(user, new, "/app/x?inc") == "ann 1"
    assert on(user, new, "/app/x?inc") == "ann 1"  # the old cookie was read again
    assert on(user, new, "/app/x?logout") == "None None"
    assert on(user, new, "/app/x") == "ann None"  # still logged in there


def test_a_server_side_session_under_the_old_path_shadows_a_new_login() -> None:
    old, new = deploy(MemoryStore(), *CHANGES["path"])
    user = browser(old)
    on(user, old, "/app/shop?inc")  # a session saved under the old path
    assert on(user, new, "/login?login=ann") == "ann None"
    assert on(user, new, "/home") == "ann None"
    assert on(user, new, "/app/home") == "None 1"  # as upgrading.rst says


@pytest.mark.parametrize("store", stores(), ids=["cookie", "memory"])
@pytest.mark.parametrize("change", list(CHANGES))
def test_renaming_the_cookie_with_the_change_ends_sessions_once(
    store: Store, change: str
) -> None:
    before, after = CHANGES[change]
    old, new = deploy(store, before, {**after, "cookie_name": "sid"})
    user = browser(old)
    on(user, old, "/app/x?login=ann")
    assert on(user, new, "/app/x?inc") == "None 1"  # the old session ended
    assert on(user, new, "/login?login=bob") == "bob 1"
    assert on(user, new, "/app/x?inc") == "bob 2"
    assert on(user, new, "/app/x?logout") == "None None"
    assert on(user, new, "/app/x") == "None None"
    assert on(user, new, "/x") == "None None"


def test_upgrading_names_the_cookie_attributes_that_leave_the_old_cookie() -> None:
    page = (DOCS / "upgrading.rst").read_text()
    title = "Changes that leave the old cookie behind\n"
    section = page.split(title, 1)[1].split("\n", 1)[1]  # past the underline
    section = re.split(r"\n[^\n]+\n-{3,}\n", section)[0]  # to the next title
    for option in ("cookie_path", "cookie_domain", "cookie_name"):
        assert f":confval:`{option}`" in section


# -- rolling deploys that change the serializer or the store -------------------------


def counts(old: Any, new: Any) -> list[str]:
    """What one browser sees, counting on the old and the new process in turn."""
    user = browser(old)
    return [on(user, app, "/?inc") for app in (old, new, old, new, new)]


def test_another_serializer_in_a_rolling_deploy_ends_the_session_at_each_switch() -> (
    None
):
    old, new = deploy(MemoryStore(), {}, {"serializer": "pickle"})
    assert counts(old, new) == ["None 1", "None 1", "None 1", "None 1", "None 2"]


def test_another_store_in_a_rolling_deploy_ends_the_session_at_each_switch() -> None:
    old = SessionMiddleware(site, store=MemoryStore())
    new = SessionMiddleware(site, store=MemoryStore())
    assert counts(old, new) == ["None 1", "None 1", "None 1", "None 1", "None 2"]


# -- fallbacks of secrets.rst's recipe -----------------------------------------------


@pytest.mark.parametrize(
    "text",
    [f"{OLD},{OLDER}", f"{OLD}, {OLDER}", f"{OLD} ,{OLDER}"],
    ids=["comma", "comma-space", "space-comma"],
)
def test_fallbacks_split_from_a_comma_separated_variable_are_refused(
    text: str,
) -> None:
    """secrets.rst: ``os.environ.get("SESSION_SECRET_FALLBACKS", "").split()``."""
    with pytest.raises(ConfigError, match="not commas") as caught:
        SignedCookieStore(SECRET, fallbacks=text.split())
    assert OLD not in str(caught.value) and OLDER not in str(caught.value)


def test_fallbacks_split_on_whitespace_verify_the_old_cookies() -> None:
    signed = {}
    for key in (OLD, OLDER):
        session = SessionMiddleware(site, store=SignedCookieStore(key)).open_session()
        session["user"] = "ann"
        session.save()
        signed[key] = session.session_key
    store = SignedCookieStore(SECRET, fallbacks=f"{OLD}\n{OLDER}".split())
    app = SessionMiddleware(site, store=store)
    for key in (OLD, OLDER):
        assert app.open_session(signed[key])["user"] == "ann"


@pytest.mark.parametrize(
    "key",
    [
        b"Zq8,Lm2" + b"x56350c6a55fe0f898106b0231f45f1d977636a9",
        "x56350c6a55fe0f898106b0231f45f1d977636a9" + ",",
        "\xe9," * 10 + "0123456789abcdef",
    ],
)
def test_a_fallback_holding_a_comma_alone_is_still_one_key(key: str | bytes) -> None:
    """A key of ``pwgen -y`` may hold a comma: it is no list of keys."""
    store = SignedCookieStore(SECRET, fallbacks=[key])
    assert repr(store) == "SignedCookieStore(<1 fallbacks>, encrypt=False)"


def test_random_binary_fallbacks_holding_commas_are_keys() -> None:
    """``os.urandom()`` keys: one 32-byte key in eight holds a comma, and
    one in 256 ends with one; measured as text, their bytes over 0x7f took
    three bytes each. They were refused at startup as a comma-separated
    list, at random (one pair of fallbacks in a hundred)."""
    halves = bytes(range(0x80, 0x90)) + b"," + bytes(range(0xF0, 0x100))
    ending = bytes(range(0x80, 0x9F)) + b","
    store = SignedCookieStore(SECRET, fallbacks=[halves, ending, OLD])
    assert repr(store) == "SignedCookieStore(<3 fallbacks>, encrypt=False)"
