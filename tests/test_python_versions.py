"""setup.cfg's requirements on each Python version the package supports.

pip keeps a release already installed (an app's pin) if it meets the
requirements, so each lower bound must be a release that works on every
Python version it applies to; where one does not, an environment marker
raises the bound for that version. The markers are evaluated here for each
version, whichever interpreter runs the tests.
"""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

SETUP_CFG = Path(__file__).resolve().parent.parent / "setup.cfg"

#: The first release of a dependency that imports on a Python version (and
#: on the later ones). SQLAlchemy 2.0.30 and earlier fail on 3.13 when
#: imported: ``TypeError: Can't replace canonical symbol for
#: '__firstlineno__'`` (2.0.30), ``AssertionError: ... directly inherits
#: TypingOnly but has additional attributes {'__firstlineno__',
#: '__static_attributes__'}`` (2.0.0).
FIRST_WORKING = {
    "3.13": {"sqlalchemy": Version("2.0.31")},
}
SUPPORTED = ("3.11", "3.12", "3.13")


def lowest_allowed(extra: str, python_version: str) -> dict[str, Version]:
    """The lowest version of each requirement of ``extra`` on ``python_version``."""
    setup_cfg = configparser.ConfigParser()
    setup_cfg.read(SETUP_CFG)
    lines = setup_cfg["options.extras_require"][extra].split("\n")
    lowest: dict[str, Version] = {}
    for line in filter(None, (line.strip() for line in lines)):
        requirement = Requirement(line)
        environment = {"python_version": python_version}
        if requirement.marker and not requirement.marker.evaluate(environment):
            continue
        (bound,) = [s for s in requirement.specifier if s.operator == ">="]
        lowest[canonicalize_name(requirement.name)] = Version(bound.version)
    return lowest


@pytest.mark.parametrize("python_version", SUPPORTED)
def test_the_sql_extra_admits_only_sqlalchemy_that_imports(python_version: str) -> None:
    """``pip install 'wsgisession[sql]'`` on Python 3.13 beside an app that
    pins SQLAlchemy 2.0.30 or older kept it: the SQL store, and ``wsgisession
    check`` with ``store = sql``, failed with SQLAlchemy's traceback."""
    lowest = lowest_allowed("sql", python_version)
    needed = {
        name: first
        for version, firsts in FIRST_WORKING.items()
        if Version(python_version) >= Version(version)
        for name, first in firsts.items()
    }
    assert "sqlalchemy" in lowest
    for name, first in needed.items():
        assert lowest[name] >= first, (python_version, name, str(lowest[name]))
