"""A POST that Pyramid's CSRF check refuses stores no session.

Pyramid's check reads the session's token, which makes one in a session
that had none; the refused request's 400 page shows nobody that token, yet
saving it stored a record per anonymous POST (51 POSTs: 51 rows), each
living ``cookie_age``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import webtest
from helpers import sqlite_rows
from pyramid.config import Configurator
from pyramid.csrf import (
    LegacySessionCSRFStoragePolicy,
    SessionCSRFStoragePolicy,
    get_csrf_token,
)
from pyramid.exceptions import BadCSRFToken
from pyramid.response import Response

from wsgisession.contrib.pyramid import make_wsgi_app
from wsgisession.keys import generate_key

POLICIES = {
    "default": None,
    "legacy": LegacySessionCSRFStoragePolicy(),
    "session": SessionCSRFStoragePolicy(key="_token_"),
}


def make_client(
    tmp_path: Path, policy: Any, refusal_page: bool = False
) -> tuple[webtest.TestApp, Path]:
    """``/token`` renders the token, ``/submit`` needs it (``require_csrf``);
    with ``refusal_page``, a refusal renders the form again, with a token."""

    def refused(request: Any) -> Response:
        token = get_csrf_token(request)
        return Response(f'<input name="csrf_token" value="{token}">', status=400)

    def token(request: Any) -> Response:
        return Response(get_csrf_token(request))

    def submit(request: Any) -> Response:
        request.session["submitted"] = True
        return Response("ok")

    path = tmp_path / "sessions.sqlite3"
    settings = {"wsgisession.store": "sqlite", "wsgisession.sqlite_path": str(path)}
    with Configurator(settings=settings) as config:
        config.include("wsgisession.contrib.pyramid")
        if policy is not None:
            config.set_csrf_storage_policy(policy)
        config.set_default_csrf_options(require_csrf=True)
        config.add_route("token", "/token")
        config.add_view(token, route_name="token", request_method="GET")
        config.add_route("submit", "/submit")
        config.add_view(submit, route_name="submit", request_method="POST")
        if refusal_page:
            config.add_view(refused, context=BadCSRFToken)
        app = make_wsgi_app(config)
    return webtest.TestApp(app), path


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("cookie", ["none", "forged"])
def test_refused_anonymous_posts_store_nothing(
    tmp_path: Path, policy: str, cookie: str
) -> None:
    client, path = make_client(tmp_path, POLICIES[policy])
    headers = {} if cookie == "none" else {"Cookie": f"sessionid={generate_key()}"}
    for _ in range(5):
        response = client.post(
            "/submit", {"csrf_token": "guess"}, headers=headers, status=400
        )
        assert not any(
            "Max-Age=0" not in value for value in response.headers.getall("Set-Cookie")
        ), "no new session cookie"
    client.get("/token", headers=headers)  # the app's own first save
    assert sqlite_rows(path) == 1


@pytest.mark.parametrize("policy", POLICIES)
def test_a_refused_post_of_a_live_session_keeps_its_token(
    tmp_path: Path, policy: str
) -> None:
    client, path = make_client(tmp_path, POLICIES[policy])
    token = client.get("/token").text
    client.post("/submit", {"csrf_token": "guess"}, status=400)
    assert client.get("/token").text == token
    client.post("/submit", {"csrf_token": token})
    assert sqlite_rows(path) == 1


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("cookie", ["none", "expired"])
def test_the_token_a_refusal_page_shows_is_kept(
    tmp_path: Path, policy: str, cookie: str
) -> None:
    """An exception view for BadCSRFToken may render the form again with a
    token (a login form after the session expired): that token must be
    stored, or every resubmission is refused again (the token used to be
    dropped after the exception view ran)."""
    client, _ = make_client(tmp_path, POLICIES[policy], refusal_page=True)
    if cookie == "expired":
        client.set_cookie("sessionid", generate_key())
    page = client.post("/submit", {"csrf_token": "stale"}, status=400)
    match = re.search(r'value="([^"]+)"', page.text)
    assert match is not None
    assert client.post("/submit", {"csrf_token": match[1]}).text == "ok"
