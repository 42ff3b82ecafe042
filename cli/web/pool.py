"""Worker processes that analyse uploads for ``detect serve``.

The web server never decodes an upload itself. Each worker process builds one
:class:`detectors.pipeline.Pipeline` and analyses one upload at a time, from
bytes in memory (nothing is written to disk). The pool hands each analysis to
an idle worker; a worker that exceeds the time limit or dies (a decoder crash
on a hostile file) is killed and replaced, and that upload gets an error
record, so one file can neither hang nor crash the server.

Only the standard library is imported at module level: the workers are started
with ``spawn`` and import this module first.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Sequence

__all__ = ["AnalysisPool", "PoolInfo"]

#: Seconds a new worker may take to import and build its pipeline.
STARTUP_GRACE_S = 90.0


def _worker_main(
    conn: Any, detectors: tuple[str, ...], calibration_path: str | None, max_pixels: int
) -> None:  # pragma: no cover - runs in a child process
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server decides when to stop
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    from detectors.calibration import load_calibration
    from detectors.pipeline import Analysis, Pipeline
    from detectors.record import error_record

    cal = load_calibration(calibration_path) if calibration_path else None
    pipeline = Pipeline(detectors, calibration=cal, max_pixels=max_pixels)
    conn.send(("ready", {"models": pipeline.models, "calibration": pipeline.calibration.to_dict()}))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        data, name = msg
        try:
            out = pipeline.analyze_bytes(data, name=name, visuals=True)
        except BaseException as exc:  # noqa: BLE001 - report, never die silently
            out = Analysis(
                error_record(
                    name, "internal_error", f"{type(exc).__name__}: {exc}",
                    size=len(data), calibration=pipeline.calibration.to_dict(),
                )
            )  # fmt: skip
        del data, msg
        conn.send(("done", out))


class _Worker:
    """One analysis process and the parent's end of its pipe."""

    def __init__(self, ctx: Any, args: tuple[Any, ...]) -> None:
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child, *args), daemon=True)
        self.proc.start()
        child.close()
        self.ready = False

    def kill(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(timeout=5)
        self.conn.close()


@dataclass
class PoolInfo:
    """What the workers reported when they started.

    Attributes:
        models: Detector name -> version.
        calibration: The calibration block of the records.
    """

    models: dict[str, str] = field(default_factory=dict)
    calibration: dict[str, Any] | None = None


class AnalysisPool:
    """A fixed number of analysis processes, used from an asyncio event loop.

    At most ``size`` analyses run at once; callers of :meth:`analyze` beyond
    that wait (in arrival order) for an idle worker. Bounding how many may
    wait is the caller's job (see :func:`cli.web.app.create_app`).

    Args:
        size: Worker processes (>= 1).
        max_pixels: Refuse images whose header claims more pixels than this.
        timeout_s: Wall-time limit of one analysis; the worker is then killed.
        detectors: Detector registry names.
        calibration_path: Calibration file, or ``None`` for the shipped one.
    """

    def __init__(
        self,
        size: int,
        *,
        max_pixels: int,
        timeout_s: float,
        detectors: Sequence[str],
        calibration_path: str | None = None,
    ) -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        self.size = int(size)
        self.timeout_s = float(timeout_s)
        self.info = PoolInfo()
        self._args = (tuple(detectors), calibration_path, int(max_pixels))
        self._ctx = mp.get_context("spawn")
        self._workers: list[_Worker] = []
        self._idle: asyncio.Queue[_Worker] | None = None
        self._waiters: ThreadPoolExecutor | None = None
        self._closing = False

    # -- lifecycle ---------------------------------------------------------- #

    async def start(self) -> None:
        """Start the workers and wait until every one has built its pipeline.

        Raises:
            RuntimeError: If a worker fails to start.
        """
        self._closing = False
        self._idle = asyncio.Queue()
        self._waiters = ThreadPoolExecutor(max_workers=self.size, thread_name_prefix="detect-serve-wait")
        loop = asyncio.get_running_loop()
        self._workers = [_Worker(self._ctx, self._args) for _ in range(self.size)]
        for w in self._workers:
            ok = await loop.run_in_executor(self._waiters, self._wait_ready, w)
            if not ok:
                await self.close()
                raise RuntimeError(f"an analysis worker failed to start (exit code {w.proc.exitcode})")
            self._idle.put_nowait(w)

    async def close(self) -> None:
        """Stop the workers (an analysis still running is abandoned)."""
        self._closing = True
        for w in self._workers:
            try:
                w.conn.send(None)
            except (OSError, ValueError):
                pass
        for w in self._workers:
            w.proc.join(timeout=2)
            w.kill()
        self._workers = []
        if self._waiters is not None:
            self._waiters.shutdown(wait=False, cancel_futures=True)
            self._waiters = None

    # -- analysis ----------------------------------------------------------- #

    async def analyze(self, data: bytes, name: str) -> Any:
        """Analyse one upload in a worker process.

        Args:
            data: The file's bytes.
            name: Display name for the record (the upload's filename).

        Returns:
            A :class:`detectors.pipeline.Analysis` with visuals. Never raises for
            a bad file, a timeout or a crashed worker: those give error records.
        """
        if self._idle is None or self._waiters is None:
            raise RuntimeError("the pool is not started")
        w = await self._idle.get()
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(self._waiters, self._run, w, data, name)
        idle = self._idle
        # The worker goes back to the idle queue when its analysis ends, even if
        # this request was cancelled meanwhile (a client that went away).
        fut.add_done_callback(lambda f: idle.put_nowait(f.result()[1]) if not f.cancelled() else None)
        analysis, _ = await asyncio.shield(fut)
        return analysis

    # -- blocking helpers (run in the waiter threads) ----------------------- #

    def _wait_ready(self, w: _Worker) -> bool:
        try:
            if not w.conn.poll(STARTUP_GRACE_S):
                return False
            kind, payload = w.conn.recv()
        except (EOFError, OSError):
            return False
        if kind != "ready":
            return False
        w.ready = True
        self.info = PoolInfo(models=dict(payload["models"]), calibration=dict(payload["calibration"]))
        return True

    def _replace(self, w: _Worker) -> _Worker:
        w.kill()
        if self._closing:  # shutting down: no new process
            return w
        new = _Worker(self._ctx, self._args)
        for i, old in enumerate(self._workers):
            if old is w:
                self._workers[i] = new
        return new

    def _error(self, name: str, code: str, message: str, size: int) -> Any:
        from detectors.pipeline import Analysis
        from detectors.record import error_record

        return Analysis(error_record(name, code, message, size=size, calibration=self.info.calibration))

    def _run(self, w: _Worker, data: bytes, name: str) -> tuple[Any, _Worker]:
        """Send one job to ``w`` and wait for it; returns the analysis and the worker to reuse."""
        try:
            if not w.ready and not self._wait_ready(w):
                new = self._replace(w)
                return self._error(name, "worker_crashed", "the analysis process failed to start", len(data)), new
            t0 = time.monotonic()
            w.conn.send((data, name))
            if not w.conn.poll(self.timeout_s):
                new = self._replace(w)
                msg = f"analysis exceeded the {self.timeout_s:g} s time limit (after {time.monotonic() - t0:.0f} s)"
                return self._error(name, "timeout", msg, len(data)), new
            kind, payload = w.conn.recv()
            if kind != "done":  # pragma: no cover - protocol error
                raise EOFError(f"unexpected message {kind!r}")
            return payload, w
        except (EOFError, OSError, ValueError) as exc:
            code = w.proc.exitcode
            new = self._replace(w)
            msg = f"the analysis process died (exit code {code}): {type(exc).__name__}"
            return self._error(name, "worker_crashed", msg, len(data)), new
        except BaseException as exc:  # noqa: BLE001 - the pool must never lose a worker slot
            new = self._replace(w)
            return self._error(name, "internal_error", f"{type(exc).__name__}: {exc}", len(data)), new
