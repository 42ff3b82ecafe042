"""Local execution engine: worker processes with a per-file time limit and bounded memory.

Each worker process builds its own :class:`detectors.pipeline.Pipeline` once
and analyses one file at a time. The parent keeps at most ``max_in_flight``
files outstanding and yields results in input order, so reports are identical
whatever ``jobs`` is. A worker that exceeds the per-file time limit (or dies)
is killed and replaced, and the file gets an error record: one hostile file
can neither hang nor crash the scan.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

from detectors.pipeline import Analysis, Pipeline
from detectors.record import error_record

__all__ = ["EngineConfig", "InProcessEngine", "ProcessEngine", "make_engine"]

#: Seconds a new worker may take to import and build its pipeline before its first file's clock starts.
_STARTUP_GRACE_S = 60.0


@dataclass(frozen=True)
class EngineConfig:
    """How to build the per-image pipeline and how to run it.

    Attributes:
        detectors: Detector registry names.
        calibration_path: Calibration file, or ``None`` for the shipped one.
        visuals: Compute report-card images.
        jobs: Worker processes; 0 runs in this process (no time limit enforced).
        timeout_s: Per-file wall-time limit in seconds (> 0).
        torch_threads: Threads each worker may give torch (avoids oversubscription).
        engine: ``"local"`` (this machine) or ``"ray"`` (Ray Data; see :mod:`cli.ray_engine`).
        stability: Re-score pixel verdicts under JPEG q90 and a 0.75x resize (see ``Pipeline``).
    """

    detectors: tuple[str, ...]
    calibration_path: str | None = None
    visuals: bool = False
    jobs: int = 1
    timeout_s: float = 120.0
    torch_threads: int = 1
    engine: str = "local"
    stability: bool = False

    def __post_init__(self) -> None:
        if self.engine not in ("local", "ray"):
            raise ValueError(f"engine must be 'local' or 'ray', got {self.engine!r}")
        if self.jobs < 0:
            raise ValueError(f"jobs must be >= 0, got {self.jobs}")
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s}")

    def build_pipeline(self) -> Pipeline:
        """The pipeline every worker runs."""
        from detectors.fusion import load_calibration

        cal = load_calibration(self.calibration_path) if self.calibration_path else None
        return Pipeline(self.detectors, calibration=cal, stability=self.stability)


def _limit_threads(n: int) -> None:
    """Cap torch's intra-op threads in a worker, so that N workers do not oversubscribe the cores."""
    import sys

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)


def _worker_main(conn: Any, config: EngineConfig) -> None:  # pragma: no cover - runs in a child process
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    pipeline = config.build_pipeline()  # imports torch if a detector needs it
    _limit_threads(config.torch_threads)
    conn.send(("ready", None))
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        path = msg
        try:
            out = pipeline.analyze_path(path, visuals=config.visuals)
        except BaseException as exc:  # noqa: BLE001 - report, never die silently
            out = Analysis(
                error_record(
                    os.fsdecode(path), "internal_error", f"{os.fsdecode(path)}: {type(exc).__name__}: {exc}",
                    calibration=pipeline.calibration.to_dict(),
                )
            )  # fmt: skip
        conn.send(("done", out))


