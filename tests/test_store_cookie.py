"""SignedCookieStore: signing, expiry, rotation, compression and encryption."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import struct
import sys

import pytest
from helpers import FakeClock
from hypothesis import given
from hypothesis import strategies as st
from itsdangerous import Signer

from wsgisession.errors import ConfigError, SessionCookieTooLarge
from wsgisession.stores.base import Record, now
from wsgisession.stores.cookie import (
    COMPRESS_THRESHOLD,
    MAX_VALUE_SIZE,
    SignedCookieStore,
)

LOGGER = "wsgisession.stores.cookie"
SECRET = "current-secret-key-0123456789abcdef"
OLD_SECRET = "old-secret-key-fedcba9876543210-0123"
PAYLOAD = b'{"user": 42, "cart": ["apple", "pear"]}'
COOKIE_CHARS = re.compile(r"[A-Za-z0-9_.\-]+")
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def later(seconds: float = 3600.0) -> float:
    return now() + seconds


def body_bytes(value: str) -> bytes:
    """The decoded bytes of the signed part of a value (before the signature)."""
    body = value.rsplit(".", 1)[0].encode("ascii")
    return base64.urlsafe_b64decode(body + b"=" * (-len(body) % 4))


def flip(value: str, index: int) -> str:
    """``value`` with the base64 character at ``index`` changed in its top bit."""
    changed = B64[B64.index(value[index]) ^ 0b100000]
    return value[:index] + changed + value[index + 1 :]


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING
    ]


def assert_refused(
    store: SignedCookieStore, value: str, caplog: pytest.LogCaptureFixture, why: str
) -> None:
    """load() gives None and logs exactly one line containing ``why``.

    A WARNING the first time in a minute, DEBUG after that (rate-limited).
    """
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        assert store.load(value) is None
    records = [r for r in caplog.records if r.name == LOGGER]
    assert len(records) == 1, [r.getMessage() for r in records]
    assert records[0].levelno in (logging.WARNING, logging.DEBUG)
    assert why in records[0].getMessage()
    assert "SignedCookieStore" in records[0].getMessage()
    assert store.exists(value) is False


def payload_of(store: SignedCookieStore, value: str) -> bytes | None:
    """The payload ``value`` holds, if it loads as a live record."""
    record = store.load(value)
    assert record is None or record.expires_at > now()
    return None if record is None else record.payload


@pytest.fixture
def store() -> SignedCookieStore:
    return SignedCookieStore(SECRET)


# -- round trips and the protocol --------------------------------------------


def test_round_trip_keeps_payload_and_exact_expiry(store: SignedCookieStore) -> None:
    expires_at = now() + 123.456789
    value = store.create(store.generate_key(), PAYLOAD, expires_at)
    assert store.is_valid_key(value)
    assert COOKIE_CHARS.fullmatch(value)
    assert store.load(value) == Record(PAYLOAD, expires_at)
    assert store.exists(value) is True


def test_create_ignores_the_key_argument(store: SignedCookieStore) -> None:
    key = store.generate_key()
    value = store.create(key, PAYLOAD, later())
    assert value != key
    assert store.load(key) is None
    assert payload_of(store, value) == PAYLOAD


def test_update_merges_loaded_payload_into_a_new_value(
    store: SignedCookieStore,
) -> None:
    value = store.create("", PAYLOAD, later())
    loaded = store.load(value)
    seen: list[bytes | None] = []
    new_expiry = later(7200)

    def merge(current: bytes | None) -> tuple[bytes, float]:
        seen.append(current)
        return b'{"user": 43}', new_expiry

    new_value = store.update(value, merge, loaded)
    assert seen == [PAYLOAD]
    assert new_value != value
    assert store.load(new_value) == Record(b'{"user": 43}', new_expiry)


def test_update_without_loaded_record_merges_none(store: SignedCookieStore) -> None:
    seen: list[bytes | None] = []

    def merge(current: bytes | None) -> tuple[bytes, float]:
        seen.append(current)
        return b"{}", later()

    value = store.update("", merge, None)
    assert seen == [None]
    assert payload_of(store, value) == b"{}"


def test_update_propagates_merge_errors(store: SignedCookieStore) -> None:
    def merge(current: bytes | None) -> tuple[bytes, float]:
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        store.update("", merge, None)


def test_update_to_a_past_expiry_gives_a_dead_value(
    store: SignedCookieStore, caplog: pytest.LogCaptureFixture
) -> None:
    value = store.update("", lambda current: (PAYLOAD, now() - 1), None)
    assert_refused(store, value, caplog, "expired")


def test_delete_and_clear_expired_do_nothing(store: SignedCookieStore) -> None:
    value = store.create("", PAYLOAD, later())
    store.delete(value)
    store.delete("not a value")
    assert payload_of(store, value) == PAYLOAD
    assert store.clear_expired() == 0


def test_store_kind_flags() -> None:
    assert SignedCookieStore.client_side is True
    assert SignedCookieStore.supports_locking is False


def test_repr_hides_the_secrets() -> None:
    store = SignedCookieStore(
        SECRET, [OLD_SECRET, b"bytes-secret-0123456789abcdef-xyz"], encrypt=True
    )
    text = repr(store)
    assert text.startswith("SignedCookieStore(")
    for secret in (SECRET, OLD_SECRET, "bytes-secret-0123456789abcdef-xyz"):
        assert secret not in text
    assert "2 fallbacks" in text


# -- refusing bad values -----------------------------------------------------


def test_flipped_signature_is_refused(
    store: SignedCookieStore, caplog: pytest.LogCaptureFixture
) -> None:
    value = store.create("", PAYLOAD, later())
    middle_of_signature = len(value) - 20
    assert_refused(store, flip(value, middle_of_signature), caplog, "bad signature")


def test_flipped_payload_is_refused(
    store: SignedCookieStore, caplog: pytest.LogCaptureFixture
) -> None:
    value = store.create("", PAYLOAD, later())
    middle_of_body = value.index(".") // 2
    assert_refused(store, flip(value, middle_of_body), caplog, "bad signature")


def test_value_signed_with_a_foreign_key_is_refused(
    store: SignedCookieStore, caplog: pytest.LogCaptureFixture
) -> None:
    foreign = SignedCookieStore("someone-else's-key-0123456789abcdef").create(
        "", PAYLOAD, later()
    )
    assert_refused(store, foreign, caplog, "bad signature")


@pytest.mark.parametrize(
    ("garbage", "why"),
    [
        ("", "malformed"),
        ("a", "bad signature"),
        ("x" * 5000, "malformed"),
        ("\x00", "malformed"),
        ("..", "bad signature"),
        ("a.b.c", "bad signature"),
        ("abc;def", "malformed"),
        ("abc def", "malformed"),
        ('"quoted"', "malformed"),
        ("é", "malformed"),
        ("\ud800", "malformed"),
    ],
)
def test_garbage_is_refused_with_one_warning(
    store: SignedCookieStore, garbage: str, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    assert_refused(store, garbage, caplog, why)


@pytest.mark.parametrize("garbage", [None, 42, b"bytes.value", ["list"]])
def test_non_strings_are_refused(
    store: SignedCookieStore, garbage: object, caplog: pytest.LogCaptureFixture
) -> None:
    assert_refused(store, garbage, caplog, "malformed")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("blob", "why"),
    [
        (b"\x01", "too short"),
        (struct.pack(">Bd", 9, later()) + b"x", "unknown format 9"),
        (struct.pack(">Bd", 2, later()) + b"not zlib", "bad compressed data"),
        (struct.pack(">Bd", 1, float("nan")) + b"x", "bad expiry"),
        (struct.pack(">Bd", 1, float("inf")) + b"x", "bad expiry"),
        (struct.pack(">Bd", 3, later()) + b"short", "encrypt=False"),
    ],
    # Named by the case, not the bytes: a blob holding later() would name a
    # test differently at each collection (--lf, --deselect and xdist).
    ids=["short", "format-9", "not-zlib", "nan", "inf", "encrypted"],
)
def test_signed_but_garbled_values_are_refused(
    store: SignedCookieStore, blob: bytes, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Signed with the store's own signer: only a bug or a leaked key makes these.
    body = base64.urlsafe_b64encode(blob).rstrip(b"=")
    value = store._signer.sign(body).decode("ascii")
    assert_refused(store, value, caplog, why)


def test_signed_bad_base64_is_refused(
    store: SignedCookieStore, caplog: pytest.LogCaptureFixture
) -> None:
    value = store._signer.sign(b"abcde").decode("ascii")  # 5 chars: not base64
    assert_refused(store, value, caplog, "bad base64")


@given(st.text(max_size=300))
def test_arbitrary_text_never_makes_load_raise(text: str) -> None:
    store = SignedCookieStore(SECRET)
    assert store.load(text) is None
    assert store.exists(text) is False


@given(st.from_regex(r"[A-Za-z0-9_\-]{0,80}\.[A-Za-z0-9_\-]{0,50}", fullmatch=True))
def test_arbitrary_well_shaped_values_are_refused(text: str) -> None:
    store = SignedCookieStore(SECRET)
    assert store.load(text) is None
    assert store.exists(text) is False


def test_exists_does_not_log(
    store: SignedCookieStore, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert store.exists("garbage") is False
        assert store.exists(flip(store.create("", PAYLOAD, later()), 5)) is False
    assert warnings_of(caplog) == []


def test_is_valid_key_accepts_only_cookie_safe_values(
    store: SignedCookieStore,
) -> None:
    assert store.is_valid_key(store.create("", PAYLOAD, later()))
    assert store.is_valid_key("a" * 4096)
    for bad in ["", "a" * 4097, "a;b", "a,b", "a b", 'a"b', "a=b", "a+b", "a/b"]:
        assert not store.is_valid_key(bad), bad
    for other in [None, 1, b"abc", ["abc"]]:
        assert not store.is_valid_key(other)


@given(st.text(max_size=60) | st.from_regex(r"[A-Za-z0-9_.\-]{1,60}", fullmatch=True))
def test_a_value_is_valid_exactly_when_it_has_the_shape(text: str) -> None:
    """URL-safe base64 and ".", nothing else: "é", "٣", "\x00", "+" are refused."""
    store = SignedCookieStore(SECRET)
    expected = re.fullmatch(r"[A-Za-z0-9_.\-]+", text) is not None
    assert store.is_valid_key(text) is expected


# -- expiry ------------------------------------------------------------------


def test_expired_value_is_refused(
    store: SignedCookieStore, caplog: pytest.LogCaptureFixture
) -> None:
    value = store.create("", PAYLOAD, now() - 1)
    assert_refused(store, value, caplog, "expired")


def test_value_expires_while_the_browser_keeps_it(
    store: SignedCookieStore, caplog: pytest.LogCaptureFixture, frozen_clock: FakeClock
) -> None:
    value = store.create("", PAYLOAD, now() + 0.2)
    assert store.load(value) is not None
    frozen_clock.advance(0.25)
    assert_refused(store, value, caplog, "expired")


# -- key rotation ------------------------------------------------------------


def test_old_key_value_loads_through_fallbacks_and_is_resigned(
    caplog: pytest.LogCaptureFixture,
) -> None:
    old_value = SignedCookieStore(OLD_SECRET).create("", PAYLOAD, later())
    rotated = SignedCookieStore(
        SECRET, [b"unrelated-older-key-0123456789abcdef", OLD_SECRET]
    )
    loaded = rotated.load(old_value)
    assert loaded is not None and loaded.payload == PAYLOAD

    updated = rotated.update(old_value, lambda cur: (cur or b"", later()), loaded)
    created = rotated.create("", b"new", later())
    new_only = SignedCookieStore(SECRET)
    assert payload_of(new_only, updated) == PAYLOAD
    assert payload_of(new_only, created) == b"new"
    old_only = SignedCookieStore(OLD_SECRET)
    assert_refused(old_only, updated, caplog, "bad signature")


def test_old_key_value_is_refused_without_the_fallback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    old_value = SignedCookieStore(OLD_SECRET).create("", PAYLOAD, later())
    assert_refused(SignedCookieStore(SECRET), old_value, caplog, "bad signature")


def test_no_fallbacks_given_as_none() -> None:
    value = SignedCookieStore(SECRET).create("", PAYLOAD, later())
    assert payload_of(SignedCookieStore(SECRET, None), value) == PAYLOAD  # type: ignore[arg-type]


def test_str_and_bytes_secrets_are_the_same_key() -> None:
    value = SignedCookieStore(SECRET).create("", PAYLOAD, later())
    assert SignedCookieStore(SECRET.encode()).load(value) is not None


# -- compression -------------------------------------------------------------


def test_large_repetitive_payload_is_compressed(store: SignedCookieStore) -> None:
    payload = b'{"items": [' + b'"same old item", ' * 300 + b'"end"]}'
    value = store.create("", payload, later())
    assert len(value) < len(payload)
    assert payload not in body_bytes(value)
    assert payload_of(store, value) == payload


def test_tiny_payload_is_stored_as_is(store: SignedCookieStore) -> None:
    value = store.create("", b'{"a":1}', later())
    assert body_bytes(value).endswith(b'{"a":1}')


def test_payload_below_threshold_is_not_compressed() -> None:
    store = SignedCookieStore(SECRET, compress_threshold=100)
    payload = b"a" * 99
    assert body_bytes(store.create("", payload, later())).endswith(payload)
    assert payload not in body_bytes(store.create("", b"a" * 100, later()))


def test_the_default_threshold_leaves_small_records_uncompressed(
    store: SignedCookieStore,
) -> None:
    small = b"a" * (COMPRESS_THRESHOLD - 1)
    assert body_bytes(store.create("", small, later())).endswith(small)
    assert small not in body_bytes(store.create("", small + b"a", later()))


def test_incompressible_payload_is_stored_as_is(store: SignedCookieStore) -> None:
    payload = os.urandom(500)
    value = store.create("", payload, later())
    assert body_bytes(value).endswith(payload)
    assert payload_of(store, value) == payload


# -- size --------------------------------------------------------------------


def test_too_large_value_raises_with_size_and_limit(store: SignedCookieStore) -> None:
    payload = os.urandom(4000)  # incompressible: about 5.4 KB of base64
    with pytest.raises(SessionCookieTooLarge) as info:
        store.create("", payload, later())
    assert info.value.size > MAX_VALUE_SIZE == info.value.limit == 4093
    with pytest.raises(SessionCookieTooLarge):
        store.update("", lambda current: (payload, later()), None)


def test_value_just_under_the_limit_is_accepted(store: SignedCookieStore) -> None:
    payload = os.urandom(2900)
    value = store.create("", payload, later())
    assert len(value) <= MAX_VALUE_SIZE
    assert store.load(value) is not None


# -- encryption --------------------------------------------------------------


def test_encrypted_value_hides_the_payload() -> None:
    store = SignedCookieStore(SECRET, encrypt=True)
    marker = b"top-secret-marker"
    payload = b'{"note": "' + marker * 20 + b'"}'
    value = store.create("", payload, later())
    assert COOKIE_CHARS.fullmatch(value)
    decoded = body_bytes(value)
    assert marker not in decoded
    assert b"top-secret" not in decoded
    assert "top-secret" not in value
    assert len(decoded) > len(payload)  # not compressed: the length hides nothing
    assert payload_of(store, value) == payload


def test_encryption_uses_a_fresh_nonce_each_time() -> None:
    store = SignedCookieStore(SECRET, encrypt=True)
    expires_at = later()
    first = store.create("", PAYLOAD, expires_at)
    second = store.create("", PAYLOAD, expires_at)
    assert first != second
    assert store.load(first) == store.load(second) == Record(PAYLOAD, expires_at)


def test_tampered_encrypted_value_is_refused(caplog: pytest.LogCaptureFixture) -> None:
    store = SignedCookieStore(SECRET, encrypt=True)
    value = store.create("", PAYLOAD, later())
    assert_refused(store, flip(value, value.index(".") - 10), caplog, "bad signature")
    assert_refused(store, flip(value, len(value) - 20), caplog, "bad signature")


def test_encrypted_value_is_refused_by_a_store_without_encryption(
    caplog: pytest.LogCaptureFixture,
) -> None:
    value = SignedCookieStore(SECRET, encrypt=True).create("", PAYLOAD, later())
    assert_refused(SignedCookieStore(SECRET), value, caplog, "encrypt=False")


def test_signed_value_with_undecryptable_data_is_refused(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = SignedCookieStore(SECRET, encrypt=True)
    blob = struct.pack(">Bd", 3, later()) + os.urandom(40)
    value = store._signer.sign(base64.urlsafe_b64encode(blob).rstrip(b"="))
    assert_refused(store, value.decode("ascii"), caplog, "cannot decrypt")


def test_fallback_keys_also_decrypt() -> None:
    old_value = SignedCookieStore(OLD_SECRET, encrypt=True).create("", PAYLOAD, later())
    rotated = SignedCookieStore(SECRET, [OLD_SECRET], encrypt=True)
    loaded = rotated.load(old_value)
    assert loaded is not None and loaded.payload == PAYLOAD
    updated = rotated.update(old_value, lambda cur: (cur or b"", later()), loaded)
    new_only = SignedCookieStore(SECRET, encrypt=True)
    assert payload_of(new_only, updated) == PAYLOAD


def test_encrypting_store_reads_signed_plain_values_and_encrypts_on_save() -> None:
    plain = SignedCookieStore(SECRET).create("", PAYLOAD, later())
    store = SignedCookieStore(SECRET, encrypt=True)
    loaded = store.load(plain)
    assert loaded is not None and loaded.payload == PAYLOAD
    resaved = store.update(plain, lambda cur: (cur or b"", later()), loaded)
    assert b"apple" not in body_bytes(resaved)


# -- configuration -----------------------------------------------------------


@pytest.mark.parametrize("secret", ["", b"", None, 42])
def test_missing_secret_is_a_config_error(secret: object) -> None:
    with pytest.raises(ConfigError, match="secret_key"):
        SignedCookieStore(secret)  # type: ignore[arg-type]


@pytest.mark.parametrize("where", ["secret_key", "fallbacks[0]"])
def test_a_secret_that_is_not_utf8_text_is_a_config_error(where: str) -> None:
    """A str holding undecodable bytes (os.environ's surrogate escapes)."""
    raw = os.fsdecode(b"\xff\xfe" + SECRET.encode())
    with pytest.raises(ConfigError, match=rf"{re.escape(where)}.*UTF-8") as caught:
        if where == "secret_key":
            SignedCookieStore(raw)
        else:
            SignedCookieStore(SECRET, [raw])
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize("fallbacks", [[""], [OLD_SECRET, None], "one-string"])
def test_bad_fallbacks_are_a_config_error(fallbacks: object) -> None:
    with pytest.raises(ConfigError, match="fallback"):
        SignedCookieStore(SECRET, fallbacks)  # type: ignore[arg-type]


@pytest.mark.parametrize("threshold", [-1, 1.5, "64", True])
def test_bad_compress_threshold_is_a_config_error(threshold: object) -> None:
    with pytest.raises(ConfigError, match="compress_threshold"):
        SignedCookieStore(SECRET, compress_threshold=threshold)  # type: ignore[arg-type]


def test_non_bool_encrypt_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="encrypt"):
        SignedCookieStore(SECRET, encrypt="false")  # type: ignore[arg-type]


