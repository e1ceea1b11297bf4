"""The check of an app's status and headers that a save waits for.

The middleware calls the server's ``start_response`` only after the save
(see :mod:`.response`), so a status or header that every server refuses
(PEP 3333: native strings; no server sends a CR or LF inside one) failed
the response only once its session was stored: the client got a 500 and
the change was kept. Checked before the save, it fails the request as an
exception from the app does, and nothing is saved.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["check_app_headers", "kept_headers"]

HeaderList = list[tuple[str, str]]


def kept_headers(headers: HeaderList) -> HeaderList:
    """The app's headers as the middleware keeps them until it sends them: a
    list or tuple as given; any other iterable (a generator, which waitress
    and gunicorn take) read into a list at once, as those servers read it,
    since the middleware reads the headers more than once (this module's
    check, the cookie's headers, the server). Not iterable: as given, for
    :func:`check_app_headers` (or the server) to refuse."""
    if isinstance(headers, (list, tuple)):
        return headers
    try:
        return list(headers)
    except TypeError:
        return headers


def check_app_headers(status: object, headers: Iterable[Iterable[object]]) -> None:
    """AssertionError, as servers raise, if ``status`` or a header name or
    value is not a ``str`` or holds a CR or LF (the name says which). A
    subclass of ``str`` passes, as waitress, gunicorn and werkzeug take it.

    A plain loop: it runs before every save, and costs about a quarter of
    a microsecond for a response of two headers."""
    if not isinstance(status, str) or "\r" in status or "\n" in status:
        raise AssertionError(
            f"status {status!r}: must be a str without CR or LF (PEP 3333)"
        )
    try:
        for name, value in headers:
            if (
                not isinstance(name, str)
                or not isinstance(value, str)
                or "\r" in value
                or "\n" in value
                or "\r" in name
                or "\n" in name
            ):
                raise AssertionError(_refused(name))
    except (TypeError, ValueError):  # not a list of pairs
        raise AssertionError(
            "headers: must be a list of (name, value) pairs (PEP 3333)"
        ) from None


def _refused(name: object) -> str:
    """What the refusal says: the header's name, never its value (which
    may hold a secret such as a cookie)."""
    return f"header {name!r}: names and values must be str without CR or LF (PEP 3333)"
