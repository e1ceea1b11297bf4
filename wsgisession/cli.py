"""The ``wsgisession`` command: ``demo``, ``clear-expired``, ``check`` and ``init-db``."""

from __future__ import annotations

import argparse
import configparser
import os
import secrets
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

from .config import Settings, StoreSpec, parse_settings
from .errors import ConfigError, SessionError
from .keys import generate_key
from .storespec import store_keys

PREFIX = "wsgisession."

#: The store keys as command-line options (``--redis-url``), as the stores declare them.
STORE_OPTIONS = {name: key.help for name, key in store_keys().items()}


def read_section(location: str) -> tuple[dict[str, str], dict[str, str], str]:
    """The keys of ``FILE[#section]`` as Paste Deploy sees them: (local, globals, prefix).

    A bare section name is looked up as ``filter:NAME`` then ``app:NAME``;
    without one, the single section that uses ``egg:wsgisession`` is taken.
    An ``app:`` section holds prefixed keys (``wsgisession.store``), as in Pyramid.
    """
    path, _, name = location.partition("#")
    path = os.path.abspath(path)
    here = {"here": os.path.dirname(path), "__file__": path}
    parser = configparser.ConfigParser(defaults=here)
    raw = configparser.ConfigParser(default_section="\0", interpolation=None)
    # Paste Deploy keeps the case of keys: so must we, or check would accept
    # a "Cookie_Age" that loadapp() then rejects.
    parser.optionxform = raw.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        if not parser.read(path) or not raw.read(path):
            raise SessionError(f"cannot read configuration file {path}")
        section = _find_section(raw, name, path)
        globals_ = dict(parser.defaults())
        # As Paste Deploy: a key [DEFAULT] also has is a global, not a local.
        local = {
            key: parser.get(section, key)
            for key in raw.options(section)
            if key not in globals_
        }
    except configparser.Error as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    prefix = PREFIX if section.startswith("app:") else ""
    return local, globals_, prefix


def _find_section(raw: configparser.ConfigParser, name: str, path: str) -> str:
    if name:
        for candidate in (name, f"filter:{name}", f"app:{name}"):
            if raw.has_section(candidate):
                return candidate
        raise SessionError(
            f"{path} has no section [{name}], [filter:{name}] or [app:{name}]"
        )
    using = [
        s for s in raw.sections() if "wsgisession" in raw.get(s, "use", fallback="")
    ]
    if len(using) == 1:
        return using[0]
    raise SessionError(
        f"{path}: name the section, as in {path}#filter:session "
        f"(sections: {', '.join(raw.sections()) or 'none'})"
    )


def settings_from_arguments(args: argparse.Namespace) -> tuple[Settings, StoreSpec]:
    """The options and store keys of ``--config``, or of the store options given."""
    given = {
        key: value
        for key in STORE_OPTIONS
        if (value := getattr(args, key, None)) is not None
    }
    if args.config:
        if given:
            options = ", ".join("--" + key.replace("_", "-") for key in given)
            raise ConfigError(f"give either --config or {options}, not both")
        local, globals_, prefix = read_section(args.config)
        return parse_settings(local, prefix, global_conf=globals_)
    return parse_settings(given or {"store": "sqlite"})


def _add_store_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE[#SECTION]",
        help="ini file and section holding the wsgisession keys, e.g. app.ini#session",
    )
    for key, text in STORE_OPTIONS.items():
        parser.add_argument("--" + key.replace("_", "-"), dest=key, help=text)


def command_clear_expired(args: argparse.Namespace) -> int:
    store = settings_from_arguments(args)[1].build()
    bar = ProgressBar(sys.stderr) if sys.stderr.isatty() else None
    try:
        removed = store.clear_expired(progress=bar.update if bar else None)
    finally:
        if bar is not None:
            bar.finish()
    print(
        f"removed {removed} expired session{'s' if removed != 1 else ''} from {store!r}"
    )
    return 0


class ProgressBar:
    """A one-line bar on a terminal, drawn once a run has lasted a second."""

    WIDTH = 30

    def __init__(self, stream: TextIO, delay: float = 1.0) -> None:
        self.stream = stream
        self.start = time.monotonic()
        self.delay = delay
        self.drawn = False

    def update(self, done: int, total: int) -> None:
        if time.monotonic() - self.start < self.delay or total <= 0:
            return
        filled = self.WIDTH * min(done, total) // total
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        self.stream.write(f"\r[{bar}] {100 * done // total:3d}% ({done}/{total})")
        self.stream.flush()
        self.drawn = True

    def finish(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()


def command_check(args: argparse.Namespace) -> int:
    options, spec = settings_from_arguments(args)
    store = spec.build()
    if args.config:
        print(f"configuration ok: {options}")
    store.exists(generate_key())
    print(f"store reached: {store!r}")
    return 0


def command_init_db(args: argparse.Namespace) -> int:
    """Create the SQL store's tables, or print their DDL with ``--sql``."""
    from ._initdb import init_db

    spec = settings_from_arguments(args)[1]
    try:
        store = spec.build()
    except ImportError as exc:  # SQLAlchemy or the database's driver
        raise ConfigError(str(exc)) from None
    try:
        return init_db(store, sys.stdout, print_sql=args.sql)
    finally:
        store.close()


def _add_init_db_parser(commands: Any) -> None:
    init_db = commands.add_parser(
        "init-db",
        help="create the SQL store's tables (store = sql), or print their DDL",
    )
    _add_store_arguments(init_db)
    init_db.add_argument(
        "--sql",
        action="store_true",
        help="print the CREATE TABLE and CREATE INDEX statements instead",
    )
    init_db.set_defaults(handler=command_init_db)


def command_demo(args: argparse.Namespace) -> int:
    from wsgiref.simple_server import make_server

    from .demo import demo_app
    from .middleware import SessionMiddleware

    settings: dict[str, str] = {"store": args.store}
    if args.store == "cookie":
        settings["secret_key"] = secrets.token_urlsafe(32)
    if args.store == "memcached":
        settings["memcached_servers"] = args.memcached_servers
    if args.store == "redis":
        settings["redis_url"] = args.redis_url
    _, spec = parse_settings(settings)
    app = SessionMiddleware(demo_app, store=spec.build())
    with make_server(args.host, args.port, app) as server:
        print(
            f"wsgisession demo on http://{args.host}:{server.server_port}/ ({app.store!r})"
        )
        print("press Ctrl-C to stop", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wsgisession", description="Server-side sessions for WSGI apps."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser("demo", help="serve a small app that shows its session")
    demo.add_argument("--store", default="sqlite", help="store kind (default: sqlite)")
    demo.add_argument("--host", default="127.0.0.1", help="address to listen on")
    demo.add_argument(
        "--port", type=int, default=8080, help="port (0 picks a free one)"
    )
    demo.add_argument(
        "--memcached-servers", default="127.0.0.1:11211", help="for --store memcached"
    )
    demo.add_argument(
        "--redis-url", default="redis://127.0.0.1:6379/0", help="for --store redis"
    )
    demo.set_defaults(handler=command_demo)
    clear = commands.add_parser(
        "clear-expired", help="remove expired sessions and print how many (for cron)"
    )
    _add_store_arguments(clear)
    clear.set_defaults(handler=command_clear_expired)
    check = commands.add_parser(
        "check", help="validate a configuration and reach its store once"
    )
    _add_store_arguments(check)
    check.set_defaults(handler=command_check)
    _add_init_db_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        status: int = args.handler(args)
    except SessionError as exc:
        print(f"wsgisession {args.command}: error: {exc}", file=sys.stderr)
        return 1
    return status
