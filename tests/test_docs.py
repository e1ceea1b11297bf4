"""The documentation: it builds without warnings, it is complete, its examples run.

* ``sphinx-build -W`` (warnings are errors, cross-references are checked)
  builds every page.
* Every option of :func:`wsgisession.config.describe_options` appears in the
  built configuration page, and every public name has a docstring and an
  entry in the built API page.
* Every Python example in ``docs/*.rst`` runs. ``.. code-block:: python``
  blocks are executed and ``.. code-block:: pycon`` blocks are run as
  doctests, in page order, sharing one namespace per page (as a reader
  would type them), in a temporary working directory. The examples use
  ``/var/lib/myapp`` as the app's data directory; it is mapped to a
  temporary directory here. Files pulled in with ``literalinclude`` are run
  too.
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import os
import re
import runpy
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from typing import Any

import pytest

from wsgisession.config import describe_options

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = (
    "index",
    "quickstart",
    "configuration",
    "session",
    "stores",
    "architecture",
    "security",
    "migrating",
    "api",
    "changes",
)
#: Modules whose ``__all__`` must be documented in the API page.
PUBLIC_MODULES = (
    "wsgisession",
    "wsgisession.stores",
    "wsgisession.errors",
    "wsgisession.config",
    "wsgisession.serializers",
    "wsgisession.paste",
    "wsgisession.contrib",
    "wsgisession.contrib.flask",
    "wsgisession.contrib.pyramid",
)
#: Languages of code blocks that are not Python, so not run.
OTHER_LANGUAGES = {"ini", "console", "text", "shell", "bash", "none", "http"}
#: Languages of code blocks that are run (``include``: a literalinclude).
RUN = {"python", "pycon", "include"}
DATA_DIR = "/var/lib/myapp"

_DIRECTIVE = re.compile(
    r"^(?P<indent> *)\.\. (?P<kind>code-block|code|sourcecode|literalinclude)::"
    r" *(?P<arg>\S*) *$"
)
_OPTION = re.compile(r"^ *:[\w-]+:")


@dataclass
class Block:
    """One code block of a page: its language, first line number and text."""

    language: str
    line: int
    text: str


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _directive_body(lines: list[str], start: int, indent: int) -> tuple[str, int]:
    """The dedented content after a directive's options, and where it ended."""
    index = start
    while index < len(lines) and _OPTION.match(lines[index]):
        index += 1
    body: list[str] = []
    while index < len(lines):
        line = lines[index]
        if line.strip() and _indent(line) <= indent:
            break
        body.append(line)
        index += 1
    while body and not body[-1].strip():
        body.pop()
    margin = min((_indent(line) for line in body if line.strip()), default=0)
    return "\n".join(line[margin:] for line in body) + "\n", index


def code_blocks(path: Path) -> Iterator[Block]:
    """Every ``code-block`` of an .rst file and every ``literalinclude`` target."""
    lines = path.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        match = _DIRECTIVE.match(lines[index])
        index += 1
        if match is None:
            continue
        if match["kind"] == "literalinclude":
            yield Block("include", index, match["arg"])
            continue
        text, index = _directive_body(lines, index, len(match["indent"]))
        yield Block(match["arg"] or "python", index, text)


def literal_blocks(path: Path) -> Iterator[tuple[int, str]]:
    """The plain ``::`` literal blocks of an .rst file (no language)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    for index, line in enumerate(lines):
        stripped = line.rstrip()
        if stripped.endswith("::") and not stripped.lstrip().startswith(".."):
            text, _ = _directive_body(lines, index + 1, _indent(line))
            yield index + 1, text


def rst_pages() -> list[Path]:
    return sorted(DOCS.glob("*.rst"))


# -- the build ----------------------------------------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the HTML once, warnings as errors, into a temporary directory."""
    out = tmp_path_factory.mktemp("html")
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b"]
    command += ["html", "-d", str(out / ".doctrees"), str(DOCS), str(out)]
    result = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, f"sphinx-build failed:\n{result.stderr}"
    assert "WARNING" not in result.stderr, result.stderr
    return out


