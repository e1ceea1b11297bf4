"""The memory store's request-lock waiters: a release wakes one of them.

A release used to wake every waiter of the store (one condition for all
its locks), so a queue of n requests of one session cost n²/2 wake-ups:
1,000 of them 9-10 s of CPU. Now each held lock has its waiters, and a
release wakes the longest waiting; one that is woken but cannot use the
wake-up (interrupted) hands it on.
"""

from __future__ import annotations

import contextlib
import inspect
import threading
import time
from types import FrameType
from typing import Any

import pytest
from interrupting import (
    Interrupt,
    after_condition_let_go,
    in_module,
    interrupted_at,
    interrupted_on,
)

from wsgisession.errors import LockTimeout
from wsgisession.keys import generate_key
from wsgisession.stores import MemoryStore, memory

WAITERS = 40


def test_a_release_wakes_one_waiter(monkeypatch: pytest.MonkeyPatch) -> None:
    """WAITERS requests queued behind one lock each try it about twice (on
    arrival, then once woken for it): woken all at every release, they tried
    it about WAITERS² / 2 times (820 here)."""
    store = MemoryStore()
    key = generate_key()
    tries = 0
    take = store._take

    def counted_take(name: str, token: str, ttl: float) -> bool:
        nonlocal tries
        tries += 1
        return take(name, token, ttl)

    monkeypatch.setattr(store, "_take", counted_take)
    held = store.lock(key, 10.0, 60.0)
    taken: list[int] = []

    def request(number: int) -> None:
        with store.lock(key, 10.0, 60.0):
            taken.append(number)
            time.sleep(0.001)

    waiters = [threading.Thread(target=request, args=(n,)) for n in range(WAITERS)]
    with held:
        for waiter in waiters:
            waiter.start()
        time.sleep(0.3)  # every waiter tried once and sleeps
    for waiter in waiters:
        waiter.join(10)
    assert sorted(taken) == list(range(WAITERS))
    print(f"{WAITERS} queued requests tried the lock {tries} times")
    assert tries <= 3 * WAITERS + 1


def test_a_waiter_interrupted_as_it_is_woken_wakes_the_next() -> None:
    """The waiter a release wakes, interrupted as it wakes, hands the
    wake-up on: the next waiter takes the lock at once, not when its
    ``lock_timeout`` or the released holder's ``ttl`` would have ended."""
    store = MemoryStore()
    key = generate_key()
    outcomes: list[str] = []

    def first() -> None:
        with (
            contextlib.suppress(Interrupt),
            interrupted_at(threading.Condition.wait, returning=True),
            store.lock(key, 10.0, 60.0),
        ):
            outcomes.append("first")

    def second() -> None:
        with store.lock(key, 10.0, 60.0):
            outcomes.append("second")

    waiters = [threading.Thread(target=first), threading.Thread(target=second)]
    with store.lock(key, 1.0, 60.0):
        for waiter in waiters:
            waiter.start()
            time.sleep(0.1)  # the first waits longest: the one woken
        released = time.monotonic()
    for waiter in waiters:
        waiter.join(15)
    assert outcomes == ["second"]
    assert time.monotonic() - released < 1.0


_in_memory_module = in_module(memory.__file__)


def _signal_points(frame: FrameType, event: str, arg: Any) -> bool:
    """The memory store's points where a signal can land, but a generator's
    yield: a profiler's exception there ends the generator without its
    ``finally``, where a signal lands in the caller after the yield (and
    the lock goes with the dropped context manager, released)."""
    if event == "return" and frame.f_code.co_flags & inspect.CO_GENERATOR:
        return False
    return _in_memory_module(frame, event, arg)


def _wait_interrupted_at(point: int) -> tuple[bool, float | None]:
    """A waiter interrupted at its ``point``-th signal point, and another
    behind it, while the lock is held: whether the interrupt came, and how
    long after the release the other took the lock (None: it timed out)."""
    store, key = MemoryStore(), generate_key()
    fired: list[bool] = []
    taken: list[float | None] = []

    def first() -> None:
        with (
            contextlib.suppress(Interrupt),
            interrupted_on(_signal_points, point) as shot,
        ):
            try:
                with store.lock(key, 5.0, 60.0):
                    pass
            finally:
                fired.append(shot.fired)

    def second() -> None:
        try:
            with store.lock(key, 5.0, 60.0):
                taken.append(time.monotonic())
        except LockTimeout:
            taken.append(None)

    waiters = [threading.Thread(target=first), threading.Thread(target=second)]
    with store.lock(key, 1.0, 60.0):
        for waiter in waiters:
            waiter.start()
            time.sleep(0.02)
        released = time.monotonic()
    for waiter in waiters:
        waiter.join(10)
    return fired == [True], None if taken[0] is None else taken[0] - released


@pytest.mark.slow
def test_an_interrupt_anywhere_in_a_wait_leaves_the_next_waiter_woken() -> None:
    """An interrupt landing at any point of a waiter's wait (its store's
    code) leaves the lock to the next waiter as soon as it is released:
    never a wake-up lost until the next waiter's timeout."""
    late, point = [], 0
    while True:
        point += 1
        fired, after = _wait_interrupted_at(point)
        if after is None or after > 1.0:
            late.append(point)
        if not fired:
            break
    assert point > 10  # the sweep reached the wait's points
    assert late == []


def test_a_wake_up_lost_to_an_interrupted_waiter_costs_at_most_a_second() -> None:
    """An interrupt inside ``Condition.wait``, after it let go of the lock and
    before its ``try``, leaves that waiter's entry in the condition, and a
    later release's one wake-up goes to it: the waiter behind slept until
    its lock_timeout (10 s) while the lock was free. It now looks again
    every second."""
    store, key = MemoryStore(), generate_key()
    took: dict[str, float] = {}

    def waiter(name: str) -> None:
        started = time.monotonic()
        # RuntimeError: the ``with`` around the wait finds its lock let go
        # (CPython's Condition.wait, interrupted there) and says so instead.
        with contextlib.suppress(Interrupt, RuntimeError):
            if name == "interrupted":
                with (
                    interrupted_on(after_condition_let_go),
                    store.lock(key, 10.0, 60.0),
                ):
                    pass
                return
            with store.lock(key, 10.0, 60.0):
                time.sleep(0.05)
            took[name] = time.monotonic() - started

    waiters = [
        threading.Thread(target=waiter, args=(name,))
        for name in ("first", "interrupted", "behind")
    ]
    with store.lock(key, 10.0, 60.0):
        for thread in waiters:
            thread.start()
            time.sleep(0.1)  # queued in this order
    for thread in waiters:
        thread.join(15)
    assert set(took) == {"first", "behind"}
    assert took["behind"] < 2.0  # 10.05 s before
