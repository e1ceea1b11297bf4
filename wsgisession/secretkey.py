"""Where the command line finds a secret key, never on the command line itself.

A key given as an argument is visible to every local user in ``ps``, so
the ``wsgisession`` command reads it from a file (``--secret-key-file``) or
from the environment variable ``WSGISESSION_SECRET_KEY`` (older keys,
still accepted, in ``WSGISESSION_SECRET_KEY_FALLBACKS``). The demo, given
neither, keeps a generated key in the user's state directory, so that
restarting it does not log everyone out. No function here ever puts a key
into a message.
"""

from __future__ import annotations

import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError
from .stores._flock import make_missing_directories

__all__ = [
    "ENV_VAR",
    "FALLBACKS_ENV_VAR",
    "SecretKey",
    "demo_secret_path",
    "kept_demo_secret",
    "read_secret_file",
    "secret_from_environment",
]

ENV_VAR = "WSGISESSION_SECRET_KEY"
#: Older keys still accepted, whitespace-separated, as ``secret_key_fallbacks``.
FALLBACKS_ENV_VAR = "WSGISESSION_SECRET_KEY_FALLBACKS"
#: Bytes of randomness in a generated key (43 URL-safe characters).
GENERATED_BYTES = 32
#: The largest secret key file read (a key and its fallbacks take a few lines).
MAX_FILE_BYTES = 64 * 1024
HOW_TO_MAKE_ONE = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'


@dataclass(frozen=True)
class SecretKey:
    """A secret key, its fallbacks, and where they came from (for messages)."""

    key: str
    fallbacks: tuple[str, ...]
    source: str

    def __repr__(self) -> str:
        return f"SecretKey(<{len(self.fallbacks)} fallbacks>, source={self.source!r})"


def read_secret_file(path: str | os.PathLike[str]) -> SecretKey:
    """The key on the file's first line; further non-empty lines are fallbacks."""
    try:
        text = _read_bounded(path)
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(
            f"cannot read the secret key file {os.fspath(path)}: {reason}"
        ) from None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise ConfigError(
            f"the secret key file {os.fspath(path)} is empty; put a key on its "
            f"first line, made with: {HOW_TO_MAKE_ONE}"
        )
    return SecretKey(lines[0], tuple(lines[1:]), f"the file {os.fspath(path)}")


def _read_bounded(path: str | os.PathLike[str]) -> str:
    """The file's text, if it is no longer than a key file can be.

    ``/dev/urandom`` or ``/dev/zero`` given by mistake never ends: read
    whole, it would fill the memory.
    """
    with open(path, "rb") as file:
        data = file.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(
            f"the secret key file {os.fspath(path)} is larger than "
            f"{MAX_FILE_BYTES // 1024} KiB, so it is no key file; put a key on its "
            f"first line, made with: {HOW_TO_MAKE_ONE}"
        )
    return data.decode("utf-8")


def secret_from_environment() -> SecretKey | None:
    """The key in ``$WSGISESSION_SECRET_KEY`` (None if unset or empty), and fallbacks.

    The fallbacks, ``$WSGISESSION_SECRET_KEY_FALLBACKS``, are whitespace-separated;
    without the key they would be ignored, so they are refused instead.
    """
    value = os.environ.get(ENV_VAR, "").strip()
    fallbacks = tuple(os.environ.get(FALLBACKS_ENV_VAR, "").split())
    if not value:
        if fallbacks:
            raise ConfigError(f"${FALLBACKS_ENV_VAR} is set but ${ENV_VAR} is not")
        return None
    return SecretKey(value, fallbacks, f"${ENV_VAR}")


def demo_secret_path() -> Path:
    """``$XDG_STATE_HOME/wsgisession/demo-secret``, or under ``~/.local/state``.

    ConfigError if neither is known: ``HOME`` unset, and a user id without
    an account (a container's arbitrary user).
    """
    state = os.environ.get("XDG_STATE_HOME", "")
    if os.path.isabs(state):
        return Path(state) / "wsgisession" / "demo-secret"
    try:
        home = Path.home()
    except RuntimeError:  # HOME unset and no account: "Could not determine ..."
        raise ConfigError(
            "cannot keep the demo's secret key: HOME is unset and this user has "
            "no home directory; set XDG_STATE_HOME or HOME, or give a key with "
            f"--secret-key-file FILE or ${ENV_VAR}"
        ) from None
    return home / ".local" / "state" / "wsgisession" / "demo-secret"


def kept_demo_secret(path: Path | None = None) -> SecretKey:
    """The demo's own key: read from ``path``, or generated there (mode 0600)
    once, in directories made with mode 0700 whatever the umask."""
    path = path or demo_secret_path()
    try:
        make_missing_directories(str(path.parent))
        descriptor = os.open(
            path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600
        )
    except FileExistsError:
        return _read_kept(path)
    except OSError as exc:
        raise ConfigError(
            f"cannot keep the demo's secret key in {path}: {exc.strerror}; give one "
            f"with --secret-key-file FILE or ${ENV_VAR}"
        ) from None
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(secrets.token_urlsafe(GENERATED_BYTES) + "\n")
    return _read_kept(path)


def _read_kept(path: Path) -> SecretKey:
    try:
        info = os.stat(path, follow_symlinks=False)
    except OSError as exc:
        raise ConfigError(
            f"cannot read the demo's secret key {path}: {exc.strerror}"
        ) from None
    if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
        raise ConfigError(f"{path} is not a regular file of yours; remove it")
    if info.st_mode & 0o077:
        raise ConfigError(
            f"{path} can be read by other users (mode {stat.S_IMODE(info.st_mode):o}); "
            f"run: chmod 600 {path}"
        )
    kept = read_secret_file(path)
    return SecretKey(kept.key, kept.fallbacks, f"kept in {path}")
