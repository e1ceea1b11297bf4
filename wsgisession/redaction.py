"""Keeping secrets out of messages: URLs without their passwords.

No error, log line, ``repr`` or command output of wsgisession shows a
secret key, a fallback or a password from a URL; the helpers here are how
a URL is shown.
"""

from __future__ import annotations

from urllib.parse import urlsplit

__all__ = [
    "SECRET_PARAMETERS",
    "holds_secret",
    "is_secret_parameter",
    "redact_url",
    "redacted_value",
]

#: Query parameters that carry a credential in database and Redis URLs.
SECRET_PARAMETERS = ("password", "passwd", "pass", "pwd", "secret", "token")
#: Parts of names of parameters that carry one too, such as libpq's
#: ``sslpassword`` and redis-py's ``ssl_password`` (a TLS key's passphrase).
_SECRET_PARTS = ("password", "passwd", "secret", "token")


def is_secret_parameter(name: str) -> bool:
    """Whether the query parameter ``name`` of a URL carries a credential."""
    name = name.lower()
    return name in SECRET_PARAMETERS or any(part in name for part in _SECRET_PARTS)


def holds_secret(url: str) -> bool:
    """Whether :func:`redact_url` would hide part of ``url`` (a password, a
    secret parameter): such a URL must not be a command-line argument."""
    if "://" not in url or redact_url(url) == url:
        return False
    scheme, _, rest = url.partition("://")
    if _redact_query(rest) != rest:  # a secret parameter, maybe holding '@'
        return True
    user, at, host = rest.rpartition("@")
    # A user name alone (postgresql://app@db/app, peer or certificate
    # authentication) is hidden from messages, but is no secret in ps.
    return not (
        at and user and ":" not in user and not rest.startswith("/")
        and redact_url(f"{scheme}://{host}") == f"{scheme}://{host}"
    )  # fmt: skip


def redact_url(url: str) -> str:
    """``url`` without its credentials, for messages and ``repr``.

    A string that is not ``scheme://...`` is not shown at all: where a
    password would be in it cannot be told.
    """
    scheme, separator, rest = url.partition("://")
    if not separator:
        return "<not a URL, not shown>"
    # Secret query values first: one may hold '@' (?password=Zx9@kQ7wP, which
    # redis-py and SQLAlchemy take whole), whose tail would pass for the host.
    rest = _redact_query(rest)
    # The credentials end at the last '@': a password may hold '/', '?' or
    # '#' unencoded (SQLAlchemy takes them so), where urlsplit would end
    # the host part and show the password as path, query or fragment. A
    # URL without a host part (sqlite:////path, unix:///path) has none.
    if "@" in rest and not rest.startswith("/"):
        rest = "***@" + rest.rsplit("@", 1)[1]
    redacted = f"{scheme}://{rest}"
    try:
        urlsplit(redacted)
    except ValueError:
        return f"{scheme}://<not shown>"
    return _redact_query(redacted)


def _redact_query(url: str) -> str:
    """``url`` with the values of its secret query parameters hidden.

    The query runs from the first '?' to the end, '#' included, as
    SQLAlchemy reads it: a generated password may hold '#', where urlsplit
    would end the query and show the rest of the password as a fragment.
    """
    head, question, query = url.partition("?")
    if not question:
        return url
    hidden = "&".join(
        name + "=***" if is_secret_parameter(name) else pair
        for pair in query.split("&")
        for name in [pair.partition("=")[0]]
    )
    return f"{head}?{hidden}"


def redacted_value(name: str, value: object) -> object:
    """A store key's value as messages may show it: secrets hidden, URLs redacted."""
    if name.startswith("secret") or "password" in name:
        return "***"
    if isinstance(value, str) and "://" in value:
        return redact_url(value)
    return value
