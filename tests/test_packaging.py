"""The release artifacts: an sdist and a wheel that build, pass ``twine check``,
carry the one version, and install into a fresh virtualenv.

The build runs on a copy of the source tree (without caches, virtualenvs or
build output), so it never writes ``build/`` or ``*.egg-info`` into the
checkout, and it sees only what a fresh clone would.
"""

from __future__ import annotations

import configparser
import email.parser
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

import wsgisession

#: Builds and installs the package in fresh virtual environments.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "wsgisession"
IGNORED = shutil.ignore_patterns(
    ".git",
    ".venv",
    "venv",
    "build",
    "dist",
    "_build",
    "*.egg-info",
    "__pycache__",
    "*.pyc",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".hypothesis",
    "results",
)
TIMEOUT = 300  # seconds for any one command


def run(*command: str | Path, cwd: Path | None = None) -> str:
    """Run a command; fail the test with its output if it fails.

    Without ``PYTHONPATH``: a checkout named there would shadow the package
    the commands build and install.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, (
        f"{' '.join(map(str, command))} failed ({result.returncode}):\n"
        f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    )
    return result.stdout


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Build the sdist and the wheel (isolated build) from a copy of the tree."""
    source = tmp_path_factory.mktemp("source") / "wsgisession"
    shutil.copytree(ROOT, source, ignore=IGNORED)
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", out, source)
    wheels = sorted(out.glob("*.whl"))
    sdists = sorted(out.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, sorted(out.iterdir())
    return {"wheel": wheels[0], "sdist": sdists[0]}


def wheel_metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return email.parser.Parser().parsestr(archive.read(name).decode("utf-8"))


def test_twine_check_passes(dists: dict[str, Path]) -> None:
    output = run(
        sys.executable,
        "-m",
        "twine",
        "check",
        "--strict",
        dists["wheel"],
        dists["sdist"],
    )
    assert output.count("PASSED") == 2, output


def test_the_version_lives_in_one_place(dists: dict[str, Path]) -> None:
    setup_cfg = configparser.ConfigParser()
    setup_cfg.read(ROOT / "setup.cfg")
    assert setup_cfg["metadata"]["version"] == "attr: wsgisession.__version__"
    assert re.fullmatch(
        r"\d+\.\d+\.\d+((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?", wsgisession.__version__
    ), wsgisession.__version__
    pinned = [
        path.relative_to(ROOT).as_posix()
        for path in [*PACKAGE.rglob("*.py"), ROOT / "setup.py", ROOT / "pyproject.toml"]
        if re.search(
            r"^\s*(__version__|version)\s*=", path.read_text("utf-8"), re.MULTILINE
        )
    ]
    assert pinned == ["wsgisession/__init__.py"], pinned
    metadata = wheel_metadata(dists["wheel"])
    assert metadata["Version"] == wsgisession.__version__
    assert dists["wheel"].name.startswith(f"wsgisession-{wsgisession.__version__}-")
    assert dists["sdist"].name == f"wsgisession-{wsgisession.__version__}.tar.gz"


def test_wheel_holds_the_whole_package_and_its_metadata(dists: dict[str, Path]) -> None:
    with zipfile.ZipFile(dists["wheel"]) as archive:
        names = set(archive.namelist())
        entry_points = next(
            archive.read(n).decode() for n in names if n.endswith("entry_points.txt")
        )
    sources = {
        path.relative_to(ROOT).as_posix()
        for path in PACKAGE.rglob("*.py")
        if "__pycache__" not in path.parts
    }
    assert sources <= names, sorted(sources - names)
    assert "wsgisession/py.typed" in names
    assert not [n for n in names if n.startswith(("tests/", "docs/", "benchmarks/"))]
    assert "wsgisession = wsgisession.cli:main" in entry_points
    assert "session = wsgisession.paste:filter_app_factory" in entry_points
    metadata = wheel_metadata(dists["wheel"])
    requires = " ".join(metadata.get_all("Requires-Dist") or [])
    for dependency in ("werkzeug", "itsdangerous", "filelock"):
        assert dependency in requires.lower()
    assert metadata["Requires-Python"] == ">=3.11"
    assert "Typing :: Typed" in (metadata.get_all("Classifier") or [])
    assert metadata["Description-Content-Type"] == "text/x-rst"


def test_sdist_holds_the_package(dists: dict[str, Path]) -> None:
    with tarfile.open(dists["sdist"]) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    for required in (
        "PKG-INFO",
        "README.rst",
        "setup.cfg",
        "pyproject.toml",
        "wsgisession/__init__.py",
        "wsgisession/py.typed",
        "wsgisession/stores/base.py",
    ):
        assert required in names, required


def test_sdist_holds_docs_changes_and_tests(dists: dict[str, Path]) -> None:
    """Packagers build the docs and run the tests from the sdist."""
    with tarfile.open(dists["sdist"]) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    wanted = [
        "CHANGES.rst",
        "docs/conf.py",
        "docs/index.rst",
        "docs/_ext/optionstable.py",
        "docs/examples/paste.ini",
        "tests/conftest.py",
        "tests/servers.py",
    ]
    missing = [name for name in wanted if name not in names]
    assert not missing, f"missing from the sdist (add a MANIFEST.in): {missing}"


def test_wheel_installs_and_imports_in_a_fresh_venv(
    dists: dict[str, Path], tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    bindir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = bindir / "python"
    run(python, "-m", "pip", "install", "--quiet", dists["wheel"])
    probe = (
        "import importlib.metadata as m, pathlib, wsgisession, wsgisession.stores\n"
        "print(wsgisession.__version__)\n"
        "print(m.version('wsgisession'))\n"
        "print(pathlib.Path(wsgisession.__file__).with_name('py.typed').is_file())\n"
        "print(wsgisession.__file__)\n"
        "(ep,) = m.entry_points(group='paste.filter_app_factory', name='session')\n"
        "print(ep.load().__module__)\n"
    )
    # From an empty directory, so the checkout cannot be imported instead.
    out = run(python, "-c", probe, cwd=tmp_path).splitlines()
    assert out[0] == out[1] == wsgisession.__version__
    assert out[2] == "True", "py.typed is not installed"
    assert out[3].startswith(str(venv)), out[3]
    assert out[4] == "wsgisession.paste"
    assert "clear-expired" in run(bindir / "wsgisession", "--help", cwd=tmp_path)


def fresh_venv(path: Path, *requirements: str | Path) -> Path:
    """A new virtualenv at ``path`` with ``requirements`` installed; its bin dir."""
    run(sys.executable, "-m", "venv", path)
    bindir = path / ("Scripts" if os.name == "nt" else "bin")
    run(bindir / "python", "-m", "pip", "install", "--quiet", *requirements)
    return bindir


@pytest.fixture(scope="module")
def bare(dists: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin dir of a fresh virtualenv holding the wheel and no extra."""
    return fresh_venv(tmp_path_factory.mktemp("bare") / "venv", dists["wheel"])


@pytest.mark.parametrize(
    ("kind", "extra", "store_keys"),
    [
        ("redis", "redis", ["--redis-url", "redis://127.0.0.1:1/0"]),
        ("memcached", "memcached", ["--memcached-servers", "127.0.0.1:1"]),
        ("sql", "sql", ["--sql-url", "postgresql+psycopg://app@127.0.0.1:1/app"]),
        ("sql", "sql", ["--sql-url", "sqlite:///app.db"]),
        ("cookie", "crypto", ["--encrypt", "true"]),
    ],
)
def test_every_command_names_the_extra_it_lacks(
    bare: Path, tmp_path: Path, kind: str, extra: str, store_keys: list[str]
) -> None:
    """Installed without the store's extra, each command that builds the
    store says which pip command installs it, quoted for any shell (zsh
    reads an unquoted ``[crypto]`` as a pattern): clear-expired, sessions
    and revoke on ``store = sql`` ended in a ModuleNotFoundError traceback."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["WSGISESSION_SECRET_KEY"] = "k3Qx9Lw2Vb7Rt5Yn8Mp4Zs6Hd1Jf0GcTe2Ua7Wi9Oq"
    hint = f"pip install 'wsgisession[{extra}]'"
    for command in (["check"], ["clear-expired"], ["sessions", "42"], ["revoke", "42"]):
        done = subprocess.run(
            [bare / "wsgisession", *command, "--store", kind, *store_keys],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        assert done.returncode == 1, (command, done.stderr)
        assert done.stderr.startswith(f"wsgisession {command[0]}: error: "), (
            command,
            done.stderr,
        )
        assert hint in done.stderr, (command, done.stderr)
        assert "Traceback" not in done.stderr, (command, done.stderr)
    assert not (tmp_path / "app.db").exists()


#: The extras that add a store or a feature (not test, bench or dev).
RUNTIME_EXTRAS = ("redis", "memcached", "sql", "paste", "crypto")
#: The store tests that each exercise one extra, and the middleware's.
LOWEST_VERSION_TESTS = (
    "test_store_redis.py",
    "test_redis_pool_disconnect.py",
    "test_redis_cluster_replay.py",
    "test_store_memcached.py",
    "test_store_sql_config.py",
    "test_store_cookie.py",
    "test_store_file.py",
    "test_paste_globals.py",
    "test_middleware.py",
)


def lowest_versions() -> list[str]:
    """``name==version`` for each dependency of the package and of its
    runtime extras, at the lowest version setup.cfg allows on this Python."""
    setup_cfg = configparser.ConfigParser()
    setup_cfg.read(ROOT / "setup.cfg")
    lines = setup_cfg["options"]["install_requires"].split("\n")
    for extra in RUNTIME_EXTRAS:
        lines += setup_cfg["options.extras_require"][extra].split("\n")
    pins = []
    for line in filter(None, (line.strip() for line in lines)):
        requirement = Requirement(line)
        if requirement.marker and not requirement.marker.evaluate():
            continue  # for another Python version
        match = re.fullmatch(r">=([0-9.]+)", str(requirement.specifier))
        assert match, f"{line!r} names no lowest version"
        pins.append(f"{requirement.name}=={match[1]}")
    return pins


def test_the_lowest_versions_allowed_pass_the_store_tests(
    dists: dict[str, Path], tmp_path: Path
) -> None:
    """setup.cfg's lower bounds are versions the package works with: pip keeps
    an older release already installed if it satisfies them. With redis-py
    4.5, a ``unix://`` url was refused (an option it did not take), close()
    left the connections open and a cluster store replayed a command whose
    reply came late (a request waited for its own lock); 5.x replayed too.
    With redis-py 6.0 to 7.1, a pool's ``disconnect()`` (which their cluster
    client calls at every map refresh) cut the commands in flight short."""
    extras = ",".join(RUNTIME_EXTRAS)
    bindir = fresh_venv(
        tmp_path / "venv",
        f"{dists['wheel']}[{extras}]",
        *lowest_versions(),
        "pytest",
        "hypothesis",
        "webtest",
        "psycopg[binary]",
        "PyMySQL",
    )
    python = bindir / "python"
    # -P: the checkout (the working directory) must not shadow the wheel.
    probe = "import wsgisession; print(wsgisession.__file__)"
    where = run(python, "-P", "-c", probe, cwd=ROOT)
    assert where.startswith(str(tmp_path / "venv")), where
    tests = [ROOT / "tests" / name for name in LOWEST_VERSION_TESTS]
    run(python, "-P", "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests, cwd=ROOT)
