"""The line to write for a number of seconds given with a unit ("2w").

Options in seconds take digits only; a value such as ``2w`` or ``10s``, as
other tools write durations, is refused with the line that means it.
"""

from __future__ import annotations

import re
from decimal import Decimal

from .expiry import MAX_SECONDS

__all__ = ["unit_hint"]

# Lower case only: "2M" could be months as well as minutes.
_WITH_UNIT = re.compile(r"([0-9]{1,12}(?:\.[0-9]{1,6})?) *(s|m|min|h|d|w)")
_UNIT_SECONDS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}


def unit_hint(key: str, text: str, whole: bool) -> str:
    """``"; units are not read: write KEY = N for 'TEXT'"`` if ``text`` is
    seconds with a unit, else ``""``; none when the line would be refused
    (more than MAX_SECONDS, or a fraction where ``whole`` seconds are wanted)."""
    match = _WITH_UNIT.fullmatch(text)
    if match is None:
        return ""
    # Decimal: as floats, 1.1h is 3960.0000000000005 s and 0.00001s is 1e-05,
    # lines that say another number or that the option refuses.
    seconds = Decimal(match[1]) * _UNIT_SECONDS[match[2]]
    if seconds > MAX_SECONDS:
        return ""
    if seconds == seconds.to_integral_value():
        return f"; units are not read: write {key} = {int(seconds)} for {text!r}"
    if whole:
        return ""
    return f"; units are not read: write {key} = {seconds.normalize():f} for {text!r}"
