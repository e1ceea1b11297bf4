"""The pages as a newcomer uses them: one block copied into a file, one page's
install line followed.

:mod:`test_docs` runs each page's examples in one namespace, in page order,
so a block that uses a name only an earlier block defines passes there and
fails with a ``NameError`` when a reader copies it alone. Here:

* every ``python`` block binds or imports every name it uses (a page that
  says its examples share a setup block names what that block gives);
* every package the quickstart's examples import beyond the base install,
  and every other distribution an ini example's ``egg:`` names, is in a
  ``pip install`` on the page that shows it.
"""

from __future__ import annotations

import ast
import builtins
import re
import symtable
import sys
from importlib import metadata
from pathlib import Path

from test_docs import DOCS, ROOT, code_blocks, rst_pages

# Names a page binds once in a block it introduces as the setup of the blocks
# after it ("The examples on this page use this setup").
SETUP_NAMES = {"user_sessions.rst": {"middleware"}}

# Placeholders for the reader's own app, never installed.
READERS_OWN = {"myapp"}

_PIP_INSTALL = re.compile(
    r"pip install\s+((?:'[^']+'|[\w.\[\],-]+)(?:\s+(?:'[^']+'|[\w.\[\],-]+))*)"
)
_EGG = re.compile(r"^\s*use\s*=\s*egg:([\w.-]+)", re.MULTILINE)


def names_used_unbound(text: str, name: str) -> list[str]:
    """The global names a block reads that it neither assigns nor imports."""
    top = symtable.symtable(text, name, "exec")
    bound = {
        symbol.get_name()
        for symbol in top.get_symbols()
        if symbol.is_assigned() or symbol.is_imported() or symbol.is_namespace()
    }
    used: set[str] = set()
    tables = [top]
    while tables:
        table = tables.pop()
        for symbol in table.get_symbols():
            reads_global = table is top or symbol.is_global()
            if symbol.is_referenced() and reads_global:
                used.add(symbol.get_name())
        tables.extend(table.get_children())
    return sorted(used - bound - set(dir(builtins)))


def test_every_python_block_runs_copied_alone() -> None:
    unbound, count = [], 0
    for path in [*rst_pages(), ROOT / "README.rst"]:
        for block in code_blocks(path):
            if block.language != "python":
                continue
            count += 1
            where = f"{path.name}:{block.line}"
            names = set(names_used_unbound(block.text, where))
            names -= SETUP_NAMES.get(path.name, set())
            if names:
                unbound.append(f"{where}: {sorted(names)}")
    print(f"python blocks checked alone: {count}")
    assert count >= 25
    assert not unbound, f"blocks that use a name they never define: {unbound}"


def pip_installed(text: str) -> set[str]:
    """Every requirement a ``pip install`` of the text names, lower-cased."""
    names: set[str] = set()
    for match in _PIP_INSTALL.finditer(text):
        for argument in match[1].split():
            if not argument.startswith("-"):
                names.add(argument.strip("'").lower())
    return names


def base_install() -> set[str]:
    """The distributions ``pip install wsgisession`` brings, transitively."""
    found: set[str] = set()
    pending = ["wsgisession"]
    while pending:
        distribution = pending.pop()
        for requirement in metadata.requires(distribution) or []:
            if "extra ==" in requirement:
                continue
            dependency = re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0]
            if dependency.lower() not in found:
                found.add(dependency.lower())
                pending.append(dependency)
    return found


def requirement_of(module: str) -> str:
    """What to ``pip install`` for a top-level import: an extra of ours if one
    brings it, else the distribution itself."""
    distribution = metadata.packages_distributions()[module][0].lower()
    for requirement in metadata.requires("wsgisession") or []:
        extra = re.search(r"extra == \"(\w+)\"", requirement)
        ours = extra is not None and extra[1] not in {"test", "dev", "bench"}
        if ours and extra and requirement.lower().startswith(distribution):
            return f"wsgisession[{extra[1]}]"
    return distribution


def third_party_imports(path: Path) -> set[str]:
    """The top-level modules a file imports outside the standard library."""
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules.add(node.module.split(".")[0])
    return {m for m in modules if m not in sys.stdlib_module_names}


def test_the_quickstart_says_what_its_examples_need_installed() -> None:
    page = (DOCS / "quickstart.rst").read_text(encoding="utf-8")
    installed = pip_installed(page)
    base = base_install()
    missing = []
    for block in code_blocks(DOCS / "quickstart.rst"):
        if block.language != "include" or not block.text.endswith(".py"):
            continue
        for module in third_party_imports(DOCS / block.text):
            if module == "wsgisession":
                continue
            needed = requirement_of(module)
            if needed not in base and needed not in installed:
                missing.append(f"{block.text} imports {module}: pip install {needed}")
    assert not missing, f"the quickstart never says to install: {missing}"


def test_every_egg_an_ini_example_uses_is_installed_on_its_page() -> None:
    missing, count = [], 0
    for path in rst_pages():
        installed = pip_installed(path.read_text(encoding="utf-8"))
        for block in code_blocks(path):
            if block.language != "ini":
                continue
            for egg in _EGG.findall(block.text):
                if egg.lower() in {"wsgisession", *READERS_OWN}:
                    continue
                count += 1
                if egg.lower() not in installed and path.name != "migrating.rst":
                    missing.append(f"{path.name}:{block.line}: egg:{egg}")
    assert count > 0
    assert not missing, f"ini examples use servers the page never installs: {missing}"
