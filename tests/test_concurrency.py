"""Concurrent requests on one session: changes to different keys all survive."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from helpers import call, increment_app, make_store, new_session

from wsgisession import SessionMiddleware

THREADS = 8
REQUESTS = 25


@pytest.mark.parametrize("kind", ["memory", "file", "sqlite"])
def test_threads_on_one_session_lose_nothing(kind: str, tmp_path: Path) -> None:
    app = SessionMiddleware(increment_app, store=make_store(kind, tmp_path))
    cookie = new_session(app)
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            for _ in range(REQUESTS):
                call(app, f"t{index}", cookie)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    session = app.open_session(cookie.split("=", 1)[1])
    counts = {f"t{i}": session.get(f"t{i}") for i in range(THREADS)}
    print(f"{kind}: {THREADS} threads x {REQUESTS} increments -> {counts}")
    assert counts == {f"t{i}": REQUESTS for i in range(THREADS)}


PROCESS_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from helpers import call, increment_app, make_store
    from pathlib import Path
    from wsgisession import SessionMiddleware

    kind, directory, cookie, name, count = sys.argv[1:6]
    app = SessionMiddleware(increment_app, store=make_store(kind, Path(directory)))
    for _ in range(int(count)):
        call(app, name, cookie)
    """
)


@pytest.mark.slow  # two Python processes
@pytest.mark.parametrize("kind", ["file", "sqlite"])
def test_two_processes_on_one_session_lose_nothing(kind: str, tmp_path: Path) -> None:
    app = SessionMiddleware(increment_app, store=make_store(kind, tmp_path))
    cookie = new_session(app)
    script = PROCESS_SCRIPT.format(tests=str(Path(__file__).parent))
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script, kind, str(tmp_path), cookie, f"p{i}", "40"]
        )
        for i in range(2)
    ]
    assert [process.wait(timeout=120) for process in processes] == [0, 0]
    session = app.open_session(cookie.split("=", 1)[1])
    assert (session.get("p0"), session.get("p1"), session.get("counter")) == (40, 40, 1)
