"""Tagged JSON and the types Flask apps keep: Markup, StrEnum and IntEnum members."""

from __future__ import annotations

import enum
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import flask
import pytest
import session_flows as flows
import webtest
from markupsafe import Markup

from wsgisession import serializers
from wsgisession.contrib.flask import init_app
from wsgisession.serializers import HTMLText, TaggedJSONSerializer
from wsgisession.stores.base import Store


class Colour(enum.StrEnum):
    RED = "red"


class Size(enum.IntEnum):
    LARGE = 3


class Price(float):
    """A float subclass, as a units library might make."""


class Widget:
    """Not a str: any object that renders itself as HTML."""

    def __html__(self) -> str:
        return "<b>widget</b>"


def round_trip(value: Any) -> Any:
    serializer = TaggedJSONSerializer()
    return serializer.loads(serializer.dumps({"value": value}))["value"]


def test_markup_round_trips_as_markup() -> None:
    loaded = round_trip(Markup("<em>saved</em>"))
    assert type(loaded) is Markup
    assert loaded == "<em>saved</em>"


def test_an_object_with_html_loads_as_its_markup() -> None:
    loaded = round_trip(Widget())
    assert type(loaded) is Markup
    assert loaded == "<b>widget</b>"


def test_markup_inside_containers() -> None:
    value = [("warning", Markup("<i>x</i>")), {"k": Markup("&amp;")}]
    loaded = round_trip(value)
    assert loaded == value
    assert type(loaded[0][1]) is Markup
    assert type(loaded[1]["k"]) is Markup


@pytest.mark.parametrize(
    ("member", "plain"),
    [(Colour.RED, "red"), (Size.LARGE, 3), (Price(2.5), 2.5)],
    ids=["StrEnum", "IntEnum", "float subclass"],
)
def test_subclass_members_are_stored_as_their_plain_value(
    member: Any, plain: Any
) -> None:
    loaded = round_trip(member)
    assert loaded == plain
    assert type(loaded) is type(plain)


def test_a_dict_shaped_like_the_markup_tag_stays_a_dict() -> None:
    for value in ({" m": "<b>not markup</b>"}, {" m": 1}, {" dict": [" m", "x"]}):
        assert round_trip(value) == value
        assert type(round_trip(value)) is dict


def test_markup_is_plain_json_text_with_a_tag() -> None:
    data = TaggedJSONSerializer().dumps({"m": Markup("<p>")})
    assert json.loads(data) == {"m": {" m": "<p>"}}


@pytest.mark.slow  # a Python subprocess
def test_without_markupsafe_markup_loads_as_html_text(tmp_path: Path) -> None:
    """markupsafe is not a dependency of the serializer (werkzeug's, though)."""
    data = TaggedJSONSerializer().dumps({"m": Markup("<p>hi</p>")})
    (tmp_path / "data.json").write_bytes(data)
    script = f"""
import importlib.util, sys
sys.modules["markupsafe"] = None  # import markupsafe now fails
spec = importlib.util.spec_from_file_location("serializers", {serializers.__file__!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
data = open({str(tmp_path / "data.json")!r}, "rb").read()
value = module.TaggedJSONSerializer().loads(data)["m"]
print(type(value).__name__, value.__html__(), repr(value))
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["HTMLText", "<p>hi</p>", "HTMLText('<p>hi</p>')"]


def test_html_text_is_safe_for_markupsafe() -> None:
    text = HTMLText("<b>already escaped</b>")
    assert Markup.escape(text) == "<b>already escaped</b>"
    assert str.__str__(text) == "<b>already escaped</b>"


@pytest.fixture(params=flows.STORE_KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    return flows.make_store(request.param, tmp_path)


def test_flash_of_markup_and_enums_in_a_flask_app(store: Store) -> None:
    app = flask.Flask(__name__)
    init_app(app, store=store)

    @app.get("/flash")
    def add() -> str:
        flask.flash(Markup("<b>saved</b>"), "info")
        flask.session["colour"] = Colour.RED
        return "ok"

    @app.get("/show")
    def show() -> str:
        [(category, message)] = flask.get_flashed_messages(with_categories=True)
        colour = flask.session["colour"]
        return f"{category} {type(message).__name__} {message} {type(colour).__name__}"

    client = webtest.TestApp(app)
    client.get("/flash")
    assert client.get("/show").text == "info Markup <b>saved</b> str"
