"""What Pyramid's own session does that ``request.session`` must do too.

A blank request's subrequest shares the session, and ``copy()`` gives a
plain dict, as on Pyramid's cookie session (a ``dict``).
"""

from __future__ import annotations

from typing import Any

import pytest
import webtest
from pyramid.config import Configurator
from pyramid.request import Request
from pyramid.response import Response
from pyramid.scripting import prepare

from wsgisession import SessionMiddleware
from wsgisession.contrib.pyramid import make_wsgi_app


def sub_app(**views: Any) -> SessionMiddleware:
    """A Pyramid app under the middleware, each view at ``/<name>``."""
    with Configurator(settings={"wsgisession.store": "memory"}) as config:
        config.include("wsgisession.contrib.pyramid")
        for name, view in views.items():
            config.add_route(name, f"/{name}")
            config.add_view(view, route_name=name)
        return make_wsgi_app(config)


def test_a_blank_subrequest_shares_the_parents_session() -> None:
    """Pyramid's documented ``invoke_subrequest(Request.blank(path))``: the
    subrequest's environ is new, without the session; it used to raise
    RuntimeError telling to wrap an app that was wrapped."""

    def parent(request: Any) -> Response:
        request.session["cart"] = ["book"]
        inner = request.invoke_subrequest(Request.blank("/widget"))
        return Response(f"{request.session.get('cart')!r} {inner.text}")

    def widget(request: Any) -> Response:
        request.session["seen"] = True
        return Response(repr(request.session.get("cart")))

    def show(request: Any) -> Response:
        return Response(repr(sorted(request.session.items())))

    app = sub_app(parent=parent, widget=widget, show=show)
    client = webtest.TestApp(app)
    assert client.get("/parent").text == "['book'] ['book']"
    assert client.get("/show").text == repr([("cart", ["book"]), ("seen", True)])


def test_a_blank_subrequest_with_tweens_sees_the_session_in_its_environ() -> None:
    def parent(request: Any) -> Response:
        request.session["n"] = 1
        sub = Request.blank("/widget")
        return request.invoke_subrequest(sub, use_tweens=True)

    def widget(request: Any) -> Response:
        session = request.session
        assert request.environ["wsgisession"] is session.wsgisession
        session["n"] += 1
        return Response(str(session["n"]))

    client = webtest.TestApp(sub_app(parent=parent, widget=widget))
    assert client.get("/parent").text == "2"


def test_copy_gives_a_plain_dict_as_pyramids_own_session() -> None:
    """Pyramid's cookie session is a dict: ``request.session.copy()`` works
    there, and raised AttributeError here."""

    def login(request: Any) -> Response:
        request.session["user"] = "ada"
        return Response("in")

    def snapshot(request: Any) -> Response:
        copied = request.session.copy()
        copied["user"] = "mallory"  # a copy: the session is untouched
        return Response(f"{type(copied).__name__} {request.session['user']}")

    client = webtest.TestApp(sub_app(login=login, snapshot=snapshot))
    client.get("/login")
    assert client.get("/snapshot").text == "dict ada"


def test_a_scripts_request_has_a_session_as_with_pyramids_own() -> None:
    """``pyramid.scripting.prepare`` (what ``pyramid.paster.bootstrap`` and
    pshell use) gives a request no middleware served, for which Pyramid's
    own session factories make a session. It raised RuntimeError telling to
    wrap an app that ``make_wsgi_app`` had wrapped."""

    def login(request: Any) -> Response:
        request.session["user"] = "ada"
        return Response("in")

    def whoami(request: Any) -> Response:
        return Response(request.session["user"])

    app = sub_app(login=login, whoami=whoami)
    client = webtest.TestApp(app)
    client.get("/login")
    registry = app.app.registry
    env = prepare(registry=registry)
    try:
        session = env["request"].session
        assert session.new and dict(session) == {}
        assert session.get_csrf_token() == session.get_csrf_token()
        session.flash("rendered by a script")
        assert session.pop_flash() == ["rendered by a script"]
    finally:
        env["closer"]()
    cookie = f"sessionid={client.cookies['sessionid']}"
    request = Request.blank("/", headers={"Cookie": cookie})
    env = prepare(request=request, registry=registry)
    try:
        assert request.session["user"] == "ada"
        request.session["user"] = "grace"
        request.session.wsgisession.save()  # a script saves what it changes
    finally:
        env["closer"]()
    assert client.get("/whoami").text == "grace"


