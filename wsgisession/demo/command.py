"""``wsgisession demo``: its arguments, its store, its secret key, and the server."""

from __future__ import annotations

import argparse
import textwrap
from typing import Any

from .. import secretkey
from ..config import StoreSpec, parse_settings
from ..errors import ConfigError
from ..redaction import holds_secret
from ..storecheck import build_store, reach_store
from .app import DemoApp
from .facts import describe_store
from .serve import listen, url

__all__ = ["add_demo_parser", "run"]

DEMO_STORES = ("memory", "file", "sqlite", "memcached", "redis", "cookie")

_HINTS = {
    "memcached": "start memcached, or point --memcached-servers at a running one",
    "redis": "start redis-server, or point --redis-url at a running one",
}


def _port(text: str) -> int:
    """A TCP port number for ``--port`` (0: any free one)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port (0 to 65535)")
    return port


def _kept_key_place() -> str:
    """Where the demo keeps its key, for --help (which works without a home)."""
    try:
        return str(secretkey.demo_secret_path())
    except ConfigError:
        return "$XDG_STATE_HOME/wsgisession/demo-secret"


def add_demo_parser(commands: Any, epilog: str) -> None:
    """Add the ``demo`` subcommand to the ``wsgisession`` parser."""
    demo = commands.add_parser(
        "demo",
        help="serve a guided tour of sessions in your browser",
        description=textwrap.fill(
            "Serve a small page that shows its own session and proves, "
            "button by button, what wsgisession does: expiry, login and logout, "
            "the cookie's size limit, no lost updates, and a user's sessions "
            "listed and signed out from another browser. It checks its store once "
            "at startup."
        ),
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument(
        "--store",
        default="sqlite",
        choices=DEMO_STORES,
        metavar="KIND",
        help="store kind, one of: " + ", ".join(DEMO_STORES) + " (default: sqlite)",
    )
    demo.add_argument("--host", default="127.0.0.1", help="address to listen on")
    demo.add_argument(
        "--port",
        type=_port,
        default=8080,
        help="port (default 8080; 0 picks a free one)",
    )
    demo.add_argument(
        "--memcached-servers", default="127.0.0.1:11211", help="for --store memcached"
    )
    demo.add_argument(
        "--redis-url", default="redis://127.0.0.1:6379/0", help="for --store redis"
    )
    demo.add_argument(
        "--secret-key-file",
        metavar="FILE",
        help=f"for --store cookie: file holding the key (else ${secretkey.ENV_VAR}, "
        f"else one kept in {_kept_key_place()})",
    )
    demo.set_defaults(handler=run, command_parser=demo)


def demo_secret(args: argparse.Namespace) -> secretkey.SecretKey:
    """--secret-key-file, else $WSGISESSION_SECRET_KEY, else the demo's kept key."""
    if args.secret_key_file:
        return secretkey.read_secret_file(args.secret_key_file)
    return secretkey.secret_from_environment() or secretkey.kept_demo_secret()


def demo_spec(args: argparse.Namespace) -> tuple[StoreSpec, str]:
    """The demo's store keys, and a line saying where the secret key came from."""
    settings: dict[str, str] = {"store": args.store}
    note = ""
    if args.store == "cookie":
        secret = demo_secret(args)
        settings["secret_key"] = secret.key
        if secret.fallbacks:
            settings["secret_key_fallbacks"] = " ".join(secret.fallbacks)
        note = f"secret key: {secret.source}"
    if args.store == "memcached":
        settings["memcached_servers"] = args.memcached_servers
    if args.store == "redis":
        if holds_secret(args.redis_url):
            raise ConfigError(  # as cli._refuse_secret_arguments: ps shows arguments
                "--redis-url with a password is refused: arguments are visible "
                "to every user in ps; start the demo on a Redis without one"
            )
        settings["redis_url"] = args.redis_url
    return parse_settings(settings)[1], note


def run(args: argparse.Namespace) -> int:
    """Check the store once, then serve the demo until Ctrl-C."""
    spec, note = demo_spec(args)
    store = build_store(spec)
    reach_store(store, _HINTS.get(args.store, "check the store's path and permissions"))
    description = describe_store(spec, store)
    server = listen(args.host, args.port, DemoApp(store, description))
    with server:
        print(f"wsgisession demo on {url(args.host, server.server_port)}")
        print(f"sessions live in {description}")
        if note:
            print(note)
        print("press Ctrl-C to stop", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
    return 0
