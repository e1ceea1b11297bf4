"""SignedCookieStore: the whole session travels in the cookie, signed.

There is no server-side record: the cookie value *is* the session key, and
it changes with every save. The value is URL-safe base64 of a small binary
record (a format byte, ``expires_at`` and the payload, zlib-compressed when
that makes it shorter, or AES-GCM encrypted with ``encrypt=True``), then
``.`` and an HMAC-SHA256 signature made with :mod:`itsdangerous`. The
signed ``expires_at`` is checked on every load, so an expired cookie is
refused even if the browser keeps sending it.

What this store cannot do, and when to choose a server-side store instead:

* It cannot revoke a cookie before it expires. Logging out only stops the
  browser from sending it; a copy taken earlier (stolen, or kept by the
  user) still loads until its ``expires_at``, which each save moves on:
  only ``absolute_timeout`` ends a copy kept in use. Rotating the secret
  key without fallbacks is the only way to kill every cookie at once.
* The client can read the data unless ``encrypt=True``: it is signed, not
  hidden. Never put secrets in it without encryption.
* Browsers drop cookies over about 4 KB, so the session must stay small;
  :class:`~wsgisession.errors.SessionCookieTooLarge` is raised rather than
  letting the browser drop it silently (also for a payload over
  ``MAX_PAYLOAD_SIZE``, however well it compresses).
* Every saving response carries the whole session, and two concurrent
  requests cannot merge their changes: the last response wins.

Choose a server-side store (file, SQLite, Redis, memcached) when logout
must end the session everywhere, when the data is large or sensitive, or
when concurrent requests change the session.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import math
import os
import struct
import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from itsdangerous import BadSignature, Signer

from .. import _coerce as c
from ..errors import COOKIE_SIZE_LIMIT, ConfigError, SessionCookieTooLarge
from ..keys import urlsafe_base64
from ..logthrottle import ThrottledWarning
from ._cookie_secrets import cookie_secrets, parse_fallbacks, parse_secret
from .base import IniOption, Merge, Progress, Record, Store, now

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "COMPRESS_THRESHOLD",
    "MAX_PAYLOAD_SIZE",
    "MAX_VALUE_SIZE",
    "SignedCookieStore",
]

logger = logging.getLogger(__name__)

#: The largest cookie value :meth:`SignedCookieStore.create` and ``update``
#: produce; the middleware checks the whole ``Set-Cookie`` header as well.
MAX_VALUE_SIZE = COOKIE_SIZE_LIMIT  # the cookie value alone must fit too
#: The longest payload a value holds: deflated, 4 KB holds megabytes of
#: repeated text, which every request sending the cookie would inflate.
MAX_PAYLOAD_SIZE = 64 * 1024

_SALT = b"wsgisession.cookie"
_CIPHER_INFO = b"wsgisession.cookie.aes-256-gcm"
#: The characters of a value (URL-safe base64 and "."), as bytes to delete:
#: a value is well-formed if nothing is left (a regular expression cost
#: three times as much on a 1 KB value).
_VALUE_CHARACTERS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-"
_MAX_KEY_LENGTH = 4096
_HEADER = struct.Struct(">Bd")  # format byte, expires_at
_PLAIN, _ZLIB, _SEALED = 1, 2, 3  # format bytes
_NONCE_SIZE = 12
# Raw deflate with a 4 KB window: a cookie is smaller than that anyway, and
# setting up zlib's default 32 KB window costs ten times the compression.
_WBITS, _MEMLEVEL = -12, 4
#: Payloads this long or longer are compressed (when that makes them
#: shorter). zlib's setup costs as much for 100 bytes as for 1000, and
#: compressing a small record saves a few dozen bytes of cookie at most.
COMPRESS_THRESHOLD = 256
_NO_CRYPTO = (
    "encrypt = true needs the 'crypto' extra: pip install 'wsgisession[crypto]'"
)


def _deflate(payload: bytes) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, _WBITS, _MEMLEVEL)
    return compressor.compress(payload) + compressor.flush()


class _Cipher:
    """AES-256-GCM, one key per secret: seal with the newest, open with any.

    Keys come from HKDF-SHA256 over each secret, so they are independent of
    the signing keys. Each value gets a random 96-bit nonce.
    """

    def __init__(self, secrets: Sequence[bytes]) -> None:
        try:
            from cryptography.exceptions import InvalidTag
            from cryptography.hazmat.primitives import hashes
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM
            from cryptography.hazmat.primitives.kdf.hkdf import HKDF
        except ImportError as exc:
            raise ConfigError(_NO_CRYPTO) from exc
        self._invalid_tag = InvalidTag
        self._aeads: list[AESGCM] = [
            AESGCM(
                HKDF(
                    algorithm=hashes.SHA256(), length=32, salt=_SALT, info=_CIPHER_INFO
                ).derive(secret)
            )
            for secret in secrets
        ]

    def seal(self, plaintext: bytes, header: bytes) -> bytes:
        nonce = os.urandom(_NONCE_SIZE)
        return nonce + self._aeads[0].encrypt(nonce, plaintext, header)

    def open(self, sealed: bytes, header: bytes) -> bytes | None:
        nonce, ciphertext = sealed[:_NONCE_SIZE], sealed[_NONCE_SIZE:]
        if len(nonce) != _NONCE_SIZE:
            return None
        for aead in self._aeads:
            try:
                return aead.decrypt(nonce, ciphertext, header)
            except self._invalid_tag:
                continue
        return None


def _signer(secrets: Sequence[bytes]) -> Signer:
    """itsdangerous' HMAC-SHA256 signer, salted, its keys derived once.

    The keys are what ``key_derivation="hmac"`` derives on every call, so
    the signatures are the same; deriving them here saves an HMAC per
    signature made or checked. itsdangerous verifies with the newest (last)
    key first and signs with the last.
    """
    derive = Signer(
        b"unused", salt=_SALT, key_derivation="hmac", digest_method=hashlib.sha256
    ).derive_key
    return Signer(
        [derive(secret) for secret in reversed(secrets)],
        salt=_SALT,
        sep=".",
        key_derivation="none",
        digest_method=hashlib.sha256,
    )


def _b64decode(text: bytes) -> bytes:
    return base64.urlsafe_b64decode(text + b"=" * (-len(text) % 4))


#: Why a value of this store's format is refused by its signature: most
#: likely its key is no longer among the secret key and fallbacks.
_SIGNED_ELSEWHERE = (
    "bad signature on a well-formed value: signed with a key this store does "
    "not have (secret_key changed without the old key in "
    "secret_key_fallbacks?), or forged"
)
#: A signed expiry further ahead than this (s) is no value of this store.
_LATEST_EXPIRY = 100 * 366 * 86400
#: No value of this store expired before this moment (2001-09-09).
_EARLIEST_EXPIRY = 1e9


def _looks_signed_elsewhere(value: str) -> bool:
    """Whether ``value``, whose signature failed, has this store's format: a
    known format byte and an expiry near now (random text seldom does)."""
    body, separator, _ = value.rpartition(".")
    try:
        blob = _b64decode(body.encode("ascii"))
    except ValueError:
        return False
    if not separator or len(blob) < _HEADER.size:
        return False
    kind, expires_at = _HEADER.unpack_from(blob)
    return kind in (_PLAIN, _ZLIB, _SEALED) and (
        _EARLIEST_EXPIRY < expires_at < now() + _LATEST_EXPIRY
    )


class SignedCookieStore(Store):
    """Keeps the session in the signed cookie value itself; see the module doc.

    ``secret_key`` signs every new value; ``fallbacks`` (older keys) are
    still accepted when verifying, so keys can be rotated without logging
    everyone out. ``encrypt=True`` also encrypts the payload (AES-256-GCM,
    needs ``cryptography``); encrypted values are never compressed, so
    their length says nothing about how repetitive the data is. Unencrypted
    payloads of ``compress_threshold`` bytes or more are zlib-compressed
    when that makes them shorter. A store with ``encrypt=True`` still reads
    signed unencrypted values (so turning encryption on logs nobody out)
    and encrypts them on their next save.
    """

    ini_name = "cookie"
    ini_options = (
        IniOption(
            "secret_key", "secret (32+ bytes)", None,
            "Key that signs the session cookie, at least 32 bytes; make one "
            "with python -c \"import secrets; print(secrets.token_urlsafe(32))\". "
            "Keep it secret.",
            c.secret, parse_secret, required=True,
        ),
        IniOption(
            "secret_key_fallbacks", "list of secrets (32+ bytes each)", (),
            "Older secret keys, whitespace-separated, still accepted when "
            "verifying, so that keys can be rotated.",
            c.secret_list, parse_fallbacks, argument="fallbacks",
        ),
        IniOption(
            "encrypt", "bool", False,
            "Encrypt the cookie with AES-GCM (needs the crypto extra); "
            "startup fails without it, never storing plaintext.",
            c.boolean, c.parse_bool,
        ),
    )  # fmt: skip

    client_side = True
    supports_locking = False

    def _no_user_sessions(self) -> NotImplementedError:
        return NotImplementedError(
            "SignedCookieStore does not support user sessions: the session lives "
            "in the client's cookie, and a client-side session cannot be revoked "
            "without server-side state; use a server-side store (memory, file, "
            "SQLite, SQL, Redis or memcached) for bind_user and revocation"
        )

    def __init__(
        self,
        secret_key: str | bytes,
        fallbacks: Sequence[str | bytes] = (),
        *,
        encrypt: bool = False,
        compress_threshold: int = COMPRESS_THRESHOLD,
    ) -> None:
        secrets = cookie_secrets(secret_key, fallbacks)
        if not isinstance(encrypt, bool):
            raise ConfigError(f"encrypt must be True or False, not {encrypt!r}")
        if type(compress_threshold) is not int or compress_threshold < 0:
            raise ConfigError(
                f"compress_threshold must be an int >= 0, not {compress_threshold!r}"
            )
        self._signer = _signer(secrets)
        self._cipher = _Cipher(secrets) if encrypt else None
        self._fallback_count = len(secrets) - 1
        self.encrypt = encrypt
        self.compress_threshold = compress_threshold
        # Any client can send a bad cookie: at most one WARNING a minute per
        # reason, so that a flood of one kind hides no other (a key rotated
        # without its fallback, a clock that jumped) for a minute or more.
        self._warn_rejected: dict[str, ThrottledWarning] = {}

    def generate_key(self) -> str:
        """No id to draw: the value is made when the payload is signed (:meth:`create`)."""
        return ""

    def is_valid_key(self, session_key: object) -> bool:
        """Whether ``session_key`` has the characters and length of a value."""
        return (
            type(session_key) is str
            and 0 < len(session_key) <= _MAX_KEY_LENGTH
            and session_key.isascii()
            and not session_key.encode("ascii").translate(None, _VALUE_CHARACTERS)
        )

    def load(self, session_key: str) -> Record | None:
        record, reason = self._open(session_key)
        if record is None:
            self._warn_rejection(reason)
        return record

    def _warn_rejection(self, reason: str) -> None:
        """Log a refused cookie: a WARNING the first time in a minute for
        ``reason`` (one of a few fixed texts), else at DEBUG."""
        warn = self._warn_rejected.get(reason)
        if warn is None:
            warn = self._warn_rejected.setdefault(reason, ThrottledWarning(logger))
        warn("%r rejected a session cookie: %s", self, reason)

    def exists(self, session_key: str) -> bool:
        return self._open(session_key)[0] is not None

    def create(self, session_key: str, payload: bytes, expires_at: float) -> str:
        """Sign ``payload`` into a new value; ``session_key`` is not used."""
        return self._seal(payload, expires_at)

    def update(self, session_key: str, merge: Merge, loaded: Record | None) -> str:
        """Sign what ``merge`` makes of the loaded payload into a new value.

        The cookie the request brought is the only copy there is, so
        ``loaded`` is the current record. A result that is already expired
        still gets a value, which every later load refuses.
        """
        payload, expires_at = merge(None if loaded is None else loaded.payload)
        return self._seal(payload, expires_at)

    def delete(self, session_key: str) -> None:
        """Nothing to delete: dropping the cookie is the middleware's job."""

    def clear_expired(self, progress: Progress | None = None) -> int:
        """Expired cookies live in browsers only; nothing to remove here."""
        return 0

    def _seal(self, payload: bytes, expires_at: float) -> str:
        if len(payload) > MAX_PAYLOAD_SIZE:
            raise SessionCookieTooLarge(len(payload), MAX_PAYLOAD_SIZE, payload=True)
        kind, data = _PLAIN, payload
        if self._cipher is not None:
            kind = _SEALED
        elif len(payload) >= self.compress_threshold:
            packed = _deflate(payload)
            if len(packed) < len(payload):
                kind, data = _ZLIB, packed
        header = _HEADER.pack(kind, expires_at)
        if self._cipher is not None:
            data = self._cipher.seal(payload, header)
        body = urlsafe_base64(header + data)
        value = self._signer.sign(body).decode("ascii")
        if len(value) > MAX_VALUE_SIZE:
            raise SessionCookieTooLarge(len(value), MAX_VALUE_SIZE)
        return value

    def _open(self, value: object) -> tuple[Record | None, str]:
        """The live record in ``value``, or None and why it was refused."""
        if not isinstance(value, str) or not self.is_valid_key(value):
            return None, "malformed value"
        try:
            body = self._signer.unsign(value)
        except BadSignature:
            if _looks_signed_elsewhere(value):
                return None, _SIGNED_ELSEWHERE
            return None, "bad signature (tampered, or not a value of this store)"
        try:
            blob = _b64decode(body)
        except ValueError:
            return None, "malformed value (bad base64)"
        if len(blob) < _HEADER.size:
            return None, "malformed value (too short)"
        kind, expires_at = _HEADER.unpack_from(blob)
        if not math.isfinite(expires_at):
            return None, "malformed value (bad expiry)"
        if expires_at <= now():
            return None, "expired"
        header, data = blob[: _HEADER.size], blob[_HEADER.size :]
        payload, reason = self._unpack(kind, header, data)
        if payload is None:
            return None, f"malformed value ({reason})"
        return Record(payload, expires_at), ""

    def _unpack(
        self, kind: int, header: bytes, data: bytes
    ) -> tuple[bytes | None, str]:
        if kind == _PLAIN:
            return data, ""
        if kind == _ZLIB:
            inflater = zlib.decompressobj(_WBITS)
            try:
                inflated = inflater.decompress(data, MAX_PAYLOAD_SIZE + 1)
            except zlib.error:
                return None, "bad compressed data"
            if len(inflated) > MAX_PAYLOAD_SIZE:
                return None, f"inflates past {MAX_PAYLOAD_SIZE} bytes"
            return (inflated, "") if inflater.eof else (None, "bad compressed data")
        if kind == _SEALED:
            if self._cipher is None:
                return None, "encrypted, but this store has encrypt=False"
            payload = self._cipher.open(data, header)
            return payload, "" if payload is not None else "cannot decrypt"
        return None, f"unknown format {kind}"

    def __repr__(self) -> str:
        return (
            f"SignedCookieStore(<{self._fallback_count} fallbacks>, "
            f"encrypt={self.encrypt})"
        )