def test_a_scripts_requests_each_open_their_own_cookies_session() -> None:
    """A script that bootstraps (its request's session used, as by a CSRF
    token) and then prepares a request per user cookie: each request got the
    bootstrap request's session, found as if it had invoked them as
    subrequests, so the script read and saved every user in one session."""

    def login(request: Any) -> Response:
        request.session["user"] = request.params["name"]
        return Response("in")

    def whoami(request: Any) -> Response:
        return Response(request.session.get("user", "nobody"))

    app = sub_app(login=login, whoami=whoami)
    clients = {name: webtest.TestApp(app) for name in ("ada", "grace")}
    for name, client in clients.items():
        client.get("/login", {"name": name})
    registry = app.app.registry
    with prepare(registry=registry) as outer:
        outer["request"].session.get_csrf_token()
        for name, client in clients.items():
            cookie = f"sessionid={client.cookies['sessionid']}"
            request = Request.blank("/", headers={"Cookie": cookie})
            with prepare(request=request, registry=registry):
                assert request.session["user"] == name
                request.session["seen_by_script"] = True
                request.session.wsgisession.save()
        assert "user" not in outer["request"].session
    for name, client in clients.items():
        assert client.get("/whoami").text == name


def test_a_scripts_subrequest_shares_its_session() -> None:
    """The docs: "A subrequest shares the session of the request that invokes
    it". A script's request (its session opened from its cookie) that invokes
    a blank subrequest: the subrequest got an empty session of its own,
    taken for a request the script prepared, not one it invoked."""

    def login(request: Any) -> Response:
        request.session["user"] = request.params["name"]
        return Response("in")

    def whoami(request: Any) -> Response:
        request.session["seen_by_widget"] = True
        return Response(request.session.get("user", "nobody"))

    app = sub_app(login=login, whoami=whoami)
    client = webtest.TestApp(app)
    client.get("/login", {"name": "ada"})
    router = app.app
    cookie = f"sessionid={client.cookies['sessionid']}"
    request = Request.blank("/", headers={"Cookie": cookie})
    with prepare(request=request, registry=router.registry):
        assert request.session["user"] == "ada"
        inner = router.invoke_subrequest(Request.blank("/whoami"))
        assert inner.text == "ada"
        assert request.session["seen_by_widget"] is True


def test_copying_the_pyramid_session_gives_a_snapshot() -> None:
    """copy.copy() of request.session made a second proxy of the same
    session: a "saved" copy changed with the session. It is a dict now,
    as for the Flask session."""
    import copy

    from wsgisession import SessionMiddleware
    from wsgisession.contrib.pyramid import PyramidSession
    from wsgisession.stores import MemoryStore

    middleware = SessionMiddleware(lambda environ, start: [], store=MemoryStore())
    session = PyramidSession(middleware.open_session())
    session["cart"] = ["tea"]
    shallow, deep = copy.copy(session), copy.deepcopy(session)
    session.clear()
    assert shallow == {"cart": ["tea"]} and type(shallow) is dict
    assert deep == {"cart": ["tea"]} and deep["cart"] is not shallow["cart"]


def test_a_prepared_request_the_script_runs_keeps_its_own_session() -> None:
    """A script that bootstraps as one user (its cookie) and then prepares a
    request per user cookie and runs it through the router
    (``invoke_subrequest``): the router marks each request it runs, so the
    prepared request, not a subrequest, got the bootstrap request's session
    (another user's) instead of its own cookie's."""

    def login(request: Any) -> Response:
        request.session["user"] = request.params["name"]
        return Response("in")

    def whoami(request: Any) -> Response:
        return Response(request.session.get("user", "nobody"))

    app = sub_app(login=login, whoami=whoami)
    clients = {name: webtest.TestApp(app) for name in ("ada", "grace")}
    for name, client in clients.items():
        client.get("/login", {"name": name})
    router = app.app
    cookies = {n: f"sessionid={c.cookies['sessionid']}" for n, c in clients.items()}
    admin = Request.blank("/", headers={"Cookie": cookies["ada"]})
    with prepare(request=admin, registry=router.registry):
        assert admin.session["user"] == "ada"
        request = Request.blank("/whoami", headers={"Cookie": cookies["grace"]})
        with prepare(request=request, registry=router.registry):
            assert router.invoke_subrequest(request).text == "grace"
            assert request.session["user"] == "grace"


