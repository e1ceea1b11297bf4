"""A Pyramid app moving from Pyramid's own session factories to wsgisession.

docs/migrating.rst ("From Pyramid's sessions") gives the settings that keep
the cookie of ``SignedCookieSessionFactory`` (and ``pyramid_redis_sessions``)
as it was; these tests run the real Pyramid factory beside wsgisession with
those settings and compare what the browser is sent. Settings left over
from ``pyramid_redis_sessions`` stop startup, as Beaker's do.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import webtest
from pyramid.config import Configurator
from pyramid.httpexceptions import HTTPFound
from pyramid.response import Response
from pyramid.session import SignedCookieSessionFactory

from wsgisession.cli import main
from wsgisession.config import parse_settings
from wsgisession.contrib.pyramid import make_wsgi_app
from wsgisession.errors import ConfigError

MIGRATING = Path(__file__).parent.parent / "docs" / "migrating.rst"

#: docs/migrating.rst's settings for SignedCookieSessionFactory's defaults.
LIKE_PYRAMIDS_DEFAULTS = {
    "wsgisession.store": "memory",
    "wsgisession.cookie_name": "session",
    "wsgisession.cookie_age": "1200",
    "wsgisession.reissue_time": "0",
    "wsgisession.expire_at_browser_close": "true",
    "wsgisession.cookie_httponly": "false",
}


def write(request: Any) -> Response:
    request.session["user"] = "ann"
    return Response("ok")


def read(request: Any) -> Response:
    return Response(str(request.session.get("user")))


def write_then_redirect(request: Any) -> Response:
    request.session["user"] = "ann"
    raise HTTPFound("/read")


def add_views(config: Configurator) -> None:
    views = {"write": write, "read": read, "redirect": write_then_redirect}
    for name, view in views.items():
        config.add_route(name, f"/{name}")
        config.add_view(view, route_name=name)


def pyramids_own(**parameters: Any) -> webtest.TestApp:
    factory = SignedCookieSessionFactory(
        "seaf5bf2337958ea5df1b7e2da9d9a9e", **parameters
    )
    with Configurator(session_factory=factory) as config:
        add_views(config)
        return webtest.TestApp(config.make_wsgi_app())


def ours(settings: dict[str, str]) -> webtest.TestApp:
    with Configurator(settings=settings) as config:
        config.include("wsgisession.contrib.pyramid")
        add_views(config)
        return webtest.TestApp(make_wsgi_app(config))


def cookie_shape(response: webtest.TestResponse) -> tuple[str, list[str]]:
    """The cookie's name and attributes, without its value."""
    (header,) = response.headers.getall("Set-Cookie")
    pair, *attributes = header.split("; ")
    return pair.partition("=")[0], attributes


def test_the_documented_settings_send_pyramids_default_cookie() -> None:
    theirs = cookie_shape(pyramids_own().get("/write"))
    assert theirs == ("session", ["Path=/", "SameSite=Lax"])
    assert cookie_shape(ours(LIKE_PYRAMIDS_DEFAULTS).get("/write")) == theirs


def test_without_them_the_cookie_is_wsgisessions_own() -> None:
    """What migrating.rst warns of: the defaults are not Pyramid's."""
    name, attributes = cookie_shape(ours({"wsgisession.store": "memory"}).get("/write"))
    assert name == "sessionid"
    assert "Max-Age=1209600" in attributes
    assert "HttpOnly" in attributes


@pytest.mark.slow
def test_a_read_sends_the_cookie_again_as_pyramids_reissue_time_0_does() -> None:
    apps = {"pyramid": pyramids_own(), "ours": ours(LIKE_PYRAMIDS_DEFAULTS)}
    for app in apps.values():
        app.get("/write")
    time.sleep(1.1)  # Pyramid's reissue counts whole seconds since the cookie
    for name, app in apps.items():
        response = app.get("/read")
        assert response.text == "ann", name
        assert cookie_shape(response)[0] == "session", name


