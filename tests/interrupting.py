"""Exceptions that arrive in the middle of a store's work, at a chosen point.

A signal handler's ``KeyboardInterrupt`` or ``SystemExit``, an exception
sent with ``PyThreadState_SetAsyncExc`` or a ``gevent.Timeout`` around a
request can land between any two steps that Python checks for them: as a
function is entered, and as a call (to C code too) has returned. These
helpers raise :class:`Interrupt` there and then, on the real store and its
real client library: the same moment, every time, that a signal or a
timeout reaches only now and then.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import CodeType, FrameType
from typing import Any

from helpers import get

import wsgisession


class Interrupt(BaseException):
    """Stands for KeyboardInterrupt, SystemExit or a green timeout."""


@contextmanager
def interrupted_at(
    function: Callable[..., Any], call: int = 1, *, returning: bool = False
) -> Iterator[None]:
    """Raise :class:`Interrupt` as ``function`` is entered (or, ``returning``,
    as it returns) for the ``call``-th time in this thread, within the block."""
    code: CodeType = function.__code__
    seen = 0

    def tracer(frame: FrameType, event: str, arg: object) -> Any:
        nonlocal seen
        if frame.f_code is not code:
            return None
        if event == "call":
            seen += 1
        if seen == call and event == ("return" if returning else "call"):
            sys.settrace(None)
            raise Interrupt()
        return tracer  # for the frame's return event

    previous = sys.gettrace()
    sys.settrace(tracer)  # type: ignore[arg-type]
    try:
        yield
    finally:
        sys.settrace(previous)


#: ``hit(frame, event, arg)``: whether a profile event is a point to count.
#: Events are "call" and "return" (of Python functions, ``frame`` theirs)
#: and "c_call" and "c_return" (of C functions, ``arg``; ``frame`` the caller's).
Hit = Callable[[FrameType, str, Any], bool]


class Shot:
    """Whether the interrupt of :func:`interrupted_on` was raised."""

    fired = False


@contextmanager
def interrupted_on(hit: Hit, nth: int = 1) -> Iterator[Shot]:
    """Raise :class:`Interrupt` at the ``nth`` profile event of this thread
    for which ``hit`` holds, within the block: raised at a "c_return", the
    C function has run and its result is lost, as when a signal arrives
    just after it."""
    shot = Shot()
    seen = 0

    def profiler(frame: FrameType, event: str, arg: object) -> None:
        nonlocal seen
        if shot.fired or not hit(frame, event, arg):
            return
        seen += 1
        if seen == nth:
            shot.fired = True
            sys.setprofile(None)
            raise Interrupt()

    previous = sys.getprofile()
    sys.setprofile(profiler)
    try:
        yield shot
    finally:
        sys.setprofile(previous)


@contextmanager
def interrupted_twice(
    function: Callable[..., Any], second: Hit, nth: int
) -> Iterator[Shot]:
    """Raise :class:`Interrupt` as ``function`` returns (its first call in
    this thread, within the block), then again at the ``nth`` profile event
    after it for which ``second`` holds: a second interrupt landing as the
    first unwinds, in the code that cleans up after it. A trace or profile
    function that raises is switched off, so the first is the tracer's and
    the second the profiler's. The shot has fired once both did."""
    shot = Shot()
    code: CodeType = function.__code__
    seen = -1  # -1: the first interrupt is still to come

    def tracer(frame: FrameType, event: str, arg: object) -> Any:
        nonlocal seen
        if frame.f_code is not code:
            return None
        if event == "return":
            seen = 0
            raise Interrupt()
        return tracer  # for the frame's return event

    def profiler(frame: FrameType, event: str, arg: object) -> None:
        nonlocal seen
        if seen < 0 or shot.fired or not second(frame, event, arg):
            return
        seen += 1
        if seen == nth:
            shot.fired = True
            sys.setprofile(None)
            raise Interrupt()

    previous_trace, previous_profile = sys.gettrace(), sys.getprofile()
    sys.settrace(tracer)  # type: ignore[arg-type]
    sys.setprofile(profiler)
    try:
        yield shot
    finally:
        sys.settrace(previous_trace)
        sys.setprofile(previous_profile)


def returned_from(caller: Callable[..., Any], name: str) -> Hit:
    """A :data:`Hit` for the return of C function ``name`` called by ``caller``."""
    code: CodeType = caller.__code__

    def hit(frame: FrameType, event: str, arg: Any) -> bool:
        return (
            event == "c_return"
            and frame.f_code is code
            and getattr(arg, "__name__", None) == name
        )

    return hit


def in_module(*paths: str) -> Hit:
    """A :data:`Hit` for every point of the code of the modules at ``paths``
    where Python checks for a signal: as a function is entered, as a call
    has returned (and as a function returns: the caller's next step, which
    a tracer reaches too). Not as a C function is about to be called: the
    interpreter checks after a call, not before."""

    def hit(frame: FrameType, event: str, arg: Any) -> bool:
        return event != "c_call" and frame.f_code.co_filename in paths

    return hit


def _merge(current: bytes | None) -> tuple[bytes, float]:
    return (current or b"") + b"+", time.time() + 600


#: What a request asks of a store, to interrupt: ``load`` (one read);
#: ``update`` with nothing loaded (a read and a compare-and-set).
STEPS: dict[str, Callable[[Any, str], object]] = {
    "load": lambda store, key: store.load(key),
    "update": lambda store, key: store.update(key, _merge, None),
}


def ends_within(work: Callable[[], None], what: str, seconds: float = 5) -> None:
    """Run ``work`` in a thread (a lock an interrupt kept would hang it) and
    fail, naming ``what``, if it has not ended after ``seconds`` or if it
    raised."""
    failures: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"{what}: still running after {seconds} s"
    assert not failures, f"{what}: {failures[0]!r}"


def after_condition_let_go(frame: FrameType, event: str, arg: Any) -> bool:
    """A :data:`Hit` inside ``threading.Condition.wait``, as it has let go of
    its lock and before its ``try``: an interrupt there leaves the waiter's
    entry in the condition, to take a later ``notify()``'s one wake-up."""
    return (
        event == "c_return"
        and frame.f_code is threading.Condition.wait.__code__
        and getattr(arg, "__name__", "") == "_release_save"
    )


#: Where wsgisession's code lives (for :func:`in_wsgisession`).
PACKAGE = str(Path(wsgisession.__file__).parent)


def in_wsgisession(frame: FrameType, event: str, arg: Any) -> bool:
    """A point of wsgisession's code where CPython delivers an interrupt: as
    a function is entered, as a call to C has returned. Not as a Python
    function returns: its caller goes on unchecked until its next call.
    Not in a finalizer (``__del__``), whose exception Python ignores."""
    code = frame.f_code
    return (
        event in ("call", "c_return")
        and code.co_filename.startswith(PACKAGE)
        and code.co_name != "__del__"
    )


def request_interrupted_at(middleware: Any, point: int) -> tuple[str, bool]:
    """Save a new session of ``middleware``, then send a request of it with
    an interrupt at wsgisession's ``point``-th point (:func:`in_wsgisession`);
    its key, and whether the interrupt fired (False: past the last point)."""
    session = middleware.open_session()
    session["n"] = 0
    session.save()
    key = session.session_key
    assert key is not None
    with interrupted_on(in_wsgisession, point) as shot:
        try:
            get(middleware, "", f"sessionid={key}")
        except Interrupt:
            pass
    return key, shot.fired
