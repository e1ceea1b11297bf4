"""Two apps mounted side by side on one host (``/a`` and ``/b``), over a real server.

The cookie's path is :confval:`cookie_path` from the site's root, ``/`` by
default, not ``SCRIPT_NAME`` (as Django's ``SESSION_COOKIE_PATH`` and
Flask's ``APPLICATION_ROOT``): two apps with their own stores under the
same cookie name share one cookie, and each takes the other's session id
for an unknown one. deploying.rst says so, and that a cookie name (or
path) of each app's own keeps both sessions; these runs are what it says.
"""

from __future__ import annotations

import http.cookiejar
import urllib.request
from typing import Any

import pytest
from test_stacked_error_handlers import wsgiref_server
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from wsgisession import SessionMiddleware
from wsgisession.stores import MemoryStore


def counter(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """Counts visits under ``/count``; shows the count, reading the session, elsewhere."""
    session = environ["wsgisession"]
    if environ["PATH_INFO"] == "/count":
        session["visits"] = session.get("visits", 0) + 1
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(session.get("visits", 0)).encode()]


def visits(opener: urllib.request.OpenerDirector, port: int, path: str) -> int:
    with opener.open(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return int(response.read())


def side_by_side(options_a: dict[str, Any], options_b: dict[str, Any]) -> Any:
    return DispatcherMiddleware(
        counter,
        {
            "/a": SessionMiddleware(counter, store=MemoryStore(), **options_a),
            "/b": SessionMiddleware(counter, store=MemoryStore(), **options_b),
        },
    )


@pytest.mark.slow  # a server of its own
@pytest.mark.parametrize("page_of_b", ["/b/show", "/b/count"])
def test_the_same_cookie_name_and_path_end_each_others_sessions(page_of_b: str) -> None:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with wsgiref_server(side_by_side({}, {})) as port:
        assert visits(opener, port, "/a/count") == 1
        assert visits(opener, port, "/a/count") == 2
        (cookie_of_a,) = [(cookie.path, cookie.value) for cookie in jar]
        assert cookie_of_a[0] == "/"  # not /a: from the site's root
        # /b's store does not know the id: a read deletes the cookie, a
        # write replaces it with a session of /b's.
        assert visits(opener, port, page_of_b) == (page_of_b == "/b/count")
        assert [(cookie.path, cookie.value) for cookie in jar] != [cookie_of_a]
        assert visits(opener, port, "/a/show") == 0  # /a's session is gone


@pytest.mark.parametrize(
    "own", [{"cookie_name": "b_sessionid"}, {"cookie_path": "/b"}], ids=["name", "path"]
)
@pytest.mark.slow  # a server of its own
def test_a_cookie_of_each_apps_own_keeps_both_sessions(own: dict[str, str]) -> None:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    own_a = {key: value.replace("b", "a") for key, value in own.items()}
    with wsgiref_server(side_by_side(own_a, own)) as port:
        assert visits(opener, port, "/a/count") == 1
        assert visits(opener, port, "/b/count") == 1
        assert visits(opener, port, "/b/count") == 2
        assert visits(opener, port, "/a/count") == 2
        assert visits(opener, port, "/b/show") == 2
        assert len(jar) == 2
