"""Deployment warnings of ``wsgisession check``, as Django's ``check --deploy``.

A configuration can be valid and still unsafe in production: these are the
settings worth a second look. They are warnings, not errors (development
over ``http://localhost`` needs ``cookie_secure = false``), so ``check``
prints them and still succeeds.
"""

from __future__ import annotations

import sys
from typing import TextIO

from .config import Settings
from .cookies import fixed_secure
from .stores._shared import DEFAULT_KEY_PREFIX
from .storespec import StoreSpec

__all__ = ["deploy_warnings", "print_deploy_warnings"]

#: Stores whose server other apps may share, so that their keys could collide.
SHARED_SERVER_STORES = ("redis", "memcached")
#: The longest a browser keeps a cookie (RFC 6265bis; Chrome, Firefox).
BROWSER_MAX_AGE = 400 * 86400


def deploy_warnings(settings: Settings, spec: StoreSpec) -> list[str]:
    """The warnings this configuration deserves, one sentence each."""
    found = []
    if fixed_secure(settings) is False:  # SameSite=None, Partitioned force Secure
        found.append(
            "cookie_secure = false: the session cookie is also sent over plain "
            "http, where anyone on the network can read it; set cookie_secure = "
            "true on an HTTPS site (and prefer cookie_name = __Host-sessionid)"
        )
    if settings.cookie_age > BROWSER_MAX_AGE and not settings.expire_at_browser_close:
        found.append(
            f"cookie_age = {settings.cookie_age}: browsers keep a cookie 400 days "
            f"({BROWSER_MAX_AGE} seconds) at most, so a session "
            "not saved again within them ends for its user while its record "
            f"stays in the store; set cookie_age = {BROWSER_MAX_AGE} or less"
        )
    if not settings.cookie_httponly:
        found.append(
            "cookie_httponly = false: JavaScript can read the session id, so one "
            "XSS hole steals every session; set cookie_httponly = true"
        )
    if spec.store == "cookie" and settings.absolute_timeout is None:
        found.append(
            "store = cookie without absolute_timeout: a signed cookie cannot be "
            "revoked, and each save signs it again with a new expiry, so a copy "
            "taken from a browser, or kept after logout, stays valid for as long "
            "as its holder keeps visiting pages that save the session; set "
            "absolute_timeout (86400 for a day) to bound how long any session lives"
        )
    # The default written out (key_prefix = wsgisession:) shares it just the same.
    if spec.store in SHARED_SERVER_STORES and spec.key_prefix in (
        None,
        DEFAULT_KEY_PREFIX,
    ):
        found.append(
            f"key_prefix is the default on store = {spec.store}: every app on the "
            "same server using wsgisession shares one key space, so one app's "
            "session ids are sessions of the other; set key_prefix = myapp: "
        )
    return found


def print_deploy_warnings(
    settings: Settings, spec: StoreSpec, stream: TextIO | None = None
) -> int:
    """Print each warning (to stderr by default); return how many there were."""
    warnings = deploy_warnings(settings, spec)
    out = sys.stderr if stream is None else stream
    for warning in warnings:
        print(f"warning: {warning}", file=out)
    return len(warnings)
