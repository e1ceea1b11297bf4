"""Sphinx configuration for the wsgisession documentation.

Build with ``python -m sphinx -W -b html docs docs/_build/html`` from the
project root; ``tests/test_docs.py`` does the same and runs every example.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "_ext"))
sys.path.insert(0, os.path.dirname(HERE))

from wsgisession import __version__

project = "wsgisession"
author = "the wsgisession developers"
copyright = "2026, the wsgisession developers"
release = __version__
version = ".".join(__version__.split(".")[:2])

extensions = ["sphinx.ext.autodoc", "optionstable", "clireference"]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_preserve_defaults = True
# Session inherits MutableMapping's terse docstrings ("D.get(k[,d]) -> ..."),
# which autodoc would misread as signatures; its mapping methods are
# described in api.rst instead.
autodoc_inherit_docstrings = False

# Every cross-reference must resolve (-W turns a miss into an error), except
# those into the standard library and third-party packages (no intersphinx:
# the build needs no network), and the private type aliases and relative
# names that appear in signatures and docstrings.
_EXTERNAL = sorted(sys.stdlib_module_names) + [
    "cryptography",
    "filelock",
    "flask",
    "itsdangerous",
    "markupsafe",
    "pymemcache",
    "pyramid",
    "redis",
    "sqlalchemy",
    "werkzeug",
    "zope",
]
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", rf"({'|'.join(_EXTERNAL)})(\..*)?"),
    (
        r"py:class",
        r"WSGIApp|StrPath|RedisClient|StoreUnavailable|Flask|Response|SessionResponse|wsgisession.response.Response|wsgisession.usersessions.HasHandle|wsgisession.session_expiry.ExpiryQuery|wsgisession.session_record.SessionRecord|wsgisession.cookies.SessionState|Engine",
    ),
    (r"py:mod", r"base"),
    (r"py:func", r"default_path"),
]

exclude_patterns = ["_build", "_ext", "examples"]
templates_path: list[str] = []
highlight_language = "python"
pygments_style = "sphinx"

html_theme = "alabaster"
html_title = f"wsgisession {release}"
html_theme_options = {
    "description": "Server-side sessions for WSGI apps, with Django's semantics",
    "fixed_sidebar": True,
    "show_relbars": True,
}
html_static_path: list[str] = []