@pytest.mark.slow  # builds the site with Sphinx
def test_every_page_is_built(site: Path) -> None:
    for page in PAGES:
        built = site / f"{page}.html"
        assert built.is_file(), f"{page}.rst was not built"
        assert len(built.read_text(encoding="utf-8")) > 2000, f"{page} is empty"
    sources = {path.stem for path in rst_pages()}
    assert sources == set(PAGES), f"pages not listed in PAGES: {sources ^ set(PAGES)}"


def html_text(page: str) -> str:
    """The text of an HTML page: no tags, entities decoded, plain quotes."""
    text = unescape(re.sub(r"<[^>]+>", "", page))
    return text.replace("\u2019", "'").replace("\u201c", '"').replace("\u201d", '"')


@pytest.mark.slow  # builds the site with Sphinx
def test_every_option_is_documented(site: Path) -> None:
    page = (site / "configuration.html").read_text(encoding="utf-8")
    options = [info.name for info in describe_options()]
    documented = [name for name in options if f'id="option-{name}"' in page]
    print(f"options documented: {len(documented)} of {len(options)} in the schema")
    assert documented == options, sorted(set(options) - set(documented))
    text = " ".join(html_text(page).split())
    for info in describe_options():
        assert " ".join(info.help.split()) in text, f"help of {info.name}"


def public_names() -> list[tuple[str, str, Any]]:
    """``(module, name, object)`` for every name in a public module's ``__all__``."""
    names = []
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            names.append((module_name, name, getattr(module, name)))
    return names


def _anchors(names: list[tuple[str, str, Any]]) -> dict[int, set[str]]:
    """Every id under which each object may be documented: any public alias,
    or where it is defined."""
    anchors: dict[int, set[str]] = {}
    for module, name, obj in names:
        ids = anchors.setdefault(id(obj), set())
        ids.add(f"{module}.{name}")
        owner, qualname = (
            getattr(obj, "__module__", None),
            getattr(obj, "__qualname__", ""),
        )
        if isinstance(owner, str) and qualname:
            ids.add(f"{owner}.{qualname}")
    return anchors


def _own_docstring(obj: Any) -> str:
    """``obj``'s own docstring, not one generated for it (dataclass, NamedTuple)."""
    if isinstance(obj, type):
        doc = obj.__doc__ or ""
        return "" if doc.startswith(f"{obj.__name__}(") else doc.strip()
    return (inspect.getdoc(obj) or "").strip()


@pytest.mark.slow  # builds the site with Sphinx
def test_every_public_name_is_documented(site: Path) -> None:
    page = (site / "api.html").read_text(encoding="utf-8")
    names = public_names()
    anchors = _anchors(names)
    documented, missing, undocstringed = [], [], []
    for module, name, obj in names:
        if any(f'id="{anchor}"' in page for anchor in anchors[id(obj)]):
            documented.append(f"{module}.{name}")
        else:
            missing.append(f"{module}.{name}")
        if (inspect.isclass(obj) or callable(obj)) and not _own_docstring(obj):
            undocstringed.append(f"{module}.{name}")
    print(f"public names documented: {len(documented)} of {len(names)}")
    assert not missing, f"public names missing from api.rst: {missing}"
    assert not undocstringed, f"public names without a docstring: {undocstringed}"


#: Classes whose every public method and property must be in the API page.
FULLY_DOCUMENTED = (
    ("wsgisession.Session", "wsgisession.session", "Session"),
    ("wsgisession.SessionMiddleware", "wsgisession.middleware", "SessionMiddleware"),
    ("wsgisession.stores.Store", "wsgisession.stores.base", "Store"),
)


@pytest.mark.slow  # builds the site with Sphinx
def test_every_public_member_of_the_main_classes_is_documented(site: Path) -> None:
    page = (site / "api.html").read_text(encoding="utf-8")
    missing, count = [], 0
    for documented_as, module, name in FULLY_DOCUMENTED:
        cls = getattr(importlib.import_module(module), name)
        for member in vars(cls):
            if member.startswith("_"):
                continue
            count += 1
            if f'id="{documented_as}.{member}"' not in page:
                missing.append(f"{documented_as}.{member}")
    found = count - len(missing)
    print(
        f"members of Session, SessionMiddleware, Store documented: {found} of {count}"
    )
    assert not missing, f"members missing from api.rst: {missing}"


