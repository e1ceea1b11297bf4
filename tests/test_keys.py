"""Session ids: 32 random bytes as 43 characters of URL-safe base64."""

from __future__ import annotations

import base64

from wsgisession.keys import KEY_BYTES, KEY_LENGTH, generate_key, is_valid_key


def test_an_id_is_32_random_bytes_in_url_safe_base64_without_padding() -> None:
    keys = [generate_key() for _ in range(2000)]
    assert len(set(keys)) == len(keys)
    for key in keys:
        assert len(key) == KEY_LENGTH and is_valid_key(key)
        assert len(base64.urlsafe_b64decode(key + "=")) == KEY_BYTES
    # Both URL-safe characters turn up: nothing is cut from the alphabet.
    assert any("-" in key for key in keys) and any("_" in key for key in keys)


def test_a_key_of_another_shape_is_not_valid() -> None:
    key = generate_key()
    for bad in (key[:-1], key + "A", key[:-1] + "+", key[:-1] + "=", None, 43):
        assert not is_valid_key(bad)
