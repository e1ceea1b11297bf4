"""The ``wsgisession`` command: ``demo``, ``clear-expired``, ``check``,
``init-db``, ``sessions`` and ``revoke``.

A user's mistake (a bad option, a missing extra, an unreachable store, a
busy port, an unreadable ini file) ends in one line,
``wsgisession COMMAND: error: ...``, saying how to fix it, and a non-zero
exit: never a traceback. Secrets are never taken as arguments (``ps``
shows those to every user): see :mod:`wsgisession.secretkey`.
"""

from __future__ import annotations

import argparse
import signal
import sys
import textwrap
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from . import secretkey
from ._clihelp import (
    CHECK_EXAMPLES,
    CLEAR_EXAMPLES,
    DEMO_EPILOG,
    INIT_DB_EXAMPLES,
    SECRETS,
    STORE_KINDS,
)
from .cli_streams import (
    ProgressBar,
    closed_stderr_to_nowhere,
    escape_unprintable_output,
    on_a_terminal,
    silence_stdout,
)
from .config import Settings, StoreSpec, parse_settings
from .demo.command import add_demo_parser
from .deploycheck import print_deploy_warnings
from .errors import ConfigError, SessionError, StoreUnavailable
from .inifile import PREFIX, read_section
from .middleware import serializer_for
from .paste import pyramid_names_translated
from .redaction import holds_secret
from .storecheck import (
    build_existing_store,
    build_store,
    reach_store,
    store_hint,
    unreachable,
)
from .storespec import store_keys
from .usercli import add_user_commands, attach_handles

__all__ = ["PREFIX", "STORE_OPTIONS", "build_parser", "main", "read_section"]

#: The store keys as command-line options (``--redis-url``), as the stores declare them.
STORE_OPTIONS = {name: key.help for name, key in store_keys().items()}


class CommandParser(argparse.ArgumentParser):
    """argparse, with a usage mistake reported on one line."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}; see {self.prog} --help\n")


def _secret_settings(secret: secretkey.SecretKey) -> dict[str, str]:
    settings = {"secret_key": secret.key}
    if secret.fallbacks:
        settings["secret_key_fallbacks"] = " ".join(secret.fallbacks)
    return settings


def _refuse_secret_arguments(given: dict[str, str]) -> None:
    for key in given:
        if key.startswith("secret_key"):
            where = (
                "further lines of --secret-key-file FILE or the environment "
                f"variable {secretkey.FALLBACKS_ENV_VAR}"
                if key == "secret_key_fallbacks"
                else f"--secret-key-file FILE or the environment variable "
                f"{secretkey.ENV_VAR}"
            )
            raise ConfigError(
                f"--{key.replace('_', '-')} is refused: a key given as an argument "
                f"is visible to every user in ps; use {where}"
            )
    for key in ("sql_url", "redis_url"):
        url = given.get(key)
        if url is not None and holds_secret(url):
            option = key.replace("_", "-")
            raise ConfigError(
                f"--{option} with a password is refused: arguments are visible to "
                f"every user in ps; use --config, with {key}'s password as "
                "%(NAME)s from the environment"
            )


def settings_from_arguments(
    args: argparse.Namespace, *, factory: bool = False
) -> tuple[Settings, StoreSpec]:
    """The options and store keys of ``--config``, or of the store options
    given; ``factory``: look up the filter's ``use`` too (``check``)."""
    given = {
        key: value
        for key in STORE_OPTIONS
        if (value := getattr(args, key, None)) is not None
    }
    _refuse_secret_arguments(given)
    if args.config == "":  # "$APP_INI" unset: not the same as no --config
        raise ConfigError("--config needs a file name, as in --config app.ini#session")
    if args.config is not None:
        named = ["--" + key.replace("_", "-") for key in given]
        named += ["--secret-key-file"] if args.secret_key_file else []
        if named:
            raise ConfigError(f"give either --config or {', '.join(named)}, not both")
        local, globals_, prefix = read_section(
            args.config, dict(args.globals), factory=factory
        )
        if prefix:  # an [app:] section: Pyramid's names too, as make_wsgi_app()
            local = pyramid_names_translated(local, prefix)
        return parse_settings(local, prefix, global_conf=globals_)
    if args.globals:
        raise ConfigError("--global fills %(name)s in an ini file: give --config too")
    secret = (
        secretkey.read_secret_file(args.secret_key_file)
        if args.secret_key_file
        else secretkey.secret_from_environment()
        if str(given.get("store", "")).strip().lower() == "cookie"
        else None
    )
    if secret is not None:
        given.update(_secret_settings(secret))
    return parse_settings(given or {"store": "sqlite"})


def _global(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not equals or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {name.strip()!r}")
    return name.strip(), value


def _add_store_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE[#SECTION]",
        help="ini file and section holding the wsgisession keys, e.g. app.ini#session",
    )
    parser.add_argument(
        "--global",
        dest="globals",
        metavar="NAME=VALUE",
        type=_global,
        action="append",
        default=[],
        help="a global for %%(NAME)s in the ini file, as an app's global_conf "
        "(repeatable)",
    )
    for key, text in STORE_OPTIONS.items():
        hidden = key.startswith("secret_key")  # refused: see _refuse_secret_arguments
        parser.add_argument(
            "--" + key.replace("_", "-"),
            dest=key,
            help=argparse.SUPPRESS if hidden else text,
        )
    _add_secret_file_argument(parser)


def _add_secret_file_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--secret-key-file",
        metavar="FILE",
        help=f"file holding the cookie store's secret key (else ${secretkey.ENV_VAR})",
    )


