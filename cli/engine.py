"""Local execution engine: worker processes with a per-file time limit and bounded memory.

Each worker process builds its own :class:`detectors.pipeline.Pipeline` once
and analyses one file at a time: decoding, provenance, the spectral detector,
and the CNN's crop selection. The CNN itself (a batchable detector) runs in
the parent, on a thread, in batches of up to ``batch_images`` images with
``cnn_threads`` torch threads, so the workers carry no network and the cores
are not oversubscribed. The parent keeps a bounded number of files in flight
and yields results in input order, so reports are identical whatever
``jobs`` is. A worker that exceeds the per-file time limit (or dies) is
killed and replaced, and the file gets an error record: one hostile file can
neither hang nor crash the scan.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

from detectors.pipeline import Analysis, PartialAnalysis, Pipeline
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
        batch_images: Images per batch of the batchable detectors (the CNN), >= 1.
        cnn_threads: torch threads of the batched CNN stage; ``None``: the
            cores left over by the workers, at least 1.
        ray_actors: Batched-stage actors under ``engine == "ray"``; ``None``: one per
            GPU of the cluster, else one per job.
    """

    detectors: tuple[str, ...]
    calibration_path: str | None = None
    visuals: bool = False
    jobs: int = 1
    timeout_s: float = 120.0
    torch_threads: int = 1
    engine: str = "local"
    stability: bool = False
    batch_images: int = 16
    cnn_threads: int | None = None
    ray_actors: int | None = None

    def __post_init__(self) -> None:
        if self.batch_images < 1:
            raise ValueError(f"batch_images must be >= 1, got {self.batch_images}")
        if self.ray_actors is not None and self.ray_actors < 1:
            raise ValueError(f"ray_actors must be >= 1, got {self.ray_actors}")
        if self.cnn_threads is not None and self.cnn_threads < 1:
            raise ValueError(f"cnn_threads must be >= 1, got {self.cnn_threads}")
        if self.engine not in ("local", "ray"):
            raise ValueError(f"engine must be 'local' or 'ray', got {self.engine!r}")
        if self.jobs < 0:
            raise ValueError(f"jobs must be >= 0, got {self.jobs}")
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s}")

    def _calibration(self) -> Any:
        from detectors.fusion import load_calibration

        return load_calibration(self.calibration_path) if self.calibration_path else None

    def build_pipeline(self, *, defer: bool = False) -> Pipeline:
        """The pipeline every worker runs; with ``defer``, batchable detectors are only prepared."""
        return Pipeline(self.detectors, calibration=self._calibration(), stability=self.stability, defer=self.batched() if defer else ())

    def batched(self) -> tuple[str, ...]:
        """The detectors that run batched outside the workers (none with ``stability``)."""
        if self.stability:
            return ()
        from detectors.base import is_batchable

        return tuple(d for d in self.detectors if is_batchable(d))

    def build_finisher(self) -> Pipeline:
        """The pipeline that runs the batched detectors (with their networks) and fuses."""
        return Pipeline(self.batched(), calibration=self._calibration())

    def stage_threads(self) -> int:
        """torch threads of the batched stage."""
        if self.cnn_threads is not None:
            return self.cnn_threads
        return max(1, (os.cpu_count() or 1) - max(1, self.jobs))


def _limit_threads(n: int) -> None:
    """Cap torch's intra-op threads in a worker, so that N workers do not oversubscribe the cores."""
    import sys

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)


def _worker_main(conn: Any, config: EngineConfig) -> None:  # pragma: no cover - runs in a child process
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    pipeline = config.build_pipeline(defer=True)  # the CNN only cuts crops here; its network runs batched in the parent
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
            out = pipeline.start_path(path, visuals=config.visuals)
        except BaseException as exc:  # noqa: BLE001 - report, never die silently
            out = Analysis(
                error_record(
                    os.fsdecode(path), "internal_error", f"{os.fsdecode(path)}: {type(exc).__name__}: {exc}",
                    calibration=pipeline.calibration.to_dict(),
                )
            )  # fmt: skip
        conn.send(("done", out))


