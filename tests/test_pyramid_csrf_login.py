"""Pyramid's CSRF token across a login and a logout, through the real
Pyramid (``require_csrf``) and WebTest, as the docs describe it.

``cycle_key()`` and binding an anonymous session keep the token, as
Pyramid's own session keeps all its data; ``pyramid.csrf.new_csrf_token``
at login rotates it (what Pyramid's tutorial does), after which the token
an attacker may have planted before the login is refused. ``invalidate()``
and binding a session that another user owns start a new token.
"""

from __future__ import annotations

from typing import Any

import pytest
import webtest
from pyramid.config import Configurator
from pyramid.csrf import (
    CookieCSRFStoragePolicy,
    SessionCSRFStoragePolicy,
    get_csrf_token,
    new_csrf_token,
)
from pyramid.response import Response

from wsgisession.contrib.pyramid import make_wsgi_app


def make_client(policy: Any) -> webtest.TestApp:
    """``/token`` renders the token; the POSTs check it (``require_csrf``):
    ``/login`` moves the key as ``how`` says, ``/logout`` invalidates."""

    def token(request: Any) -> Response:
        return Response(get_csrf_token(request))

    def login(request: Any) -> Response:
        how = request.POST["how"]
        if how == "rotate":
            new_csrf_token(request)
        if how == "cycle_key":
            request.session.cycle_key()
        else:
            request.session.bind_user(request.POST["user"])
        return Response("in")

    def logout(request: Any) -> Response:
        request.session.invalidate()
        return Response("out")

    def submit(request: Any) -> Response:
        return Response("accepted")

    with Configurator(settings={"wsgisession.store": "memory"}) as config:
        config.include("wsgisession.contrib.pyramid")
        if policy is not None:
            config.set_csrf_storage_policy(policy)
        config.set_default_csrf_options(require_csrf=True)
        views = (("token", token), ("login", login), ("logout", logout))
        for name, view in (*views, ("submit", submit)):
            config.add_route(name, f"/{name}")
            config.add_view(view, route_name=name)
        return webtest.TestApp(make_wsgi_app(config))


POLICIES = pytest.mark.parametrize(
    "policy", [None, SessionCSRFStoragePolicy()], ids=["legacy", "session-policy"]
)


@POLICIES
@pytest.mark.parametrize("how", ["cycle_key", "bind_user"])
def test_the_token_survives_a_login_that_does_not_rotate_it(
    policy: Any, how: str
) -> None:
    client = make_client(policy)
    before = client.get("/token").text
    client.post("/login", {"how": how, "user": "7", "csrf_token": before})
    assert client.get("/token").text == before
    assert client.post("/submit", {"csrf_token": before}).text == "accepted"


@POLICIES
def test_new_csrf_token_at_login_refuses_the_token_from_before(policy: Any) -> None:
    client = make_client(policy)
    before = client.get("/token").text
    client.post("/login", {"how": "rotate", "user": "7", "csrf_token": before})
    after = client.get("/token").text
    assert after != before
    client.post("/submit", {"csrf_token": before}, status=400)
    assert client.post("/submit", {"csrf_token": after}).text == "accepted"


@POLICIES
def test_logout_and_another_users_login_start_a_new_token(policy: Any) -> None:
    client = make_client(policy)
    first = client.get("/token").text
    client.post("/login", {"how": "bind_user", "user": "7", "csrf_token": first})
    client.post("/login", {"how": "bind_user", "user": "8", "csrf_token": first})
    second = client.get("/token").text
    assert second != first
    client.post("/submit", {"csrf_token": first}, status=400)
    client.post("/logout", {"csrf_token": second})
    third = client.get("/token").text
    assert third not in (first, second)
    client.post("/submit", {"csrf_token": second}, status=400)


def test_the_cookie_policy_keeps_its_token_across_logout_and_another_login() -> None:
    """What the quickstart says of ``CookieCSRFStoragePolicy``: the token
    lives in a cookie of its own, which neither ``invalidate()`` nor
    binding a session another user owns changes; ``new_csrf_token`` at
    login still rotates it."""
    client = make_client(CookieCSRFStoragePolicy())
    first = client.get("/token").text
    client.post("/login", {"how": "bind_user", "user": "7", "csrf_token": first})
    client.post("/login", {"how": "bind_user", "user": "8", "csrf_token": first})
    client.post("/logout", {"csrf_token": first})
    assert client.get("/token").text == first
    client.post("/login", {"how": "rotate", "user": "9", "csrf_token": first})
    assert client.get("/token").text != first
    client.post("/submit", {"csrf_token": first}, status=400)