def test_encrypt_without_cryptography_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Simulate a missing package: None in sys.modules makes every import of it fail.
    for name in [m for m in sys.modules if m.split(".")[0] == "cryptography"]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "cryptography", None)
    with pytest.raises(ConfigError, match=r"pip install 'wsgisession\[crypto\]'"):
        SignedCookieStore(SECRET, encrypt=True)
    assert SignedCookieStore(SECRET).load("anything") is None  # signing still works


def test_values_signed_the_way_earlier_versions_did_still_load() -> None:
    """Earlier versions let itsdangerous derive the key on every call; the
    keys derived once must give the same signatures, both ways."""
    earlier = Signer(
        [OLD_SECRET.encode(), SECRET.encode()],
        salt=b"wsgisession.cookie",
        sep=".",
        key_derivation="hmac",
        digest_method=hashlib.sha256,
    )
    store = SignedCookieStore(SECRET, fallbacks=[OLD_SECRET])
    value = store.create("", PAYLOAD, later())
    assert earlier.validate(value)
    body = value.rsplit(".", 1)[0]
    old_store = SignedCookieStore(OLD_SECRET)
    old_value = old_store.create("", PAYLOAD, later())
    assert earlier.sign(body).decode() == value
    loaded = store.load(old_value)
    assert loaded is not None and loaded.payload == PAYLOAD
