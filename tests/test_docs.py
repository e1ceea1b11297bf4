"""The documentation: it builds without warnings, it is complete, its examples run.

* ``sphinx-build -W`` (warnings are errors, cross-references are checked)
  builds every page, and every page is in the table of contents.
* Every option of :func:`wsgisession.config.describe_options` appears in the
  built configuration page, and every public name has a docstring and an
  entry in the built API page.
* Docs and code cannot drift: every error class has its section on the
  troubleshooting page and every error the pages name exists; every
  ``--flag`` the pages mention exists in the command's parser and every
  parser flag is in the built command reference; the Beaker table of the
  migrating page lists exactly the Beaker keys the configuration knows.
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
import itertools
import logging
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


def toctree_pages() -> list[str]:
    """The pages listed in the table of contents of ``index.rst``, in order."""
    lines = (DOCS / "index.rst").read_text(encoding="utf-8").splitlines()
    start = lines.index(".. toctree::") + 1
    pages = []
    for line in lines[start:]:
        if line.strip() and not line.startswith("   "):
            break
        if line.strip() and not line.strip().startswith(":"):
            pages.append(line.strip())
    return pages


PAGES = ("index", *toctree_pages())
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
        try:
            owner, qualname = (
                getattr(obj, "__module__", None),
                getattr(obj, "__qualname__", ""),
            )
        except RuntimeError:  # a proxy bound to no request (flask.session)
            owner, qualname = None, ""
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


@pytest.fixture
def logging_restored() -> Iterator[None]:
    """Undo what an example does to logging (the Deploying page sets the
    ``wsgisession`` logger to INFO and calls ``basicConfig``), so that later
    tests do not depend on the order the pages ran in."""
    loggers = [logging.getLogger(), logging.getLogger("wsgisession")]
    saved = [(lg, lg.level, list(lg.handlers), lg.propagate) for lg in loggers]
    yield
    for logger, level, handlers, propagate in saved:
        logger.setLevel(level)
        logger.handlers[:] = handlers
        logger.propagate = propagate


@pytest.mark.parametrize("page", _page_blocks())
@pytest.mark.usefixtures("logging_restored")
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


def test_build_instructions_for_contributors() -> None:
    contributing = (DOCS / "contributing.rst").read_text(encoding="utf-8")
    assert "python -m sphinx -W -b html docs docs/_build/html" in contributing
    assert os.path.exists(DOCS / "conf.py")
    index = (DOCS / "index.rst").read_text(encoding="utf-8")
    assert "test_docs" not in index and "sphinx" not in index


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


# -- docs and code cannot drift: errors, CLI flags, Beaker keys -------------------


def headings(path: Path) -> list[str]:
    """The section titles of an .rst file (a line underlined with - = or ~)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [
        title
        for title, under in itertools.pairwise(lines)
        if title.strip()
        and len(under) >= len(title)
        and len(set(under)) == 1
        and under[0] in "-=~"
    ]


#: A word that names an exception class of wsgisession's kind.
_ERROR_NAME = re.compile(
    r"\b([A-Z][a-z]+(?:[A-Z][a-z]*)*(?:Error|Unavailable|Timeout|TooLarge"
    r"|Interrupted|Value))\b"
)


def test_every_error_has_a_troubleshooting_section() -> None:
    from wsgisession import errors

    sections = set(headings(DOCS / "troubleshooting.rst"))
    classes = list(errors.__all__)
    missing = [name for name in classes if name not in sections]
    print(f"errors with a troubleshooting section: {len(classes) - len(missing)}")
    assert not missing, f"errors without a section in troubleshooting.rst: {missing}"


def test_every_error_the_docs_name_exists() -> None:
    import builtins

    from wsgisession import errors

    named: dict[str, str] = {}
    for path in [*rst_pages(), ROOT / "README.rst"]:
        for name in _ERROR_NAME.findall(path.read_text(encoding="utf-8")):
            named.setdefault(name, path.name)
    ours = {name: page for name, page in named.items() if not hasattr(builtins, name)}
    print(f"error names in the docs: {sorted(ours)}")
    unknown = {name: page for name, page in ours.items() if name not in errors.__all__}
    assert not unknown, f"errors the docs name but wsgisession.errors lacks: {unknown}"
    assert set(errors.__all__) <= set(ours)


_FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
#: A command line of another program in a console block: its flags are not ours.
_OTHER_COMMAND = re.compile(r"^ *[$#] +(?!\S*wsgisession\b)\S+.*$", re.MULTILINE)


def mentioned_flags(text: str) -> list[str]:
    """The ``--flags`` of a page, except on command lines of other programs."""
    return _FLAG.findall(_OTHER_COMMAND.sub("", text))


def parser_flags() -> dict[str, set[str]]:
    """Every subcommand of ``wsgisession`` and its ``--flags``."""
    sys.path.insert(0, str(DOCS / "_ext"))
    try:
        from clireference import commands, flags
    finally:
        sys.path.remove(str(DOCS / "_ext"))
    return {
        name: {option for action in flags(parser) for option in action.option_strings}
        for name, parser in commands().items()
    }


