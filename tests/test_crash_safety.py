"""Processes killed with SIGKILL while saving never leave a corrupt store.

A child process saves sessions in a tight loop (new ones, and updates of
sessions earlier children made) on the file store or the SQLite store, and
is killed with SIGKILL after a random 10-80 ms, many times over. After all
the kills: every session any child acknowledged loads with at least the
value acknowledged, every record in the store is well formed, the SQLite
file passes ``integrity_check``, ``clear_expired()`` removes orphaned
temporary files, and the lock files stay a fixed, bounded pool.

Run with ``-s`` to see the kills survived.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from wsgisession import SessionMiddleware
from wsgisession.stores import FileStore, SQLiteStore
from wsgisession.stores._fileformat import decode
from wsgisession.stores.base import Store, storage_key

#: Kills worker processes with SIGKILL, many times.
pytestmark = pytest.mark.slow

KILLS = 20
DELAY = (0.010, 0.080)  # seconds between the child being ready and SIGKILL
REPO = Path(__file__).resolve().parents[1]

CHILD = textwrap.dedent(
    """
    import random, sys
    from wsgisession import SessionMiddleware
    from wsgisession.stores import FileStore, SQLiteStore

    kind, path, seed, known_file = sys.argv[1:5]
    store = FileStore(path) if kind == "file" else SQLiteStore(path)
    middleware = SessionMiddleware(lambda environ, start_response: [], store=store)
    with open(known_file) as f:
        keys = f.read().split()
    rng = random.Random(int(seed))
    print("ready", flush=True)
    while True:
        blob = "x" * rng.randint(0, 20000)
        if keys and rng.random() < 0.6:
            key = rng.choice(keys)
            session = middleware.open_session(key)
            if session.session_key is None or "n" not in session:
                print("lost", key, flush=True)
                continue
            session["n"] += 1
            session["blob"] = blob
            session.save()
            print("saved", key, session["n"], flush=True)
        else:
            session = middleware.open_session()
            session["n"] = 1
            session["blob"] = blob
            session.save()
            keys.append(session.session_key)
            print("saved", session.session_key, 1, flush=True)
    """
)


def make_store(kind: str, tmp_path: Path) -> tuple[Store, str]:
    if kind == "file":
        path = tmp_path / "sessions"
        return FileStore(path), str(path)
    path = tmp_path / "sessions.sqlite3"
    return SQLiteStore(path), str(path)


def run_and_kill(
    kind: str, path: str, seed: int, acked: dict[str, int], known_file: Path
) -> tuple[bool, list[str]]:
    """One child: wait until it is ready, let it save, SIGKILL it.

    Records what it acknowledged in ``acked``; returns whether it was alive
    when killed and any sessions it reported lost.
    """
    known_file.write_text("\n".join(acked))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, kind, path, str(seed), str(known_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready", child.stderr
        time.sleep(random.Random(seed).uniform(*DELAY))
        alive = child.poll() is None
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
        # Not communicate(): it reads the pipes' descriptors, and would miss
        # what readline() above buffered (up to 8 KB of acknowledgements).
        out, err = child.stdout.read(), child.stderr.read()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert alive, f"the child died on its own: {err[-2000:]}"
    assert child.returncode == -signal.SIGKILL
    lost = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "saved" and parts[2].isdigit():
            acked[parts[1]] = max(acked.get(parts[1], 0), int(parts[2]))
        elif len(parts) == 2 and parts[0] == "lost":
            lost.append(parts[1])
    return alive, lost


def file_records(root: Path) -> list[Path]:
    return [
        entry
        for shard in root.iterdir()
        if len(shard.name) == 2
        for entry in shard.iterdir()
        if len(entry.name) == 64
    ]


def check_file_store(
    store: FileStore, root: Path, acked: dict[str, int]
) -> tuple[int, int, int]:
    """Every record of an acknowledged session parses; a file that does not
    is a new record whose creator was killed before its write ended, and
    goes (after a minute) with orphaned temp files; locks are bounded."""
    acked_names = {storage_key(key) for key in acked}
    unfinished = []
    for record in file_records(root):
        decoded = decode(record.read_bytes())  # a whole record, checksum and all
        if decoded is None:
            assert record.name not in acked_names, f"damaged record {record}"
            unfinished.append(record)
            continue
        payload, expires_at = decoded
        assert expires_at > time.time(), record
        assert json.loads(payload)["v"] == 1
    temps = list(root.glob("*/.tmp-*"))
    past = time.time() - 3600
    for leftover in temps + unfinished:
        os.utime(leftover, (past, past))
    store.clear_expired()
    assert list(root.glob("*/.tmp-*")) == [], "temporary files survived clear_expired"
    assert not any(path.exists() for path in unfinished), "unfinished files survived"
    locks = list((root / ".locks").iterdir())
    assert len(locks) <= 256
    return len(temps), len(unfinished), len(locks)


def check_sqlite_store(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = conn.execute("SELECT payload FROM wsgisession_sessions").fetchall()
    conn.close()
    for (payload,) in rows:
        assert json.loads(payload)["v"] == 1
    return len(rows)


@pytest.mark.parametrize("kind", ["file", "sqlite"])
def test_sigkill_while_saving_leaves_a_sound_store(kind: str, tmp_path: Path) -> None:
    store, path = make_store(kind, tmp_path)
    acked: dict[str, int] = {}
    kills, lost = 0, []
    for round_ in range(KILLS):
        alive, lost_now = run_and_kill(
            kind, path, 1000 + round_, acked, tmp_path / "known"
        )
        kills += alive
        lost += lost_now
    assert acked, "no child saved anything before it was killed"
    assert lost == [], f"sessions lost after a kill: {lost}"

    middleware = SessionMiddleware(lambda e, s: [], store=store)
    for key, n in acked.items():
        session = middleware.open_session(key)
        loaded = session.get("n")
        assert session.session_key == key, f"acknowledged session {key} is gone"
        assert loaded is not None, f"acknowledged session {key} loads empty"
        assert loaded >= n, f"{key}: acknowledged n={n}, loaded n={loaded}"
    session = middleware.open_session(next(iter(acked)))
    session["n"] += 1
    session.save()  # the store still takes writes: no lock left held

    if isinstance(store, FileStore):
        temps, unfinished, locks = check_file_store(store, Path(path), acked)
        records = len(file_records(Path(path)))
        extra = (
            f"temp files cleared {temps}, unfinished new files cleared "
            f"{unfinished}, lock files {locks}"
        )
    else:
        records = check_sqlite_store(Path(path))
        extra = "integrity_check ok"
    assert records >= len(acked)
    print(
        f"\n[crash] {kind}: kills survived {kills}/{KILLS}, sessions acknowledged "
        f"{len(acked)}, saves acknowledged {sum(acked.values())}, records {records}, "
        f"{extra}"
    )
