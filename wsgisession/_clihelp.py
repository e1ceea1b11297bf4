"""The help texts of the ``wsgisession`` command: its store kinds, how it
takes secret keys, and each command's examples (epilogs of ``--help``)."""

from __future__ import annotations

from . import secretkey
from .demo.command import DEMO_STORES

__all__ = [
    "CHECK_EXAMPLES",
    "CLEAR_EXAMPLES",
    "DEMO_EPILOG",
    "INIT_DB_EXAMPLES",
    "SECRETS",
    "STORE_KINDS",
]

STORE_KINDS = """\
store kinds (--store, or store = in an ini file):
  memory      this process's memory only                   no extra
  file        one file per session in a directory          no extra
  sqlite      an SQLite database file (the default)        no extra
  memcached   memcached servers                            pip install 'wsgisession[memcached]'
  redis       a Redis server                               pip install 'wsgisession[redis]'
  sql         a table of PostgreSQL, MySQL/MariaDB, SQLite pip install 'wsgisession[sql]' and a driver
  cookie      the signed cookie itself, no server state    no extra ('wsgisession[crypto]' to encrypt)
"""


def _secrets(config_clause: str) -> str:
    """How a command takes secret keys; ``config_clause`` adds how ``--config`` does."""
    return f"""\
secret keys (cookie store) are never given as arguments, which ps shows to
every user: --secret-key-file FILE (first line the key, further lines older
keys still accepted) or the environment variable {secretkey.ENV_VAR}
(older keys in {secretkey.FALLBACKS_ENV_VAR}, whitespace-separated{config_clause}).
Make one with: {secretkey.HOW_TO_MAKE_ONE}
"""


SECRETS = _secrets(
    ";\nwith --config, the file's secret_key, e.g. %(session_secret)s, counts"
)

#: The demo's store kinds (it serves no SQL store) and secrets (it has no --config).
DEMO_STORE_KINDS = "".join(
    line
    for line in STORE_KINDS.splitlines(keepends=True)
    if not line.startswith("  ") or line.split()[0] in DEMO_STORES
)
DEMO_SECRETS = _secrets("")

DEMO_EXAMPLES = """\
examples:
  wsgisession demo                              SQLite in the temporary directory
  wsgisession demo --store memory --port 8000
  wsgisession demo --store redis --redis-url redis://127.0.0.1:6379/0
  wsgisession demo --store cookie               key kept in ~/.local/state/wsgisession/
"""

CHECK_EXAMPLES = f"""\
examples:
  wsgisession check --config production.ini#session
  wsgisession check --config production.ini#main --global data_dir=/var/lib/myapp
  SESSION_SECRET=... wsgisession check --config production.ini#session
  wsgisession check --store redis --redis-url redis://127.0.0.1:6379/0
  {secretkey.ENV_VAR}=... wsgisession check --store cookie

%(name)s in the ini file comes from [DEFAULT], --global NAME=VALUE (as an
app's global_conf; [DEFAULT] wins in %(name)s, --global in the globals the
filter gets, as in Paste Deploy), or else from the
environment variable name or NAME. --global values show in ps: pass secrets
through the environment.
"""

INIT_DB_EXAMPLES = """\
examples (once, before the app's first request, as a user that may create tables):
  wsgisession init-db --config production.ini#session
  wsgisession init-db --config production.ini#session --sql > sessions.sql
"""

CLEAR_EXAMPLES = """\
examples (run it from cron, e.g. hourly):
  wsgisession clear-expired --config production.ini#session
  wsgisession clear-expired --store file --file-path /var/lib/myapp/sessions
"""

DEMO_EPILOG = DEMO_STORE_KINDS + "\n" + DEMO_SECRETS + "\n" + DEMO_EXAMPLES
