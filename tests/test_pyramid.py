"""Pyramid with ``wsgisession.contrib.pyramid``: the real Pyramid, driven by WebTest."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import session_flows as flows
import webtest
from pyramid.config import Configurator
from pyramid.csrf import SessionCSRFStoragePolicy
from pyramid.interfaces import ISession
from pyramid.response import Response
from zope.interface.verify import verifyObject

from wsgisession import SessionMiddleware
from wsgisession.contrib.pyramid import (
    PyramidSession,
    WsgiSessionFactory,
    make_wsgi_app,
)
from wsgisession.errors import ConfigError
from wsgisession.stores import SQLiteStore
from wsgisession.stores.base import Store


@pytest.fixture(params=flows.STORE_KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    return flows.make_store(request.param, tmp_path)


def visit(request: Any) -> Response:
    session = request.session
    session["visits"] = session.get("visits", 0) + 1
    return Response(str(session["visits"]))


def login(request: Any) -> Response:
    request.session.cycle_key()
    request.session["user"] = request.POST["user"]
    return Response("welcome")


def logout(request: Any) -> Response:
    request.session.invalidate()
    return Response("bye")


def whoami(request: Any) -> Response:
    return Response(str(request.session.get("user")))


def flash(request: Any) -> Response:
    request.session.flash(
        request.POST["message"],
        queue=request.POST.get("queue", ""),
        allow_duplicate=request.POST.get("dup", "yes") == "yes",
    )
    return Response("flashed")


def peek(request: Any) -> Response:
    return Response(repr(request.session.peek_flash(request.GET.get("queue", ""))))


def pop(request: Any) -> Response:
    return Response(repr(request.session.pop_flash(request.GET.get("queue", ""))))


def token(request: Any) -> Response:
    from pyramid.csrf import get_csrf_token

    return Response(get_csrf_token(request))


def submit(request: Any) -> Response:
    return Response("accepted")


def info(request: Any) -> Response:
    session = request.session
    verifyObject(ISession, session)
    return Response(f"{session.new} {session.created!r}")


def configure(config: Configurator) -> None:
    """Routes and views shared by every test app."""
    config.include("wsgisession.contrib.pyramid")
    views = {
        "visit": ("/visit", visit, "GET"),
        "login": ("/login", login, "POST"),
        "logout": ("/logout", logout, "POST"),
        "whoami": ("/whoami", whoami, "GET"),
        "flash": ("/flash", flash, "POST"),
        "peek": ("/peek", peek, "GET"),
        "pop": ("/pop", pop, "GET"),
        "token": ("/token", token, "GET"),
        "submit": ("/submit", submit, "POST"),
        "info": ("/info", info, "GET"),
    }
    for name, (path, view, method) in views.items():
        config.add_route(name, path)
        config.add_view(view, route_name=name, request_method=method)


def make_app(
    store: Store, *, csrf_policy: Any = None, **options: Any
) -> tuple[webtest.TestApp, SessionMiddleware]:
    with Configurator() as config:
        configure(config)
        if csrf_policy is not None:
            config.set_csrf_storage_policy(csrf_policy)
        config.set_default_csrf_options(require_csrf=True)
        middleware = SessionMiddleware(config.make_wsgi_app(), store=store, **options)
    return webtest.TestApp(middleware), middleware


def login_as(client: webtest.TestApp, user: str) -> webtest.TestResponse:
    csrf = client.get("/token").text
    return client.post("/login", {"user": user, "csrf_token": csrf})


def logout_with_token(client: webtest.TestApp) -> webtest.TestResponse:
    csrf = client.get("/token").text
    return client.post("/logout", {"csrf_token": csrf})


def test_visits_are_counted_across_requests(store: Store) -> None:
    client, _ = make_app(store)
    flows.check_visits_are_counted(client)


def test_request_session_provides_isession(store: Store) -> None:
    client, _ = make_app(store)
    new, created = client.get("/info").text.split()
    assert new == "True"
    assert float(created) == pytest.approx(time.time(), abs=60)
    client.get("/visit")
    stored_new, stored_created = client.get("/info").text.split()
    assert stored_new == "False"
    time.sleep(0.01)
    client.get("/visit")
    assert client.get("/info").text.split() == ["False", stored_created]


def test_login_cycles_the_key_and_the_old_one_no_longer_loads(store: Store) -> None:
    client, middleware = make_app(store)
    flows.check_login_cycles_the_key(client, middleware, store, login_as)


def test_logout_invalidates_and_the_old_cookie_no_longer_loads(store: Store) -> None:
    client, middleware = make_app(store)
    flows.check_logout_deletes_the_cookie(
        client, middleware, store, login_as, logout_with_token
    )


def test_cookie_attributes_reflect_the_options(store: Store) -> None:
    client, _ = make_app(
        store,
        cookie_name="app_sid",
        cookie_age=3600,
        cookie_domain="example.com",
        cookie_path="/",
        cookie_secure=True,
        cookie_samesite="Strict",
        cookie_httponly=False,
    )
    response = client.get("/visit")
    flows.assert_cookie_attributes(
        flows.session_cookie(response, "app_sid"),
        ["Max-Age=3600", "Domain=example.com", "Path=/", "SameSite=Strict", "Secure"],
        absent=["HttpOnly"],
    )
    assert "Cookie" in response.headers["Vary"]


def test_flash_queues(store: Store) -> None:
    client, _ = make_app(store)
    csrf = client.get("/token").text
    client.post("/flash", {"message": "one", "csrf_token": csrf})
    client.post("/flash", {"message": "one", "csrf_token": csrf})
    client.post("/flash", {"message": "err", "queue": "error", "csrf_token": csrf})
    client.post(
        "/flash",
        {"message": "err", "queue": "error", "dup": "no", "csrf_token": csrf},
    )
    assert client.get("/peek").text == repr(["one", "one"])
    assert client.get("/peek").text == repr(["one", "one"])  # peeking keeps them
    assert client.get("/pop", {"queue": "error"}).text == repr(["err"])
    assert client.get("/pop", {"queue": "error"}).text == "[]"
    assert client.get("/pop").text == repr(["one", "one"])
    assert client.get("/peek").text == "[]"


@pytest.mark.parametrize(
    "policy", [None, SessionCSRFStoragePolicy()], ids=["legacy", "session-policy"]
)
def test_csrf_token_is_checked_on_post(store: Store, policy: Any) -> None:
    client, _ = make_app(store, csrf_policy=policy)
    csrf = client.get("/token").text
    assert len(csrf) >= 32
    assert client.get("/token").text == csrf  # kept in the session
    assert client.post("/submit", {"csrf_token": csrf}).text == "accepted"
    client.post("/submit", {}, status=400)
    client.post("/submit", {"csrf_token": "forged"}, status=400)
    stranger = webtest.TestApp(client.app)
    stranger.post("/submit", {"csrf_token": csrf}, status=400)


def test_changed_marks_the_session_modified(store: Store) -> None:
    middleware = SessionMiddleware(lambda environ, start_response: [], store=store)
    session = PyramidSession(middleware.open_session())
    session["nested"] = {"a": 1}
    session.wsgisession.save()
    session.wsgisession.modified = False
    session.changed()
    assert session.wsgisession.modified is True


def test_invalidated_session_can_start_a_new_one(store: Store) -> None:
    def relogin(request: Any) -> Response:
        request.session.invalidate()
        request.session["user"] = "grace"
        return Response("ok")

    with Configurator() as config:
        configure(config)
        config.add_route("relogin", "/relogin")
        config.add_view(relogin, route_name="relogin")
        middleware = SessionMiddleware(config.make_wsgi_app(), store=store)
    client = webtest.TestApp(middleware)
    key = flows.cookie_value(login_as(client, "ada"))
    new_key = flows.cookie_value(client.get("/relogin"))
    assert new_key != key
    assert not store.exists(key)
    assert client.get("/whoami").text == "grace"


def test_make_wsgi_app_reads_prefixed_settings(tmp_path: Path) -> None:
    settings = {
        "wsgisession.store": "sqlite",
        "wsgisession.sqlite_path": str(tmp_path / "s.sqlite3"),
        "wsgisession.cookie_age": "3600",
        "wsgisession.environ_key": "pyramid.wsgisession",
        "pyramid.reload_templates": "false",
    }
    with Configurator(settings=settings) as config:
        configure(config)
        app = make_wsgi_app(config)
    assert isinstance(app.store, SQLiteStore)
    client = webtest.TestApp(app)
    response = client.get("/visit")
    assert "Max-Age=3600" in flows.session_cookie(response)
    assert client.get("/visit").text == "2"


def test_included_factory_finds_the_session_under_another_prefix() -> None:
    settings = {"sess.store": "memory", "sess.environ_key": "my.session"}
    with Configurator(settings=settings) as config:
        configure(config)
        app = make_wsgi_app(config, prefix="sess.")
    assert app.settings.environ_key == "my.session"
    client = webtest.TestApp(app)
    assert client.get("/visit").text == "1"
    assert client.get("/visit").text == "2"


class Conflict(Exception):
    """What a transaction manager raises for a request worth running again."""


def retrying_policy(environ: dict[str, Any], router: Any) -> Any:
    """A Pyramid execution policy that runs a request again on Conflict, each
    attempt with a new request of the same environ, numbered as pyramid_retry
    numbers them."""
    for attempt in range(3):
        environ["retry.attempt"] = attempt
        with router.request_context(environ) as request:
            try:
                return router.invoke_request(request)
            except Conflict:
                if attempt == 2:
                    raise
    raise AssertionError("unreachable")


def retrying_app(settings: dict[str, str], **views: Any) -> SessionMiddleware:
    """A Pyramid app under :func:`retrying_policy`, each view at ``/<name>``."""
    with Configurator(settings=settings) as config:
        config.include("wsgisession.contrib.pyramid")
        config.set_execution_policy(retrying_policy)
        for name, view in views.items():
            config.add_route(name, f"/{name}")
            config.add_view(view, route_name=name)
        return make_wsgi_app(config)


@pytest.mark.parametrize("store_name", ["memory", "sqlite"])
def test_a_retried_request_does_not_keep_the_failed_attempts_changes(
    store_name: str, tmp_path: Path
) -> None:
    attempts: list[int] = []

    def checkout(request: Any) -> Response:
        request.session["count"] = request.session.get("count", 0) + 1
        request.session.flash("Order placed")
        attempts.append(1)
        if len(attempts) == 1:
            raise Conflict()
        return Response("ok")

    def show(request: Any) -> Response:
        return Response(repr((request.session["count"], request.session.pop_flash())))

    settings = {
        "wsgisession.store": store_name,
        "wsgisession.sqlite_path": str(tmp_path / "s.sqlite3"),
    }
    if store_name == "memory":
        del settings["wsgisession.sqlite_path"]
    client = webtest.TestApp(retrying_app(settings, checkout=checkout, show=show))
    assert client.get("/checkout").text == "ok" and len(attempts) == 2
    assert client.get("/show").text == repr((1, ["Order placed"]))
    attempts.clear()  # again, on the stored session: reloaded for the retry
    assert client.get("/checkout").text == "ok" and len(attempts) == 2
    assert client.get("/show").text == repr((2, ["Order placed"]))


def test_a_retry_that_never_uses_the_session_saves_nothing_of_the_failed_one() -> None:
    attempts: list[int] = []

    def checkout(request: Any) -> Response:
        attempts.append(1)
        if len(attempts) == 1:
            request.session["count"] = 1  # then the transaction conflicts
            raise Conflict()
        return Response("ok")  # the retry never looks at the session

    def show(request: Any) -> Response:
        return Response(repr(request.session.get("count")))

    app = retrying_app({"wsgisession.store": "memory"}, checkout=checkout, show=show)
    client = webtest.TestApp(app)
    response = client.get("/checkout")
    assert response.text == "ok"
    assert "Vary" not in response.headers, "the answering attempt never used it"
    assert client.get("/show").text == "None"


@pytest.mark.parametrize("lock", ["false", "true"])
def test_a_retry_after_a_revocation_sees_no_user(lock: str) -> None:
    seen: list[tuple[Any, dict[str, Any], bool]] = []

    def login(request: Any) -> Response:
        request.session["name"] = "ann"
        request.session.bind_user("42")
        return Response("in")

    def account(request: Any) -> Response:
        session = request.session
        seen.append((session.user_id, dict(session), session.session_key is not None))
        if len(seen) == 1:  # meanwhile, another device signs out everywhere
            assert request.registry["wsgisession"].revoke_user_sessions("42") == 1
            raise Conflict()
        return Response("ok")

    settings = {"wsgisession.store": "memory", "wsgisession.lock": lock}
    app = retrying_app(settings, login=login, account=account)
    client = webtest.TestApp(app)
    client.get("/login")
    key = client.cookies["sessionid"]
    response = client.get("/account")
    assert seen == [("42", {"name": "ann"}, True), (None, {}, False)]
    assert flows.session_cookie(response).startswith("sessionid=;")
    with app.store.lock(key, timeout=0.2, ttl=5):  # the lock went at the end
        pass


def test_a_subrequest_sees_the_parents_unsaved_changes_and_keeps_them() -> None:
    """A subrequest (here of a copy of the request) is no retry: it shares the
    session, changes and all."""

    def parent(request: Any) -> Response:
        request.session["cart"] = ["book"]  # not saved yet
        sub = request.copy()
        sub.path_info = "/widget"
        inner = request.invoke_subrequest(sub)
        return Response(f"{request.session.get('cart')!r} {inner.text}")

    def widget(request: Any) -> Response:
        return Response(repr(request.session.get("cart")))

    def show(request: Any) -> Response:
        return Response(repr(request.session.get("cart")))

    app = retrying_app(
        {"wsgisession.store": "memory"}, parent=parent, widget=widget, show=show
    )
    client = webtest.TestApp(app)
    assert client.get("/parent").text == "['book'] ['book']"
    assert client.get("/show").text == "['book']"


def test_a_retry_whose_subrequest_uses_the_session_first_keeps_its_changes() -> None:
    attempts: list[int] = []

    def parent(request: Any) -> Response:
        attempts.append(1)
        sub = request.copy()  # made before the parent's first use of the session
        sub.path_info = "/widget"
        request.invoke_subrequest(sub)
        cart = request.session.get("cart")
        if len(attempts) == 1:
            raise Conflict()
        return Response(repr(cart))

    def widget(request: Any) -> Response:
        request.session["cart"] = ["book"]
        return Response("ok")

    app = retrying_app({"wsgisession.store": "memory"}, parent=parent, widget=widget)
    assert webtest.TestApp(app).get("/parent").text == "['book']"
    assert len(attempts) == 2


def count_seen(handler: Any, registry: Any) -> Any:
    """A tween that writes to the raw session before Pyramid's NewRequest."""

    def tween(request: Any) -> Any:
        if request.path == "/checkout":
            session = request.environ["wsgisession"]
            session["tween"] = session.get("tween", 0) + 1
        return handler(request)

    return tween


