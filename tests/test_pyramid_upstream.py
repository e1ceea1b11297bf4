"""Pyramid's own ISession tests, from Pyramid's sdist, against our session.

``tests/test_session.py`` of the pinned Pyramid holds the tests every
cookie session factory of Pyramid shares (``SharedCookieSessionTests``);
each subclass supplies ``_makeOne(request)``. Here that is a
:class:`~wsgisession.contrib.pyramid.PyramidSession`, made by the
adapter's session factory from the session the middleware would put in
the environ, on each store. The tests about ISession behaviour must all
pass; the others test the cookie factory's own machinery, and are listed
in :data:`NOT_ISESSION` with the reason.
"""

from __future__ import annotations

import importlib.util
import io
import unittest
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import session_flows as flows
from upstream import cache_dir, sdist

from wsgisession import SessionMiddleware
from wsgisession.contrib.pyramid import PyramidSession, WsgiSessionFactory
from wsgisession.stores.base import Store

pytestmark = pytest.mark.slow

_COOKIE_VALUE = "builds the cookie session's cookie value by hand (_serialize)"
_SET_COOKIE = "calls the cookie session's private _set_cookie(response)"
_CALLBACK = (
    "runs the cookie session's response callback (the middleware sets the cookie)"
)

#: Shared tests that are not about ISession, and why each is left out.
NOT_ISESSION = {
    "test_ctor_with_cookie_still_valid": _COOKIE_VALUE,
    "test_ctor_with_cookie_expired": _COOKIE_VALUE,
    "test_ctor_with_bad_cookie_cannot_deserialize": (
        "passes a cookie value of the cookie session's format"
    ),
    "test_ctor_with_bad_cookie_not_tuple": _COOKIE_VALUE,
    "test_timeout": _COOKIE_VALUE,
    "test_timeout_never": _COOKIE_VALUE,
    "test_timeout_str": _COOKIE_VALUE,
    "test_timeout_invalid": "the factory's timeout= argument (ours: cookie_age)",
    "test_changed": "checks _dirty, the cookie session's private flag",
    "test_reissue_triggered": _COOKIE_VALUE,
    "test__set_cookie_on_exception": _SET_COOKIE,
    "test__set_cookie_on_exception_no_request_exception": _SET_COOKIE,
    "test__set_cookie_cookieval_too_long": _SET_COOKIE,
    "test__set_cookie_real_webob_response": _SET_COOKIE,
    "test__set_cookie_options": _SET_COOKIE,
    "test_no_set_cookie_with_exception": _CALLBACK,
    "test_set_cookie_with_exception": _CALLBACK,
    "test_cookie_is_set": _CALLBACK,
}
ISESSION_TESTS = 15


def load_pyramid_tests(source: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "pyramid_upstream_test_session", source / "tests" / "test_session.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def pyramid_tests(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    """Pyramid's ``tests/test_session.py``, imported from its sdist."""
    return load_pyramid_tests(sdist("pyramid", cache_dir(tmp_path_factory)))


@pytest.fixture(params=flows.STORE_KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    return flows.make_store(request.param, tmp_path)


def shared_tests_on(pyramid_tests: ModuleType, store: Store) -> type[unittest.TestCase]:
    """Pyramid's shared session tests, with our factory's session as ``_makeOne``."""
    middleware = SessionMiddleware(lambda environ, start_response: [], store=store)
    factory = WsgiSessionFactory()

    def make_one(self: Any, request: Any, **kwargs: Any) -> PyramidSession:
        assert kwargs == {}, "an ISession test passes no factory arguments"
        key = request.cookies.get(middleware.settings.cookie_name)
        request.environ["wsgisession"] = middleware.open_session(key)
        return factory(request)

    bases = (pyramid_tests.SharedCookieSessionTests, unittest.TestCase)
    return type("WsgiSessionTests", bases, {"_makeOne": make_one})


def test_pyramids_isession_tests_pass(pyramid_tests: ModuleType, store: Store) -> None:
    case = shared_tests_on(pyramid_tests, store)
    every = unittest.TestLoader().getTestCaseNames(case)
    assert set(NOT_ISESSION) <= set(every), "Pyramid renamed a test left out here"
    names = [name for name in every if name not in NOT_ISESSION]
    assert len(names) == ISESSION_TESTS, names
    suite = unittest.TestSuite(case(name) for name in names)
    output = io.StringIO()
    result = unittest.TextTestRunner(stream=output, verbosity=2).run(suite)
    assert result.wasSuccessful(), output.getvalue()
    assert result.testsRun == ISESSION_TESTS
    assert not result.skipped
