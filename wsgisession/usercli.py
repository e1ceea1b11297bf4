"""The ``sessions`` and ``revoke`` commands: a user's sessions, for operators.

``wsgisession sessions --config FILE[#SECTION] USER_ID`` lists the user's
live sessions; ``wsgisession revoke --config FILE[#SECTION] USER_ID
[--handle H]`` ends them all, or the one named by its handle. The command
line module (:mod:`wsgisession.cli`) registers them with
:func:`add_user_commands`, handing over how it reads a store's settings.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import os
import re
import sys
import textwrap
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from .config import Settings, StoreSpec
from .errors import SessionError, StoreUnavailable
from .middleware import serializer_for
from .storecheck import build_existing_store, store_hint, unreachable
from .usersessions import UserSessions

__all__ = ["add_user_commands", "attach_handles"]

_OPTION_NAME = re.compile(r"--?[a-z][a-z-]*")
#: A byte that the locale's encoding could not decode, as Python passes it on.
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")

ReadSettings = Callable[[argparse.Namespace], "tuple[Settings, StoreSpec]"]

SESSIONS_EXAMPLES = """\
example:
  wsgisession sessions --config production.ini#session alice@example.org
"""

REVOKE_EXAMPLES = """\
examples (after a password reset, or for a stolen device):
  wsgisession revoke --config production.ini#session alice@example.org
  wsgisession revoke --config production.ini#session alice@example.org --handle HANDLE
"""


def add_user_commands(
    commands: Any,
    add_store_arguments: Callable[[argparse.ArgumentParser], None],
    read_settings: ReadSettings,
) -> None:
    """Add ``sessions`` and ``revoke`` to the ``commands`` subparsers."""
    listing = _parser(
        commands,
        "sessions",
        "list a user's live sessions (handle, created, last saved, expires)",
        SESSIONS_EXAMPLES,
    )
    add_store_arguments(listing)
    listing.add_argument(
        "user_id", metavar="USER_ID", type=_typed_text, help="the id bind_user() got"
    )
    listing.set_defaults(handler=functools.partial(command_sessions, read_settings))
    revoke = _parser(
        commands,
        "revoke",
        "end a user's sessions (all, or --handle one) and print how many",
        REVOKE_EXAMPLES,
    )
    add_store_arguments(revoke)
    revoke.add_argument(
        "user_id", metavar="USER_ID", type=_typed_text, help="the id bind_user() got"
    )
    revoke.add_argument(
        "--handle", help="end only this session (a handle that `sessions` lists)"
    )
    revoke.set_defaults(handler=functools.partial(command_revoke, read_settings))


def attach_handles(argv: Sequence[str]) -> list[str]:
    """``argv`` with ``--handle H`` written ``--handle=H``: a handle starts
    with ``-`` one time in 64, and argparse takes such a value for an option.
    An option name after ``--handle`` is left alone (a forgotten handle)."""
    attached: list[str] = []
    for argument in argv:
        if (
            attached
            and attached[-1] == "--handle"
            and argument.startswith("-")
            and not _OPTION_NAME.fullmatch(argument)
        ):
            attached[-1] = f"--handle={argument}"
        else:
            attached.append(argument)
    return attached


def _typed_text(argument: str) -> str:
    """``argument`` as the operator typed it. Python decodes the arguments in
    the locale's encoding; in the C locale (UTF-8 mode off) a UTF-8
    terminal's other bytes come as lone surrogates, which no user id holds:
    they are read as UTF-8 (as UTF-8 mode would have), if they are."""
    if not _ESCAPED_BYTE.search(argument):
        return argument
    try:
        return os.fsencode(argument).decode("utf-8")
    except UnicodeError:  # not UTF-8 either: refused later, as it is
        return argument


def _parser(commands: Any, name: str, text: str, examples: str) -> Any:
    parser = commands.add_parser(
        name,
        help=text,
        description=textwrap.fill(text[0].upper() + text[1:] + "."),
        epilog=examples,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(command_parser=parser)
    return parser


@contextlib.contextmanager
def _user_sessions(
    read_settings: ReadSettings, args: argparse.Namespace, action: str
) -> Iterator[UserSessions]:
    """The store's user sessions, closed after; its refusal (a store without
    them), a bad user id, a missing store or one that cannot be reached
    becomes a SessionError, so one error line saying what to do."""
    settings, spec = read_settings(args)
    hint = store_hint(spec)
    store = build_existing_store(spec, action, hint)
    try:
        # What the middleware would refuse at startup (lock = true on a store
        # that cannot lock) is refused here too: the app would not run.
        yield UserSessions(store, settings, serializer_for(store, settings))
    except StoreUnavailable as exc:
        raise unreachable(exc, hint) from None
    except (NotImplementedError, ValueError) as exc:
        raise SessionError(str(exc)) from exc
    finally:
        store.close()


def command_sessions(read_settings: ReadSettings, args: argparse.Namespace) -> int:
    with _user_sessions(read_settings, args, "list") as users:
        sessions, unreadable = users.survey(args.user_id)
    user_id = args.user_id
    if unreadable:  # on stderr: the listing's format stays as scripts read it
        print(
            f"wsgisession sessions: {unreadable} more record(s) of {user_id!r} "
            "could not be read (damaged, or written with another serializer or "
            "secret key: is this the app's configuration?); revoke ends them too",
            file=sys.stderr,
        )
    if not sessions:
        print(f"no live sessions of {user_id!r}" if not unreadable else
              f"no readable sessions of {user_id!r}")  # fmt: skip
        return 0
    print(f"{'HANDLE':<24}{'CREATED':<27}{'LAST SAVED':<27}EXPIRES")
    for s in sessions:
        times = (_iso(s.created), _iso(s.saved_at), _iso(s.expires_at))
        print(f"{s.handle:<24}{times[0]:<27}{times[1]:<27}{times[2]}")
    count = len(sessions)
    print(f"{count} live session{'s' if count != 1 else ''} of {user_id!r}")
    return 0


def command_revoke(read_settings: ReadSettings, args: argparse.Namespace) -> int:
    user_id, handle = args.user_id, args.handle
    with _user_sessions(read_settings, args, "revoke") as users:
        if handle is None:
            count = users.revoke_all(user_id)
        elif users.revoke_one(user_id, handle):
            count = 1
        else:
            raise SessionError(f"no live session of {user_id!r} has handle {handle!r}")
    print(f"revoked {count} session{'s' if count != 1 else ''} of {user_id!r}")
    return 0


def _iso(moment: float) -> str:
    """A Unix time as an ISO date, UTC, to the second; ``never`` past the
    last date a datetime holds (a damaged or hand-edited record's expiry)."""
    try:
        when = datetime.datetime.fromtimestamp(moment, datetime.UTC)
    except (OverflowError, OSError, ValueError):
        return "never"
    return when.replace(microsecond=0).isoformat()