def test_pyramid_retry_starts_each_attempt_from_the_stored_session() -> None:
    """With the real pyramid_retry: the failed attempt's changes go when it
    ends, before the next attempt's tweens write to the session."""
    from pyramid_retry import RetryableException

    attempts: list[int] = []

    def checkout(request: Any) -> Response:
        attempts.append(1)
        if len(attempts) == 1:
            request.session["count"] = 1
            raise RetryableException()
        return Response("ok")  # the retry never uses request.session

    def show(request: Any) -> Response:
        return Response(repr(dict(request.session)))

    settings = {"wsgisession.store": "memory", "retry.attempts": "3"}
    with Configurator(settings=settings) as config:
        config.include("pyramid_retry")
        config.include("wsgisession.contrib.pyramid")
        config.add_tween(f"{__name__}.count_seen")
        for name, view in (("checkout", checkout), ("show", show)):
            config.add_route(name, f"/{name}")
            config.add_view(view, route_name=name)
        app = make_wsgi_app(config)
    client = webtest.TestApp(app)
    assert client.get("/checkout").text == "ok" and len(attempts) == 2
    assert client.get("/show").text == repr({"tween": 1})


def test_make_wsgi_app_rejects_a_misspelled_key() -> None:
    settings = {"wsgisession.store": "memory", "wsgisession.cookie_agee": "60"}
    with Configurator(settings=settings) as config:
        configure(config)
        with pytest.raises(ConfigError, match="cookie_agee"):
            make_wsgi_app(config)


def test_factory_without_middleware_says_so() -> None:
    with Configurator() as config:
        configure(config)
        app = config.make_wsgi_app()
    client = webtest.TestApp(app)
    with pytest.raises(RuntimeError, match="SessionMiddleware"):
        client.get("/visit")
    assert "environ_key='x'" in repr(WsgiSessionFactory("x"))
