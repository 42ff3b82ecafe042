"""Clean stops: SIGINT and SIGTERM end a run between two results, and never twice.

A run wraps its work in :class:`Interrupts`. The first SIGINT raises
:class:`KeyboardInterrupt` and the first SIGTERM raises :class:`Terminated`
in the main thread, wherever it is (starting workers, analysing, writing).
Every later signal is remembered, not raised, so the run's shutdown (stopping
its engine, closing its reports) runs to its end and the reports always end
with their summary: a second Ctrl-C never aborts it.

Worker processes never see the terminal's Ctrl-C: :func:`sigint_blocked`
holds SIGINT blocked while a worker is started (the child inherits the mask
through ``spawn``'s exec and ignores SIGINT before unblocking it), so a
Ctrl-C during start-up prints no worker traceback and is delivered to the
parent as soon as the worker has started.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from types import FrameType
from typing import Any, Iterator

__all__ = ["Interrupts", "Terminated", "sigint_blocked"]


class Terminated(BaseException):
    """Raised in the main thread when SIGTERM arrives (a BaseException, like KeyboardInterrupt,
    so that no ``except Exception`` on the way swallows it)."""


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def sigint_blocked() -> Iterator[None]:
    """Block SIGINT in the calling thread (and in processes it starts) for the ``with`` body.

    A SIGINT that arrives meanwhile stays pending and is delivered when the body ends.
    """
    if not hasattr(signal, "pthread_sigmask"):  # pragma: no cover - not POSIX
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


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

    def __exit__(self, *exc: object) -> None:
        for s, h in self._old.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)
        self._old = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._defer and self._pending:  # a second signal while the first waits: stop now
            self._pending = False
            self._raise_stop()
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
        """A stop signal during the body is raised when the body ends; a second one raises at once.

        For steps that should not be cut in the middle: opening and registering
        a report file, building an engine (imports and C-extension set-up).
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