# -- the examples ---------------------------------------------------------------


def _run_python(block: Block, page: str, namespace: dict[str, Any]) -> None:
    code = compile(block.text, f"docs/{page}.rst:{block.line}", "exec")
    exec(code, namespace)  # noqa: S102 - the docs' own examples


def _run_pycon(block: Block, page: str, namespace: dict[str, Any]) -> None:
    name = f"docs/{page}.rst:{block.line}"
    test = doctest.DocTestParser().get_doctest(
        block.text, namespace, name, name, block.line
    )
    assert test.examples, f"{name}: a pycon block without >>> prompts"
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    runner = doctest.DocTestRunner(optionflags=flags)
    report: list[str] = []
    result = runner.run(test, out=report.append, clear_globs=False)
    namespace.update(test.globs)  # DocTest ran on a copy of the namespace
    assert result.failed == 0, "".join(report)


def _run_include(block: Block, page: str, tmp_path: Path) -> None:
    target = (DOCS / block.text).resolve()
    assert target.is_file(), f"docs/{page}.rst includes a missing file: {block.text}"
    if target.suffix == ".py":
        runpy.run_path(str(target), run_name="docs_example")


def _page_blocks() -> list[Any]:
    return [
        pytest.param(path.stem, id=path.stem)
        for path in rst_pages()
        if any(block.language in RUN for block in code_blocks(path))
    ]


@pytest.mark.parametrize("page", _page_blocks())
def test_examples_run(
    page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "var-lib-myapp"
    data_dir.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.syspath_prepend(str(work))
    namespace: dict[str, Any] = {"__name__": f"docs_{page}"}
    ran = 0
    for block in code_blocks(DOCS / f"{page}.rst"):
        block.text = block.text.replace(DATA_DIR, str(data_dir))
        if block.language == "python":
            _run_python(block, page, namespace)
        elif block.language == "pycon":
            _run_pycon(block, page, namespace)
        elif block.language == "include":
            _run_include(block, page, tmp_path)
        else:
            assert block.language in OTHER_LANGUAGES, (
                f"docs/{page}.rst:{block.line}: unknown language {block.language!r}"
            )
            continue
        ran += 1
    print(f"{page}: ran {ran} examples")
    assert ran > 0


def test_no_python_hides_in_plain_literal_blocks() -> None:
    """Python must be in a python or pycon block, where the tests find it."""
    counts = {"python": 0, "pycon": 0, "include": 0}
    for path in rst_pages():
        for line, text in literal_blocks(path):
            looks_like_python = re.search(
                r"^(>>> |import |from \S+ import )", text, re.MULTILINE
            )
            assert not looks_like_python, f"{path.name}:{line}: Python in a :: block"
        for block in code_blocks(path):
            if block.language in counts:
                counts[block.language] += 1
            else:
                assert block.language in OTHER_LANGUAGES, (path.name, block.language)
    print(f"examples: {counts}")
    assert counts["python"] and counts["pycon"]


def test_build_instructions_in_index() -> None:
    index = (DOCS / "index.rst").read_text(encoding="utf-8")
    assert "python -m sphinx -W -b html docs docs/_build/html" in index
    assert os.path.exists(DOCS / "conf.py")


def test_the_documented_custom_store_works_with_every_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Regression: DictStore had clear_expired(self) and shadowed Store.lock."""
    from wsgisession.cli import main
    from wsgisession.stores.base import Store

    (block,) = [
        b for b in code_blocks(DOCS / "stores.rst") if "class DictStore" in b.text
    ]
    (tmp_path / "docs_dictstore.py").write_text(block.text, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("docs_dictstore")
    assert callable(module.DictStore.lock) and module.DictStore.lock is Store.lock
    target = "docs_dictstore:DictStore"
    assert main(["clear-expired", "--store", target]) == 0
    assert "removed 0 expired sessions" in capsys.readouterr().out
    assert main(["check", "--store", target]) == 0
    assert "DictStore" in capsys.readouterr().out
    store = module.DictStore()
    assert store.clear_expired(progress=lambda done, total: None) == 0
    with store:
        pass