class InProcessEngine:
    """Runs the pipeline in the calling process (``--jobs 0``)."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.pipeline = config.build_pipeline()

    def map(self, paths: Iterable[str]) -> Iterator[Analysis]:
        """Analyse files in order."""
        for p in paths:
            yield self.pipeline.analyze_path(p, visuals=self.config.visuals)

    def close(self) -> None:
        """Nothing to release."""


class _Worker:
    def __init__(self, ctx: Any, config: EngineConfig) -> None:
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child, config), daemon=True)
        self.proc.start()
        child.close()
        self.path: str | None = None
        self.started = 0.0
        self.ready = False

    def kill(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(timeout=5)
        self.conn.close()


class ProcessEngine:
    """Runs the pipeline in ``config.jobs`` worker processes.

    Results come back in input order. At most ``2 * jobs`` files are in flight,
    which bounds memory whatever the folder holds.
    """

    def __init__(self, config: EngineConfig) -> None:
        if config.jobs < 1:
            raise ValueError(f"ProcessEngine needs jobs >= 1, got {config.jobs}")
        self.config = config
        self._ctx = mp.get_context("spawn")
        from detectors.fusion import load_calibration

        self._calibration = load_calibration(config.calibration_path).to_dict()
        self._workers: list[_Worker] = [_Worker(self._ctx, config) for _ in range(config.jobs)]

    def _error(self, path: str, code: str, message: str) -> Analysis:
        return Analysis(error_record(path, code, message, calibration=self._calibration))

    def map(self, paths: Iterable[str]) -> Iterator[Analysis]:
        """Analyse files, yielding results in input order."""
        todo = deque(enumerate(paths))
        results: dict[int, Analysis] = {}
        next_out = 0
        busy: dict[int, tuple[_Worker, int]] = {}  # worker slot -> (worker, index)
        idle = list(range(len(self._workers)))
        max_ahead = 2 * len(self._workers)
        while todo or busy:
            # hand out work, but never run more than max_ahead past the next result to emit
            while idle and todo and todo[0][0] < next_out + max_ahead:
                slot = idle.pop()
                idx, path = todo.popleft()
                w = self._workers[slot]
                w.conn.send(path)
                # a worker still starting up gets a grace period before its clock runs
                w.path, w.started = path, time.monotonic() + (0.0 if w.ready else _STARTUP_GRACE_S)
                busy[slot] = (w, idx)
            # wait for any busy worker
            conns = {w.conn: slot for slot, (w, _) in busy.items()}
            soonest = min(w.started for w, _ in busy.values()) if busy else time.monotonic()
            wait = min(self.config.timeout_s, max(0.05, self.config.timeout_s - (time.monotonic() - soonest)))
            ready = mp.connection.wait(list(conns), timeout=wait)
            for conn in ready:
                slot = conns[conn]
                w, idx = busy[slot]
                try:
                    kind, payload = conn.recv()
                except (EOFError, OSError):
                    kind, payload = "died", None
                if kind == "ready":
                    w.ready = True
                    w.started = time.monotonic()
                    continue
                if kind == "done":
                    results[idx] = payload
                else:
                    code = w.proc.exitcode
                    results[idx] = self._error(
                        w.path or "?", "worker_crashed", f"{w.path}: the analysis process died (exit code {code})"
                    )
                    self._workers[slot] = _Worker(self._ctx, self.config)
                    w.kill()
                del busy[slot]
                idle.append(slot)
            now = time.monotonic()
            for slot, (w, idx) in list(busy.items()):
                if now - w.started > self.config.timeout_s:
                    results[idx] = self._error(
                        w.path or "?", "timeout", f"{w.path}: analysis exceeded the {self.config.timeout_s:g} s time limit"
                    )
                    w.kill()
                    self._workers[slot] = _Worker(self._ctx, self.config)
                    del busy[slot]
                    idle.append(slot)
            while next_out in results:
                yield results.pop(next_out)
                next_out += 1

    def close(self) -> None:
        """Stop the workers."""
        for w in self._workers:
            try:
                w.conn.send(None)
            except (OSError, BrokenPipeError):
                pass
        for w in self._workers:
            w.proc.join(timeout=2)
            w.kill()


def make_engine(config: EngineConfig) -> Any:
    """``RayEngine`` for ``engine == "ray"``; else ``InProcessEngine`` for ``jobs == 0``, else ``ProcessEngine``."""
    if config.engine == "ray":
        from cli.ray_engine import RayEngine

        return RayEngine(config)
    return InProcessEngine(config) if config.jobs == 0 else ProcessEngine(config)
