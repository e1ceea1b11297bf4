"""Session ids: 32 random bytes as 43 characters of URL-safe base64."""

from __future__ import annotations

import base64
import re
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

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


ID_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}")


@given(
    key=st.builds(generate_key),
    changes=st.lists(
        st.tuples(st.integers(0, KEY_LENGTH - 1), st.characters()), max_size=2
    ),
)
def test_an_id_is_valid_exactly_when_it_has_the_shape(
    key: str, changes: list[tuple[int, str]]
) -> None:
    """Letters and digits beyond ASCII ("é", "٣"), whitespace, "+", "/"... are not."""
    characters = list(key)
    for index, character in changes:
        characters[index] = character
    value = "".join(characters)
    expected = ID_SHAPE.fullmatch(value) is not None
    assert is_valid_key(value) is expected
    assert is_valid_key(value) is expected  # again: found well-formed before, or not


def test_non_ascii_letters_and_digits_are_not_valid() -> None:
    key = generate_key()
    for character in ("é", "٣", "Ａ", "ß", "\u00b2"):
        assert not is_valid_key(character + key[1:])


def test_a_store_with_its_own_key_check_gets_its_ids_read() -> None:
    """A key check set on the store (or its class) decides which cookies load,
    as it decides for an explicit key: the middleware does not bypass it."""
    from wsgisession import SessionMiddleware
    from wsgisession.stores import MemoryStore

    record = b'{"v":1,"data":{"a":1},"created":1.0,"expiry":null}'
    store = MemoryStore()
    store.is_valid_key = lambda key: isinstance(key, str) and key.startswith("ok")  # type: ignore[method-assign]
    store.create("ok-custom-key", record, 4e9)

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        return [repr(environ["wsgisession"].get("a")).encode()]

    environ = {"REQUEST_METHOD": "GET", "HTTP_COOKIE": "sessionid=ok-custom-key"}
    body = b"".join(SessionMiddleware(app, store)(environ, lambda *args: None))
    assert body == b"1"
