"""A value the request holds, which a merged save replaced with another
request's, changed in place by the request afterwards.

A save merges by key: a value the request received and left unchanged,
which another request changed meanwhile, becomes the other request's in
the session's data (a new object). The request may still hold the object it
received (``cart = session["cart"]``) and change it after the save (an
explicit ``save()``, or a login's ``bind_user()`` or ``cycle_key()``); that
change is the later one and wins for the key, as an assigned value would.
It was silently lost: nothing compared the held object any more.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import call, make_store, saved_session

from wsgisession import Session, SessionMiddleware
from wsgisession.stores.base import Store

SAVES: dict[str, Callable[[Session], None]] = {
    "save": lambda session: session.save(),
    "cycle_key": lambda session: session.cycle_key(),
    "bind_user": lambda session: session.bind_user("alice"),
}


@pytest.fixture(params=["memory", "file", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    made = make_store(request.param, tmp_path)
    yield made
    made.close()


def held_then_replaced(store: Store, save: str) -> tuple[Session, list[object]]:
    """A request holding ``cart``, saved (by ``save``) after another request
    replaced ``cart``: the request, and the list it still holds."""
    key = saved_session(store, cart=["book"])
    request = Session(store, session_key=key)
    cart = request["cart"]
    other = Session(store, session_key=key)
    other["cart"] = ["pen"]
    other.save()
    request["seen"] = True
    SAVES[save](request)
    assert request["cart"] == ["pen"]  # the other request's, merged in
    return request, cart


def stored(store: Store, request: Session) -> dict[str, object]:
    assert request.session_key is not None
    return dict(Session(store, session_key=request.session_key))


@pytest.mark.parametrize("save", SAVES)
def test_a_held_value_changed_after_a_merged_save_is_saved(
    store: Store, save: str
) -> None:
    request, cart = held_then_replaced(store, save)
    cart.append("lamp")  # the later change of the key
    request.save()
    assert stored(store, request)["cart"] == ["book", "lamp"]
    assert request["cart"] == ["book", "lamp"]
    cart.append("desk")  # still the session's value: watched as usual
    request.save()
    assert stored(store, request)["cart"] == ["book", "lamp", "desk"]


def test_a_held_value_left_alone_leaves_the_other_requests(store: Store) -> None:
    request, _ = held_then_replaced(store, "save")
    request["more"] = 1
    request.save()
    assert stored(store, request) == {"cart": ["pen"], "seen": True, "more": 1}


@pytest.mark.parametrize(
    "after",
    [
        lambda session: session.__setitem__("cart", ["chair"]),
        lambda session: session.__delitem__("cart"),
        lambda session: (session.clear(), session.__setitem__("list", [1])),
    ],
    ids=["set", "deleted", "cleared"],
)
@pytest.mark.parametrize("save_between", [False, True])
def test_a_held_value_the_request_replaced_since_stays_replaced(
    store: Store, after: Callable[[Session], None], save_between: bool
) -> None:
    request, cart = held_then_replaced(store, "save")
    after(request)
    if save_between:
        request.save()
    expected = stored(store, request) if save_between else None
    cart.append("lamp")  # no longer the session's: changes nothing
    request.save()
    if expected is not None:
        assert stored(store, request) == expected
    assert stored(store, request).get("cart") in (None, ["chair"])


def test_the_middlewares_save_sees_a_held_value_changed_after_a_merge(
    store: Store,
) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        session = environ["wsgisession"]
        cart = session["cart"]
        other = middleware.open_session(session.session_key)
        other["cart"] = ["pen"]  # another request, saved meanwhile
        other.save()
        session["seen"] = True
        session.save()  # merged: the other request's cart
        cart.append("lamp")  # the later change: the middleware saves it
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    middleware = SessionMiddleware(app, store=store)
    key = saved_session(store, cart=["book"])
    call(middleware, "", f"sessionid={key}")
    assert dict(middleware.open_session(key)) == {
        "cart": ["book", "lamp"],
        "seen": True,
    }
