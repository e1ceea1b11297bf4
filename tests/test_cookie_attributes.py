"""The cookie's attributes in the configurations real sites use.

A ``cookie_domain`` that no browser can keep (a label longer than DNS
allows, a name longer than 253 characters) is a ConfigError at startup, not
a ``UnicodeError`` on every response that sets the cookie; ``wsgisession
check`` warns about a lifetime longer than browsers keep a cookie (400
days), and does not claim that a cookie which SameSite=None or Partitioned
makes Secure travels over plain http.
"""

from __future__ import annotations

from typing import Any

import pytest
from helpers import call, increment_app

from wsgisession import SessionMiddleware
from wsgisession.config import parse_settings
from wsgisession.deploycheck import deploy_warnings
from wsgisession.errors import ConfigError
from wsgisession.stores import MemoryStore

LABEL_63 = "a" * 63


def set_cookie(app: Any) -> str:
    (cookie,) = [v for k, v in call(app, "counter", None) if k == "Set-Cookie"]
    return cookie


@pytest.mark.parametrize(
    "domain",
    [
        "a" * 64 + ".example.com",  # a DNS label has 63 characters at most
        "www." + "b" * 64,
        ".".join([LABEL_63] * 4) + ".com",  # 260 characters: no host is that long
    ],
)
def test_a_domain_no_host_can_have_is_refused_at_startup(domain: str) -> None:
    with pytest.raises(ConfigError, match="'cookie_domain'"):
        SessionMiddleware(increment_app, MemoryStore(), cookie_domain=domain)
    with pytest.raises(ConfigError, match="'wsgisession.cookie_domain'"):
        parse_settings({"wsgisession.cookie_domain": domain}, "wsgisession.")


@pytest.mark.parametrize(
    "domain",
    [
        LABEL_63 + ".example.com",
        "." + ".".join([LABEL_63] * 3) + "." + "c" * 61,  # 253 after the dot
        ".Example.COM",
        "localhost",
        "127.0.0.1",
    ],
)
def test_the_longest_and_odd_domains_are_sent(domain: str) -> None:
    app = SessionMiddleware(increment_app, MemoryStore(), cookie_domain=domain)
    assert f"; Domain={domain.lstrip('.')};" in set_cookie(app)


def test_check_warns_about_a_lifetime_browsers_cut_to_400_days() -> None:
    settings, spec = parse_settings(
        {"store": "memory", "cookie_secure": "true", "cookie_age": str(2 * 365 * 86400)}
    )
    (warning,) = deploy_warnings(settings, spec)
    assert warning.startswith("cookie_age = 63072000") and "400 days" in warning
    for keys in ({"cookie_age": str(400 * 86400)}, {"expire_at_browser_close": "1"}):
        settings, spec = parse_settings(
            {"store": "memory", "cookie_secure": "true", "cookie_age": "63072000"}
            | keys
        )
        assert deploy_warnings(settings, spec) == []


@pytest.mark.parametrize(
    "keys", [{"cookie_samesite": "none"}, {"cookie_partitioned": "true"}]
)
def test_check_does_not_call_a_cookie_made_secure_insecure(
    keys: dict[str, str],
) -> None:
    settings, spec = parse_settings({"store": "memory", **keys})
    assert settings.cookie_secure is False
    app = SessionMiddleware(increment_app, spec.build(), settings=settings)
    assert "; Secure;" in set_cookie(app)
    assert deploy_warnings(settings, spec) == []
