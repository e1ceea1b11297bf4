"""The fast paths of ``handling.handle`` send what the general path sends.

``handle`` settles a complete list body itself: ``_settled_as_read`` (a
read that leaves its session as loaded) and ``_send_as_written`` (a changed
session: saved, then the app's headers with the cookie) each stand for
``Response.send_headers(True, True)``. Every scenario here runs twice
through a real :class:`SessionMiddleware` from the same starting store,
once as it is and once with both fast paths turned off, and the two runs
must agree on the status, the headers (in order), the body, the exception,
and what the store holds after: what a fresh request with the returned
cookie reads back, and which records exist. The clock is frozen and the
ids drawn from a seeded source, so both runs make the same cookies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fast_path_runs import (
    ACTIONS,
    CACHE_NO_STORE,
    CACHE_PUBLIC,
    COOKIES,
    ENDINGS,
    EXTRA_HEADERS,
    LAST_MODIFIED,
    MEANWHILE,
    OWN_COOKIE,
    VARY_ACCEPT,
    VARY_ANY,
    VARY_LOWER,
    Scenario,
    run,
)
from helpers import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from wsgisession.response import Response

ALL_ACTIONS = [*sorted(ACTIONS), *MEANWHILE]
#: What most requests do, drawn as often as all the rest together (alone,
#: or after another request's change): each is settled by a fast path
#: unless the settings or the request say otherwise.
COMMON_ACTIONS = ("read", "read_missing", "write", "write_new_key", "nested_write")

OPTIONS = st.fixed_dictionaries(
    {},
    optional={
        "cookie_secure": st.sampled_from([True, False, "auto"]),
        "cookie_samesite": st.sampled_from(["Lax", "Strict", "None", False]),
        "cookie_domain": st.sampled_from([None, "example.com"]),
        "cookie_path": st.sampled_from(["/", "/app"]),
        "cookie_age": st.sampled_from([0, 60, 1209600]),
        "expire_at_browser_close": st.booleans(),
        "save_every_request": st.booleans(),
        "save_on_error": st.booleans(),
        "lock": st.booleans(),
        "private_responses": st.booleans(),
        "reissue_time": st.sampled_from([None, 0, 30]),
        "cookie_partitioned": st.booleans(),
    },
)
SCENARIOS = st.builds(
    Scenario,
    store=st.sampled_from(["memory", "cookie", "sqlite"]),
    options=OPTIONS,
    cookie=st.one_of(st.just("existing"), st.sampled_from(COOKIES)),
    scheme=st.sampled_from(["http", "https"]),
    fetch_mode=st.sampled_from([None, "navigate", "cors"]),
    actions=st.one_of(
        st.tuples(st.sampled_from(COMMON_ACTIONS)),
        st.tuples(st.sampled_from(MEANWHILE), st.sampled_from(COMMON_ACTIONS)),
        st.lists(st.sampled_from(ALL_ACTIONS), max_size=3).map(tuple),
    ),
    after_start=st.booleans(),
    ending=st.sampled_from(ENDINGS),
    status=st.sampled_from(
        ["200 OK", "302 Found", "404 Not Found", "500 Error", "503 Unavailable"]
    ),
    extra_headers=st.lists(st.sampled_from(EXTRA_HEADERS), max_size=3).map(tuple),
    headers_as_tuple=st.booleans(),
    items_as_lists=st.booleans(),
).filter(
    lambda scenario: not (scenario.store == "cookie" and scenario.options.get("lock"))
)


def assert_agree(scenario: Scenario, directory: Path) -> None:
    """Both runs of ``scenario`` send and keep the same."""
    assert run(scenario, directory, fast=True) == run(scenario, directory, fast=False)


# -- the tests ----------------------------------------------------------------------


@pytest.mark.slow
@settings(max_examples=examples(800), deadline=None, database=None)
@given(scenario=SCENARIOS)
def test_fast_and_general_paths_agree(
    scenario: Scenario, tmp_path_factory: pytest.TempPathFactory
) -> None:
    assert_agree(scenario, tmp_path_factory.mktemp("agreement"))


@pytest.mark.slow
@settings(max_examples=examples(5000), deadline=None, database=None)
@given(scenario=SCENARIOS)
def test_fast_and_general_paths_agree_at_length(
    scenario: Scenario, tmp_path_factory: pytest.TempPathFactory
) -> None:
    assert_agree(scenario, tmp_path_factory.mktemp("agreement"))


READ, WRITE, MEANWHILE_WRITE = ("read",), ("write",), ("deleted_meanwhile", "write")
AS_TUPLE_OF_LISTS = {"headers_as_tuple": True, "items_as_lists": True}
SUBREQUEST = {"cookie": "unknown", "fetch_mode": "cors"}
#: By name: whether a fast path settles the scenario, its app's actions and
#: how it differs from ``Scenario()`` otherwise (each fast path's branches,
#: and cases they leave to the general path).
CASES: dict[str, tuple[bool, tuple[str, ...], dict[str, Any]]] = {
    "read": (True, READ, {}),
    "read-vary": (True, READ, {"extra_headers": (VARY_ACCEPT,)}),
    "read-vary-cache": (True, READ, {"extra_headers": (VARY_LOWER, CACHE_PUBLIC)}),
    "read-tuple-of-lists": (True, READ, AS_TUPLE_OF_LISTS),
    "read-last-modified": (True, READ, {"extra_headers": (LAST_MODIFIED,)}),
    "two-cookies": (True, READ, {"store": "sqlite", "cookie": "two_unknown_first"}),
    "read-reissue": (False, READ, {"options": {"reissue_time": 30}}),
    "read-unknown-cookie": (False, READ, {"cookie": "unknown"}),
    "write": (True, WRITE, {}),
    "write-new-sqlite": (True, WRITE, {"cookie": "none", "store": "sqlite"}),
    "write-cookie-store": (True, ("write_new_key",), {"store": "cookie"}),
    "nested-write": (False, ("nested_write",), {"store": "cookie"}),
    "write-vary": (True, WRITE, {"extra_headers": (VARY_ACCEPT,)}),
    "write-vary-public": (
        True,
        WRITE,
        {"extra_headers": (VARY_ACCEPT,), "options": {"private_responses": False}},
    ),
    "write-own-headers": (True, WRITE, {"extra_headers": (CACHE_NO_STORE, OWN_COOKIE)}),
    "write-tuple-of-lists": (True, WRITE, AS_TUPLE_OF_LISTS),
    "write-vary-any": (True, WRITE, {"extra_headers": (VARY_ANY, LAST_MODIFIED)}),
    "write-https": (
        True,
        WRITE,
        {"scheme": "https", "options": {"cookie_secure": "auto"}},
    ),
    "write-browser-close": (
        True,
        WRITE,
        {"options": {"expire_at_browser_close": True}},
    ),
    "expiry-0-write": (True, ("expiry_0", "write"), {}),
    "write-expiry-300-subrequest": (True, ("write", "expiry_300"), SUBREQUEST),
    "write-302-error-page": (
        True,
        WRITE,
        {"status": "302 Found", "ending": "error_page"},
    ),
    "write-500": (False, WRITE, {"status": "500 Error"}),
    "write-503-page": (
        False,
        WRITE,
        {"status": "503 Service Unavailable", "ending": "error_page"},
    ),
    "write-500-saved": (
        False,
        WRITE,
        {"status": "500 Error", "options": {"save_on_error": True}},
    ),
    "save-by-app": (False, ("save_by_app",), {}),
    "cycle-key-locked": (True, ("cycle_key",), {"options": {"lock": True}}),
    "flush": (False, ("flush",), {}),
    "write-too-large": (True, ("write_large",), {"store": "cookie"}),
    "deleted-meanwhile": (True, MEANWHILE_WRITE, {"store": "sqlite"}),
    "deleted-meanwhile-subrequest": (True, MEANWHILE_WRITE, {"fetch_mode": "cors"}),
    "saved-meanwhile": (True, ("saved_meanwhile", "write_new_key"), {}),
}


@pytest.mark.parametrize("name", CASES)
def test_fast_and_general_paths_agree_on(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each case agrees, and is settled by a fast path if its table says so
    (no ``send_headers``), so that the cases keep guarding them."""
    fast, actions, differences = CASES[name]
    scenario = Scenario(actions=actions, **differences)
    paths: list[str] = []
    send_headers = Response.send_headers

    def watched(self: Response, final: bool, touched: bool = False) -> None:
        paths.append(self.environ["PATH_INFO"])
        send_headers(self, final, touched)

    monkeypatch.setattr(Response, "send_headers", watched)
    settled = run(scenario, tmp_path, fast=True)
    assert ("/" not in paths) is fast
    paths.clear()
    assert settled == run(scenario, tmp_path, fast=False)
    assert "/" in paths  # the fast paths were off
