#!/usr/bin/env bash
# Set up and run every check on a fresh Debian machine: the servers the tests
# need, a virtualenv with the package and its test extras, the linters, the
# type checker, the test suite and the docs.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages of the servers and the browser the tests start themselves.
missing=()
for package in memcached redis-server redis-tools postgresql pgbouncer mariadb-server chromium chromium-driver; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -q
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

python3 -m venv .venv
.venv/bin/python -m pip install -q -e '.[test,memcached,redis,paste,crypto,sql,dev]'

.venv/bin/ruff check wsgisession tests benchmarks
.venv/bin/ruff format --check wsgisession tests benchmarks
.venv/bin/mypy --strict wsgisession
.venv/bin/python -m pytest -p no:cacheprovider