def test_a_raised_redirect_saves_where_set_on_exception_false_did_not() -> None:
    """migrating.rst: an HTTP exception below 500 saves either way."""
    theirs = pyramids_own(set_on_exception=False)
    assert theirs.get("/redirect", status=302).headers.getall("Set-Cookie") == []
    app = ours({**LIKE_PYRAMIDS_DEFAULTS, "wsgisession.set_on_exception": "false"})
    assert cookie_shape(app.get("/redirect", status=302))[0] == "session"
    assert app.get("/read").text == "ann"


@pytest.mark.parametrize(
    ("key", "hint"),
    [
        ("redis.sessions.cookie_secure", "wsgisession.cookie_secure"),
        ("redis.sessions.timeout", "wsgisession.cookie_age"),
        ("redis.sessions.cookie_on_exception", "wsgisession.save_on_error"),
        ("redis.sessions.host", "wsgisession.store = redis"),
    ],
)
def test_a_pyramid_redis_sessions_setting_left_over_stops_startup(
    key: str, hint: str
) -> None:
    settings = {"wsgisession.store": "memory", key: "true"}
    with pytest.raises(ConfigError, match="pyramid_redis_sessions") as raised:
        ours(settings)
    assert repr(key) in str(raised.value)
    assert hint in str(raised.value)


def test_make_wsgi_app_alone_refuses_them_too() -> None:
    """An app that sets its own session factory still calls make_wsgi_app."""
    settings = {"wsgisession.store": "memory", "redis.sessions.secret": "x"}
    with Configurator(settings=settings) as config:
        add_views(config)
        with pytest.raises(ConfigError, match="'redis.sessions.secret'"):
            make_wsgi_app(config)


def test_the_include_alone_refuses_them_too() -> None:
    """An app wrapped in a SessionMiddleware by hand only includes the adapter."""
    settings = {"redis.sessions.timeout": "1200"}
    config = Configurator(settings=settings)
    with pytest.raises(ConfigError, match="'redis.sessions.timeout'"):
        config.include("wsgisession.contrib.pyramid")


@pytest.mark.parametrize("key", ["beaker.session.secure", "session.timeout"])
def test_the_include_alone_refuses_pyramid_beakers_keys_too(key: str) -> None:
    """pyramid_beaker's keys are as dropped as pyramid_redis_sessions' in an
    app wrapped by hand: the include refused only the latter, and
    ``beaker.session.secure = true`` was ignored without a word."""
    config = Configurator(settings={key: "true"})
    with pytest.raises(ConfigError, match=f"{key!r} is a Beaker session key"):
        config.include("wsgisession.contrib.pyramid")


def test_the_secret_hint_reads_as_advice() -> None:
    """The message said "use not needed: ..." for ``redis.sessions.secret``."""
    with pytest.raises(ConfigError) as raised:
        ours({"wsgisession.store": "memory", "redis.sessions.secret": "x"})
    assert "use not needed" not in str(raised.value)
    assert "remove it" in str(raised.value)


def test_check_and_a_paste_filter_refuse_them_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The refusal is the settings parser's, as Beaker's keys': ``wsgisession
    check`` of the app's ini says so before a deploy, and a Paste filter
    section (no prefix) refuses them as well."""
    ini = tmp_path / "app.ini"
    ini.write_text(
        "[app:main]\nwsgisession.store = memory\nredis.sessions.cookie_secure = true\n"
    )
    assert main(["check", "--config", f"{ini}#main"]) == 1
    assert "'redis.sessions.cookie_secure'" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="use cookie_secure"):
        parse_settings({"store": "memory", "redis.sessions.cookie_secure": "1"}, "")
    settings, _spec = parse_settings(
        {"redis.sessions.cookie_secure": "true"}, "redis.sessions."
    )  # a prefix chosen as wsgisession's own keeps its keys
    assert settings.cookie_secure is True


def test_migrating_rst_gives_these_settings() -> None:
    text = MIGRATING.read_text(encoding="utf-8")
    section = text.partition("From Pyramid's sessions")[2].partition("\nFrom ")[0]
    for key, value in LIKE_PYRAMIDS_DEFAULTS.items():
        if key != "wsgisession.store":
            assert f"    {key} = {value}\n" in section, key


def test_other_redis_settings_are_the_apps_own() -> None:
    settings = {"wsgisession.store": "memory", "redis.url": "redis://cache"}
    assert ours(settings).get("/write").status_int == 200