class InProcessEngine:
    """Runs the pipeline in the calling process (``--jobs 0``), the CNN batched over ``batch_images`` files."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.pipeline = config.build_pipeline()

    def map(self, paths: Iterable[str]) -> Iterator[Analysis]:
        """Analyse files in order."""
        batch: list[Analysis | PartialAnalysis] = []
        for p in paths:
            batch.append(self.pipeline.start_path(p, visuals=self.config.visuals))
            if len(batch) >= self.config.batch_images:
                yield from self.pipeline.finish(batch)
                batch = []
        if batch:
            yield from self.pipeline.finish(batch)

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

    Results come back in input order. Each worker holds one decoded file at a
    time, and at most ``2 * jobs + 2 * batch_images`` small partial results
    (CNN crops, not images) wait for the batched stage, which bounds memory
    whatever the folder holds. The batched stage runs on a thread with
    dynamic batching: a full batch, or whatever is ready when it is idle.
    """

    def __init__(self, config: EngineConfig) -> None:
        if config.jobs < 1:
            raise ValueError(f"ProcessEngine needs jobs >= 1, got {config.jobs}")
        self.config = config
        self._ctx = mp.get_context("spawn")
        from detectors.fusion import load_calibration

        self._calibration = load_calibration(config.calibration_path).to_dict()
        self._workers: list[_Worker] = [_Worker(self._ctx, config) for _ in range(config.jobs)]
        # the batched stage: one network in this process, run on a thread while the workers go on
        self._finisher = config.build_finisher()
        _limit_threads(config.stage_threads())
        self._stage = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aidetect-batch")

    def _error(self, path: str, code: str, message: str) -> Analysis:
        return Analysis(error_record(path, code, message, calibration=self._calibration))

    def map(self, paths: Iterable[str]) -> Iterator[Analysis]:
        """Analyse files, yielding results in input order."""
        todo = deque(enumerate(paths))
        results: dict[int, Analysis | PartialAnalysis] = {}  # from the workers
        finished: dict[int, Analysis] = {}  # after the batched stage
        batches: deque[tuple[list[int], list[str], Future[list[Analysis]]]] = deque()
        next_out = next_submit = 0
        busy: dict[int, tuple[_Worker, int]] = {}  # worker slot -> (worker, index)
        idle = list(range(len(self._workers)))
        batch = self.config.batch_images
        # files past the next result to emit: the workers' own, plus two batches of small partial results
        max_ahead = 2 * len(self._workers) + 2 * batch
        while todo or busy or batches or results:
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
            if batches:
                wait = min(wait, 0.02)
            if conns:
                ready = mp.connection.wait(list(conns), timeout=wait)
            else:  # every worker idle: only the batched stage is working
                ready = []
                if batches:
                    futures_wait([batches[0][2]], timeout=wait)
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
            while batches and batches[0][2].done():
                run, paths, fut = batches.popleft()
                try:
                    outs = fut.result()
                except Exception as exc:  # noqa: BLE001 - the stage failing loses no record
                    outs = [self._error(p, "internal_error", f"{p}: batched stage failed: {type(exc).__name__}: {exc}") for p in paths]
                finished.update(zip(run, outs))
            # hand consecutive results to the batched stage (dynamic batching): a full batch; or
            # whatever is ready when the stage is idle, so it never waits while work is ready; or
            # the rest when the next file is not running (the end, or the window is full)
            running = {i for _, i in busy.values()}
            while next_submit in results:
                run = []
                j = next_submit
                while j in results and len(run) < batch:
                    run.append(j)
                    j += 1
                if len(run) < batch and j in running and batches:
                    break
                items = [results.pop(i) for i in run]
                paths = [it.file["path"] if isinstance(it, PartialAnalysis) else it.record["file"]["path"] for it in items]
                batches.append((run, paths, self._stage.submit(self._finisher.finish, items)))
                next_submit = j
            while next_out in finished:
                yield finished.pop(next_out)
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
        self._stage.shutdown(wait=True)


def make_engine(config: EngineConfig) -> Any:
    """``RayEngine`` for ``engine == "ray"``; else ``InProcessEngine`` for ``jobs == 0``, else ``ProcessEngine``."""
    if config.engine == "ray":
        from cli.ray_engine import RayEngine

        return RayEngine(config)
    return InProcessEngine(config) if config.jobs == 0 else ProcessEngine(config)
