"""The SQL store on PostgreSQL in a gevent worker of ``gunicorn --preload``.

psycopg chooses how it waits for the server as it is imported: in C unless
gevent patched first. Built in an unpatched master (``--preload``), the
store imports psycopg there, and each patched worker then stalls whole
while one of its requests waits (a greenlet ticking every 10 ms beside a
query that waited 1 s at the server waited 0.99 s). The store logs a
WARNING that says how to patch first; patched first, the worker runs on.
Each script runs in a subprocess, as in ``tests/test_greenlets.py``.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sql_support import sql_url
from sqlalchemy import create_engine, text
from test_greenlets import SCRIPT_TIMEOUT

pytestmark = pytest.mark.slow

#: The longest a ticking greenlet may wait beside a request that waits 1 s.
LONGEST_TICK = 0.3

WORKER_SCRIPT = """
import faulthandler, logging, os, sys, time
order, url, given, flag = sys.argv[1], sys.argv[2], sys.argv[3] == "engine", sys.argv[4]
if order == "patched-first":
    from gevent import monkey; monkey.patch_all()
warned = []

class Warned(logging.Handler):
    def emit(self, record):
        warned.append(record.getMessage())

logging.getLogger("wsgisession.stores.sql").addHandler(Warned(logging.WARNING))
from sqlalchemy import create_engine
from wsgisession.stores import SQLStore
store = SQLStore(create_engine(url) if given else url, timeout=1)
child = os.fork()  # gunicorn --preload: built in the master, then a worker
if child:
    sys.exit(os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]))
if order == "preloaded":
    from gevent import monkey; monkey.patch_all()
import threading
faulthandler.dump_traceback_later({timeout}, exit=True)
gaps, stop = [], []

def tick():
    last = time.monotonic()
    while not stop:
        time.sleep(0.01)
        moment = time.monotonic()
        gaps.append(moment - last)
        last = moment

store.load("a" * 32)  # connected, tables made
ticker = threading.Thread(target=tick)
ticker.start()
print("ready", flush=True)
while not open(flag).read():  # the test holds its table lock
    time.sleep(0.01)
started = time.monotonic()
waiting = threading.Thread(target=store.load, args=("b" * 32,))
waiting.start()
waiting.join()
waited = time.monotonic() - started
stop.append(True)
ticker.join()
print("%.3f %.3f %d" % (waited, max(gaps), len(warned)), flush=True)
for line in warned:
    print(line, flush=True)
os._exit(0)
"""


def run_worker(
    order: str, given: str, request: pytest.FixtureRequest, tmp_path: Path
) -> tuple[float, float, list[str]]:
    """The script, its query waiting 1 s for a table lock: how long it
    waited, the ticking greenlet's longest wait, and the WARNINGs logged."""
    url = sql_url("sql-postgresql", request, tmp_path)
    flag = tmp_path / "locked"
    flag.write_text("")
    source = textwrap.dedent(WORKER_SCRIPT).format(timeout=SCRIPT_TIMEOUT)
    argv = [sys.executable, "-W", "ignore", "-c", source, order, url, given, str(flag)]
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            script = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
            assert script.stdout is not None
            assert script.stdout.readline().strip() == "ready"
            conn.execute(
                text("LOCK TABLE wsgisession_sessions IN ACCESS EXCLUSIVE MODE")
            )
            flag.write_text("locked")
            subprocess.run(["sleep", "1"], check=True)
            conn.rollback()
            out, _ = script.communicate(timeout=SCRIPT_TIMEOUT + 10)
    finally:
        engine.dispose()
    assert script.returncode == 0, out
    figures, *warnings = out.splitlines()
    waited, longest, _ = figures.split()
    print(f"{order}: the query waited {waited} s, the ticking greenlet {longest} s")
    return float(waited), float(longest), warnings


@pytest.mark.parametrize("given", ["url", "engine"])
def test_psycopg_imported_before_patching_is_warned_about(
    given: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    waited, _, warnings = run_worker("preloaded", given, request, tmp_path)
    assert waited > 0.8  # it did wait for the lock
    assert len(warnings) == 1
    assert "gunicorn.conf.py" in warnings[0]


def test_patching_first_lets_the_worker_run(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """What the WARNING and docs/deploying.rst ask for."""
    waited, longest, warnings = run_worker("patched-first", "url", request, tmp_path)
    assert waited > 0.8
    assert longest < LONGEST_TICK  # 0.99 s preloaded
    assert warnings == []