def test_flags_of_other_programs_are_told_apart() -> None:
    text = (
        "    $ redis-server --cluster-enabled yes\n"
        "    $ /srv/venv/bin/wsgisession check --config app.ini\n"
        "    # pip install --upgrade wsgisession\n"
        "Use ``--store`` or --port.\n"
    )
    assert mentioned_flags(text) == ["--config", "--store", "--port"]


def test_every_flag_the_docs_mention_exists() -> None:
    known = set().union(*parser_flags().values()) | {"--help"}
    mentioned: dict[str, str] = {}
    for path in [*rst_pages(), ROOT / "README.rst"]:
        for flag in mentioned_flags(path.read_text(encoding="utf-8")):
            mentioned.setdefault(flag, path.name)
    unknown = {flag: page for flag, page in mentioned.items() if flag not in known}
    print(f"flags the docs mention: {sorted(mentioned)}")
    assert not unknown, f"flags the docs mention but no parser has: {unknown}"


@pytest.mark.slow  # builds the site with Sphinx
def test_every_parser_flag_is_in_the_command_reference(site: Path) -> None:
    page = (site / "cli.html").read_text(encoding="utf-8")
    missing = []
    count = 0
    for command, options in parser_flags().items():
        if f'id="cli-{command}"' not in page:
            missing.append(command)
        for flag in options:
            if flag.startswith("--"):
                count += 1
                if f'id="cli-{command}-{flag[2:]}"' not in page:
                    missing.append(f"{command} {flag}")
    print(f"commands and flags in the command reference: {count} flags")
    assert count > 0
    assert not missing, f"missing from the command reference: {missing}"


def beaker_table_keys() -> set[str]:
    """The Beaker keys in the first column of migrating.rst's key-by-key table."""
    text = (DOCS / "migrating.rst").read_text(encoding="utf-8")
    table = text[text.index("   * - Beaker ``session.*``") :]
    table = table[: table.index("\nThe session API")]
    keys: set[str] = set()
    for cell in re.findall(r"^   \* - (.+(?:\n       .+)*)", table, re.MULTILINE):
        keys.update(re.findall(r"``([\w.]+)``", cell))
    return keys


def test_the_beaker_table_lists_every_beaker_key() -> None:
    from wsgisession._beaker import BEAKER_KEYS

    documented = beaker_table_keys() - {"session.*"}
    print(f"Beaker keys in migrating.rst: {len(documented)} of {len(BEAKER_KEYS)}")
    assert documented == set(BEAKER_KEYS), documented ^ set(BEAKER_KEYS)


# -- the README, which is also the package's long description ---------------------


def test_readme_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    blocks = [b for b in code_blocks(ROOT / "README.rst") if b.language == "python"]
    assert blocks, "the README has no Python example"
    namespace: dict[str, Any] = {"__name__": "docs_readme"}
    for block in blocks:
        block.text = block.text.replace(DATA_DIR, str(tmp_path))
        _run_python(block, "../README", namespace)
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "wsgi.url_scheme": "http"}
    body = b"".join(namespace["app"](environ, lambda *args: None))
    assert body == b"visits: 1"


def test_readme_starts_with_the_library_and_keeps_the_two_commands() -> None:
    text = (ROOT / "README.rst").read_text(encoding="utf-8")
    first_command = text.index("python3 -m venv .venv")
    assert text.index(".. code-block:: python") < first_command
    assert (
        "    python3 -m venv .venv && .venv/bin/pip install -q -e . "
        "&& .venv/bin/wsgisession demo\n" in text
    )
    assert "    bash .ci/test.sh\n" in text
    assert first_command < len(text) // 2, "the set-up commands belong near the top"


def ini_option_keys(text: str) -> list[str]:
    """The wsgisession option names an ini example sets: every key of a section
    that uses wsgisession, and every ``wsgisession.``-prefixed key elsewhere."""
    import configparser

    from wsgisession.config import PASTE_KEYS

    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    names = []
    for section in parser.sections():
        ours = "wsgisession" in parser.get(section, "use", fallback="")
        for key in parser.options(section):
            if key.startswith("wsgisession."):
                names.append(key.removeprefix("wsgisession."))
            elif ours and key not in PASTE_KEYS:
                names.append(key)
    return names


def test_every_option_an_ini_example_sets_exists() -> None:
    schema = {info.name for info in describe_options()}
    unknown, count = [], 0
    for path in [*rst_pages(), ROOT / "README.rst"]:
        for block in code_blocks(path):
            if block.language != "ini":
                continue
            for name in ini_option_keys(block.text):
                count += 1
                if name not in schema:
                    unknown.append(f"{path.name}:{block.line}: {name}")
    print(f"options set in ini examples: {count}")
    assert count > 20
    assert not unknown, f"ini examples set options the schema lacks: {unknown}"
