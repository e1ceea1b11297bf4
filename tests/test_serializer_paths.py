"""A serializer named by its path: a class is made with no arguments.

A class that needs arguments stopped startup, and ``wsgisession check``,
with the constructor's raw TypeError and a traceback; it is now a
ConfigError that names the setting.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from wsgisession import SessionMiddleware
from wsgisession.cli import main
from wsgisession.errors import ConfigError
from wsgisession.stores import MemoryStore

MODULE = """
import json

class Configured:
    def __init__(self, indent):
        self.indent = indent

    def dumps(self, obj):
        return json.dumps(obj, indent=self.indent).encode()

    def loads(self, data):
        return json.loads(data)
"""


@pytest.fixture
def class_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The path of a serializer class whose constructor takes an argument."""
    (tmp_path / "configured_serializer.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "configured_serializer:Configured"


def test_a_class_that_needs_arguments_is_a_config_error(class_path: str) -> None:
    with pytest.raises(
        ConfigError, match="serializer: 'configured_serializer:"
    ) as caught:
        SessionMiddleware(
            lambda environ, start: [], store=MemoryStore(), serializer=class_path
        )
    assert "missing 1 required positional argument: 'indent'" in str(caught.value)


def test_check_says_so_in_one_line(
    class_path: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ini = tmp_path / "app.ini"
    ini.write_text(
        textwrap.dedent(f"""\
            [filter:session]
            use = egg:wsgisession#session
            store = memory
            serializer = {class_path}
            """)
    )
    assert main(["check", "--config", f"{ini}#session"]) == 1
    _out, err = capsys.readouterr()
    assert err.startswith("wsgisession check: error: serializer: ")
    assert err.count("\n") == 1
