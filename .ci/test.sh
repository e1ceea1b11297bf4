#!/usr/bin/env bash
# Set up and run every check on a fresh Debian machine: the servers the tests
# need, a virtualenv with the package and its test extras, the linters, the
# type checker, the test suite and the docs.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v memcached >/dev/null 2>&1 || missing+=(memcached)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -q
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

python3 -m venv .venv
.venv/bin/python -m pip install -q -e '.[test,memcached,redis,paste,crypto,dev]'

.venv/bin/ruff check wsgisession tests benchmarks
.venv/bin/ruff format --check wsgisession tests benchmarks
.venv/bin/mypy --strict wsgisession
.venv/bin/python -m pytest -p no:cacheprovider