def test_a_prepared_request_keeps_its_own_session_after_the_router_ran_it() -> None:
    """As above, with a view that never touched the session: the script
    reads the prepared request's session only once the router is done
    with it. The router's mark stays on the request, and it got the
    bootstrap request's session (another user's) again."""

    def ping(request: Any) -> Response:
        return Response("pong")

    def login(request: Any) -> Response:
        request.session["user"] = request.params["name"]
        return Response("in")

    app = sub_app(login=login, ping=ping)
    clients = {name: webtest.TestApp(app) for name in ("ada", "grace")}
    for name, client in clients.items():
        client.get("/login", {"name": name})
    router = app.app
    cookies = {n: f"sessionid={c.cookies['sessionid']}" for n, c in clients.items()}
    admin = Request.blank("/", headers={"Cookie": cookies["ada"]})
    with prepare(request=admin, registry=router.registry):
        assert admin.session["user"] == "ada"
        request = Request.blank("/ping", headers={"Cookie": cookies["grace"]})
        with prepare(request=request, registry=router.registry):
            assert router.invoke_subrequest(request).text == "pong"
            assert request.session["user"] == "grace"


def test_a_scripts_subrequest_with_the_parents_cookie_shares_its_session() -> None:
    """A script's request that invokes a subrequest made with its own
    headers (``Request.blank(path, headers=request.headers)``, which copies
    its session cookie): the subrequest got a second session of the same
    cookie, never saved, so what the view wrote there was lost."""

    def login(request: Any) -> Response:
        request.session["user"] = request.params["name"]
        return Response("in")

    def whoami(request: Any) -> Response:
        request.session["seen_by_widget"] = True
        return Response(request.session.get("user", "nobody"))

    app = sub_app(login=login, whoami=whoami)
    client = webtest.TestApp(app)
    client.get("/login", {"name": "ada"})
    router = app.app
    cookie = f"sessionid={client.cookies['sessionid']}"
    request = Request.blank("/", headers={"Cookie": cookie})
    with prepare(request=request, registry=router.registry):
        assert request.session["user"] == "ada"
        inner = Request.blank("/whoami", headers=request.headers)
        assert router.invoke_subrequest(inner).text == "ada"
        assert request.session.get("seen_by_widget") is True
        assert inner.session.wsgisession is request.session.wsgisession


@pytest.mark.parametrize("copied", [True, False], ids=["its-headers", "blank"])
def test_a_subrequest_of_a_request_the_script_runs_shares_that_requests_session(
    copied: bool,
) -> None:
    """A script (its request without a cookie) runs a user's request through
    the router, whose view invokes a subrequest before it touched its own
    session: the subrequest made with the view's headers got a second
    session of the user's cookie, and what it wrote was lost; a blank one
    got the script's session instead of the user's."""

    def login(request: Any) -> Response:
        request.session["user"] = request.params["name"]
        return Response("in")

    def widget(request: Any) -> Response:
        request.session["seen_by_widget"] = True
        return Response(request.session.get("user", "nobody"))

    def page(request: Any) -> Response:
        headers = request.headers if copied else {}
        inner = request.invoke_subrequest(Request.blank("/widget", headers=headers))
        return Response(f"{inner.text} {request.session.get('seen_by_widget')}")

    app = sub_app(login=login, widget=widget, page=page)
    client = webtest.TestApp(app)
    client.get("/login", {"name": "grace"})
    router = app.app
    script = Request.blank("/")
    with prepare(request=script, registry=router.registry):
        script.session["job"] = "nightly"
        cookie = f"sessionid={client.cookies['sessionid']}"
        request = Request.blank("/page", headers={"Cookie": cookie})
        assert router.invoke_subrequest(request).text == "grace True"
        assert "seen_by_widget" not in script.session
