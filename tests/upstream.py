"""Upstream test suites: a framework's own tests, from its source distribution.

The version is the one pinned in wsgisession's ``test`` extra, which must
also be the installed one (the tests run against the installed framework).
The sdist is fetched once with ``pip download`` into a cache directory next
to pytest's temporary directories, and unpacked there.
"""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest


def pinned_version(project: str) -> str:
    """The ``project==X`` pin of wsgisession's ``test`` extra; fails if it is not installed."""
    pattern = re.compile(
        rf"^{re.escape(project)}==([^;\s]+)\s*;.*extra == .test.", re.IGNORECASE
    )
    for requirement in importlib.metadata.requires("wsgisession") or []:
        match = pattern.match(requirement)
        if match:
            version = match.group(1)
            installed = importlib.metadata.version(project)
            if installed != version:
                pytest.fail(
                    f"{project} {installed} is installed but the test extra pins "
                    f"{version}: reinstall with pip install -e '.[test]'",
                    pytrace=False,
                )
            return version
    pytest.fail(f"setup.cfg's test extra pins no {project}==X", pytrace=False)


def sdist(project: str, cache: Path) -> Path:
    """The unpacked sdist of ``project`` at its pinned version (downloaded once)."""
    version = pinned_version(project)
    unpacked = cache / f"{project}-{version}"
    if (unpacked / "tests").is_dir():
        return unpacked
    download = cache / "download"
    download.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
        "--no-binary", ":all:", f"{project}=={version}", "--dest", str(download),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    archives = sorted(download.glob(f"{project}-{version}.tar.gz"))
    if result.returncode != 0 or not archives:
        pytest.fail(
            f"could not download the {project} {version} sdist:\n{result.stderr}",
            pytrace=False,
        )
    with tarfile.open(archives[0]) as archive:
        archive.extractall(cache, filter="data")
    assert (unpacked / "tests").is_dir(), f"{unpacked} has no tests directory"
    return unpacked


def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where sdists are kept between runs: beside pytest's numbered temp dirs."""
    cache = tmp_path_factory.getbasetemp().parent / "wsgisession-sdists"
    cache.mkdir(parents=True, exist_ok=True)
    return cache