def command_clear_expired(args: argparse.Namespace) -> int:
    options, spec = settings_from_arguments(args)
    hint = store_hint(spec)
    store = build_existing_store(spec, "clear", hint)
    serializer_for(store, options)  # what the middleware would refuse at startup
    reach_store(store, hint)  # a store with native expiry would not notice
    bar = ProgressBar(sys.stderr) if on_a_terminal(sys.stderr) else None
    try:
        try:
            removed = store.clear_expired(progress=bar.update if bar else None)
        except StoreUnavailable as exc:
            raise unreachable(exc, hint) from None
    finally:
        if bar is not None:
            bar.finish()
    print(
        f"removed {removed} expired session{'s' if removed != 1 else ''} from {store!r}"
    )
    return 0


def command_check(args: argparse.Namespace) -> int:
    options, spec = settings_from_arguments(args, factory=True)
    store = build_store(spec)
    serializer_for(store, options)  # what the middleware would refuse at startup
    if args.config is not None:
        print(f"configuration ok: {options}")
    reach_store(store, store_hint(spec))
    print_deploy_warnings(options, spec)
    print(f"store reached: {store!r}")
    return 0


def command_init_db(args: argparse.Namespace) -> int:
    """Create the SQL store's tables, or print their DDL with ``--sql``."""
    from ._initdb import init_db

    store = build_store(settings_from_arguments(args)[1])
    try:
        return init_db(store, sys.stdout, print_sql=args.sql)
    except StoreUnavailable as exc:
        hint = "start the database, or correct sql_url; its user needs the right "
        raise unreachable(exc, hint + "to create tables (else use --sql)") from None
    finally:
        store.close()


def _add_store_command(
    commands: Any,
    name: str,
    summary: str,
    description: str,
    epilog: str,
    handler: Callable[[argparse.Namespace], int],
) -> argparse.ArgumentParser:
    """A subcommand that works on a store given by --config or the store options."""
    command: argparse.ArgumentParser = commands.add_parser(
        name,
        help=summary,
        description=textwrap.fill(description),
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_store_arguments(command)
    command.set_defaults(handler=handler, command_parser=command)
    return command


def _add_init_db_parser(commands: Any) -> None:
    init_db = _add_store_command(
        commands,
        "init-db",
        "create the SQL store's tables (store = sql), or print their DDL",
        "Create the tables of the SQL store (store = sql) if missing, for "
        "deployments where the app's database user may not create them; "
        "with --sql, print the statements instead, to run by hand.",
        INIT_DB_EXAMPLES,
        command_init_db,
    )
    init_db.add_argument(
        "--sql",
        action="store_true",
        help="print the CREATE TABLE and CREATE INDEX statements instead",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="wsgisession",
        description=textwrap.fill(
            "Server-side sessions for WSGI apps: try them (demo), validate "
            "a configuration (check), remove expired sessions (clear-expired), "
            "create the SQL store's tables (init-db), list a user's sessions "
            "(sessions) and end them (revoke)."
        ),
        epilog=STORE_KINDS + "\nrun 'wsgisession COMMAND --help' for a command's "
        "options and examples",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_demo_parser(commands, DEMO_EPILOG)
    _add_store_command(
        commands,
        "clear-expired",
        "remove expired sessions and print how many (for cron)",
        "Remove the expired sessions of a store and print how many. "
        "Memcached, Redis and the cookie store expire sessions themselves "
        "(it prints 0).",
        STORE_KINDS + "\n" + SECRETS + "\n" + CLEAR_EXAMPLES,
        command_clear_expired,
    )
    _add_store_command(
        commands,
        "check",
        "validate a configuration and reach its store once",
        "Validate the wsgisession keys of an ini file section (and its use =, "
        "looked up as Paste Deploy does) or the store options given, build the "
        "store and reach it once. Exits non-zero with the error.",
        STORE_KINDS + "\n" + SECRETS + "\n" + CHECK_EXAMPLES,
        command_check,
    )
    _add_init_db_parser(commands)
    add_user_commands(commands, _add_store_arguments, settings_from_arguments)
    return parser


#: The exit status after Ctrl-C, as a shell reports a command SIGINT ended.
INTERRUPTED = 128 + signal.SIGINT


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    closed_stderr_to_nowhere()
    escape_unprintable_output()
    parser = build_parser()
    arguments = sys.argv[1:] if argv is None else argv
    args, unknown = parser.parse_known_args(attach_handles(arguments))
    if unknown:  # reported by the command's parser, which names the command
        command_parser = getattr(args, "command_parser", parser)
        command_parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        status: int = args.handler(args)
        if sys.stdout is not None:  # a closed pipe fails here, not at exit
            sys.stdout.flush()
    except BrokenPipeError:  # the reader left (| head -1): stop quietly
        silence_stdout()
        return 1
    except KeyboardInterrupt:
        done = "what it did so far stays done: run it again to finish"
        print(f"wsgisession {args.command}: interrupted; {done}", file=sys.stderr)
        return INTERRUPTED
    except SessionError as exc:
        print(f"wsgisession {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        print(
            f"wsgisession {args.command}: error: {exc.strerror or exc}{where}",
            file=sys.stderr,
        )
        return 1
    return status
