"""Reading the request's ``Cookie`` header: every value it gives one name.

Browsers send the header as ``a=1; b=2``; this module reads the pairs of
one name as werkzeug's parser reads them, except that a quote never lets
one pair swallow the next (a cookie sandwich), and a session reads only
the first :data:`MOST_PAIRS_READ` pairs of its name.
"""

from __future__ import annotations

from werkzeug.sansio.http import parse_cookie

__all__ = ["MOST_PAIRS_READ", "cookie_values", "first_cookie_values"]


def cookie_values(header: str | None, name: str) -> list[str]:
    """Every value the ``Cookie`` header gives for ``name``, in order.

    Malformed pairs elsewhere in the header are skipped by the parser, so
    they never hide the session cookie. WSGI gives the header as latin-1;
    bytes that are not UTF-8 become U+FFFD rather than an error.
    """
    return first_cookie_values(header, name, None)[0]


#: The most pairs holding the cookie's name that a request's session reads:
#: an 8 KB header of 700 such pairs cost 0.8 ms (2.6 ms with a quote in it)
#: against 7 µs for one cookie. Only the first few values are tried anyway
#: (``offered_keys.MAX_KEY_CANDIDATES``).
MOST_PAIRS_READ = 16


def first_cookie_values(
    header: str | None, name: str, most_pairs: int | None
) -> tuple[list[str], bool]:
    """The values the ``Cookie`` header gives for ``name``, in order, read
    from its first ``most_pairs`` pairs that hold the name (all if None),
    and whether pairs holding it were left unread."""
    if not header or name not in header:
        return [], False
    if header.isascii():
        text = header
    else:
        text = header.encode("latin-1", "replace").decode("utf-8", "replace")
    prefix = name + "="
    if (
        text.startswith(prefix)
        and ";" not in text
        and " " not in text
        and '"' not in text
        and "\t" not in text
    ):  # the one plain pair of a client with no other cookie
        return [text[len(prefix) :]], False
    values = _plain_values(text, name)
    if values is not None:
        return values, False
    return _values_by_pair(text, name, most_pairs)


def _values_by_pair(
    text: str, name: str, most_pairs: int | None
) -> tuple[list[str], bool]:
    """The values of ``name`` in the first ``most_pairs`` ``;``-separated
    pairs of that name, and whether any was left unread.

    Only pairs of the name count: other cookies that merely contain it
    (``session_start`` beside ``session``, ``x=sessionid``) do not push the
    session's own cookie past the limit, but the scan stops after
    :data:`_MOST_HITS_PER_PAIR` times as many of them.
    No cookie value holds ``;``, quoted or not (RFC 6265), and browsers
    split the header on it: a quote in a neighbour's value (``a="x`` ...
    ``b=y"``, a cookie sandwich) must not swallow the session cookie.
    Without quotes, werkzeug's parser reads the header the same way.
    """
    values: list[str] = []
    most_hits = None if most_pairs is None else most_pairs * _MOST_HITS_PER_PAIR
    pairs_read = hits = 0
    at = text.find(name)
    while at != -1:
        if pairs_read == most_pairs or hits == most_hits:
            return values, True
        start = text.rfind(";", 0, at) + 1
        end = text.find(";", at)
        if end == -1:
            end = len(text)
        found = _pair_values(text[start:end], name)
        if found is not None:
            values += found
            pairs_read += 1
        hits += 1
        at = text.find(name, end)
    return values, False


#: How many pairs merely containing the name a bounded scan reads per pair
#: of the name it may read.
_MOST_HITS_PER_PAIR = 4


def _pair_values(pair: str, name: str) -> list[str] | None:
    """What werkzeug's parser reads for ``name`` in one pair (no ``;``), a
    plain ``name=value`` without its call; None for a pair of another name."""
    stripped = pair.lstrip(" \t")
    if not stripped.startswith(name):
        return None
    following = stripped[len(name) : len(name) + 1]
    if following not in ("", " ", "\t", "="):
        return None  # a longer name, or a quote after it: no pair of ``name``
    value = stripped[len(name) + 1 :]
    if following == "=" and " " not in value and "\t" not in value and '"' not in value:
        return [value]
    if stripped.rstrip(" \t") == name:
        return [""]  # a bare name, read as an empty value
    return parse_cookie(pair).getlist(name)


#: Past this many occurrences of the name, :func:`_values_by_pair` reads
#: the header (bounded by its caller's ``most_pairs``).
_MOST_NAMES_FOUND = 16


def _plain_values(text: str, name: str) -> list[str] | None:
    """The values of ``name`` in a header without quotes or tabs, as
    browsers send it; None if werkzeug's parser must read it.

    Without quotes werkzeug's parser reads a header pair by pair, each from
    where the last ``;`` and the spaces after it end, so only the pairs of
    ``name`` need reading: ``str.find`` finds them. Splitting a 1 KB header
    of 20 cookies took several µs, checking its form with a regular
    expression 13 µs. Spaces in or around a pair of ``name``, or the name
    without ``=``, are left to werkzeug.
    """
    if '"' in text or "\t" in text or text.count(name) > _MOST_NAMES_FOUND:
        return None
    values: list[str] = []
    after_name = len(name)
    at = text.find(name)
    while at != -1:
        if _starts_pair(text, at):
            value_at = at + after_name
            following = text[value_at : value_at + 1]
            if following in ("", " ", ";"):
                return None  # a bare name, or spaces before "="
            if following == "=":
                end = text.find(";", value_at)
                value = text[value_at + 1 : len(text) if end == -1 else end]
                if " " in value:
                    return None
                values.append(value)
        at = text.find(name, at + 1)
    return values


def _starts_pair(text: str, at: int) -> bool:
    """Whether a pair starts at ``at``: after a ``;`` and any spaces, or the start."""
    if at == 0 or text[at - 1] == ";":
        return True
    return text[at - 1] == " " and text[:at].rstrip(" ")[-1:] in ("", ";")
