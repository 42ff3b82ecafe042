"""Clean stops: SIGINT and SIGTERM end a run between two results, and never twice.

A run wraps its work in :class:`Interrupts`. The first SIGINT raises
:class:`KeyboardInterrupt` and the first SIGTERM raises :class:`Terminated`
in the main thread, wherever it is (starting workers, analysing, writing).
Every later signal is remembered, not raised, so the run's shutdown (stopping
its engine, closing its reports) runs to its end and the reports always end
with their summary: a second Ctrl-C never aborts it.

Worker processes never see the terminal's Ctrl-C: :func:`sigint_blocked`
starts each one with SIGINT blocked, and the worker ignores it before
unblocking it, so a Ctrl-C during its start-up prints no worker traceback;
the parent receives the signal as usual.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from types import FrameType
from typing import Any, Iterator

__all__ = ["Interrupts", "Terminated", "deferred_signals", "ignore_stop_signals", "sigint_blocked"]


class Terminated(BaseException):
    """Raised in the main thread when SIGTERM arrives (a BaseException, like KeyboardInterrupt,
    so that no ``except Exception`` on the way swallows it)."""


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def sigint_blocked() -> Iterator[None]:
    """Block SIGINT in the calling thread (and so in the processes it starts) for the ``with`` body.

    ``spawn`` starts a worker by ``exec``, which keeps the signal mask: the
    worker begins with SIGINT blocked and ignores it before unblocking it
    (:func:`ignore_sigint_in_worker`), so a Ctrl-C while it imports prints no
    traceback. A SIGINT that arrives meanwhile is delivered to this process
    (another thread, or this one when the body ends); none is lost.
    """
    if not hasattr(signal, "pthread_sigmask"):  # pragma: no cover - not POSIX
        yield
        return
    # multiprocessing starts its resource tracker on the first spawn and unblocks SIGINT after
    # doing so, which would undo the block below: start it first
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


@contextmanager
def deferred_signals() -> Iterator[None]:
    """SIGINT/SIGTERM during the body are held and re-raised to the previous handlers when it ends.

    Used around building an engine (spawning workers, importing torch, loading
    weights): a KeyboardInterrupt inside a C extension's import can leave the
    interpreter marked as killed by SIGINT, so the stop is taken right after.
    A no-op outside the main thread.
    """
    if not _main_thread():
        yield
        return
    held: list[int] = []
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def hold(signum: int, frame: FrameType | None) -> None:
        held.append(signum)

    for s in old:
        signal.signal(s, hold)
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)
    if held:
        signal.raise_signal(held[0])  # to the restored handler, as if it had just arrived


def ignore_stop_signals() -> None:
    """Ignore SIGINT and SIGTERM from now on (a process exiting after a stop: a second Ctrl-C cannot
    turn its clean exit status into a kill by signal)."""
    if _main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def ignore_sigint_in_worker() -> None:
    """In a worker process: ignore SIGINT (the parent decides when to stop), then unblock it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


class Interrupts:
    """SIGINT/SIGTERM handling of one run (a no-op outside the main thread).

    Inside the ``with`` block the first SIGINT raises :class:`KeyboardInterrupt`
    and the first SIGTERM raises :class:`Terminated`; every later one is only
    remembered, so the run's shutdown (stopping workers, writing the summary)
    always runs to its end. The original handlers are restored on exit.

    Attributes:
        received: The first stop signal seen (``signal.SIGINT`` or ``signal.SIGTERM``), or ``None``.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self._old: dict[int, Any] = {}
        self._defer = False
        self._pending = False

    def __enter__(self) -> Interrupts:
        if _main_thread():
            self._old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
            signal.signal(signal.SIGINT, self._handle)
            signal.signal(signal.SIGTERM, self._handle)
        return self

    def __exit__(self, exc_type: Any, *exc: object) -> None:
        old, self._old = self._old, {}
        if exc_type is SystemExit and self.received is not None:
            ignore_stop_signals()  # the process is leaving because of the stop: no signal may cut that short
            return
        for s, h in old.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:
            return  # already stopping: let the shutdown finish
        self.received = signum
        if self._defer:
            self._pending = True
            return
        self._raise_stop()

    def _raise_stop(self) -> None:
        if self.received == signal.SIGTERM:
            raise Terminated()
        raise KeyboardInterrupt()

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """Stop signals during the body are raised when the body ends.

        For steps that must not be cut in the middle: opening and registering
        a report file, building an engine. A KeyboardInterrupt raised inside
        an import of a C extension (torch, while the CNN loads) can leave the
        interpreter marked as killed by SIGINT, so that it exits with -SIGINT
        instead of 130 even though the stop was handled; a build takes seconds.
        """
        self._defer = True
        try:
            yield
        finally:
            self._defer = False
        if self._pending:
            self._pending = False
            self._raise_stop()

    def stop(self, exc: BaseException) -> None:
        """Note the stop that ``exc`` stands for (a KeyboardInterrupt raised before the handlers were installed)."""
        if self.received is None:
            self.received = signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT
