"""Local engines: in this process, or in worker processes with a per-file time limit and bounded memory.

Each worker process (:mod:`cli.engine.worker`) builds its own
:class:`detectors.pipeline.Pipeline` once and runs one job at a time. For
``detect scan`` (:meth:`ProcessEngine.map`) a job is decoding, provenance,
the spectral detector and the CNN's crop selection; the CNN itself (a
batchable detector) runs in the parent, on a thread, in batches of up to
``batch_images`` images with ``cnn_threads`` torch threads, so the workers
carry no network and the cores are not oversubscribed. For ``detect eval``
and ``detect calibrate`` (:meth:`ProcessEngine.run`) a job is complete
(its worker runs every detector). The parent keeps a bounded number of jobs
in flight and yields results in input order, so reports are identical
whatever ``jobs`` is. A worker that exceeds the per-file time limit (or dies)
is killed and replaced, and the job gets an error result: one hostile file
can neither hang nor crash the run.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from typing import Any, Iterable, Iterator

from cli.engine.config import EngineConfig
from cli.engine.jobs import PathJob
from cli.engine.worker import Job, Worker, WorkerSpec, failure, limit_threads
from detectors.pipeline import Analysis, PartialAnalysis

__all__ = ["InProcessEngine", "ProcessEngine"]


class InProcessEngine:
    """Runs the pipeline in the calling process (``--jobs 0``, no time limit), the CNN batched over ``batch_images`` files.

    Args:
        config: The engine configuration.
        defer: Unused here (one process holds every network); accepted for :func:`cli.engine.make_engine`.
    """

    def __init__(self, config: EngineConfig, *, defer: bool = True) -> None:
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

    def run(self, jobs: Iterable[Job]) -> Iterator[Any]:
        """Run complete jobs in order."""
        cal = self.pipeline.calibration.to_dict()
        for job in jobs:
            try:
                yield job.run(self.pipeline)
            except Exception as exc:  # noqa: BLE001 - as in a worker: an error result, never a crash
                yield job.failed("internal_error", f"{type(exc).__name__}: {exc}", cal)

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> InProcessEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ProcessEngine:
    """Runs jobs in ``config.jobs`` worker processes, results in input order.

    Each worker holds one decoded file at a time, and at most ``2 * jobs + 2 *
    batch_images`` small partial results (CNN crops, not images) wait for the
    batched stage, which bounds memory whatever the folder holds. The batched
    stage runs on a thread with dynamic batching: a full batch, or whatever is
    ready when it is idle.

    Args:
        config: The engine configuration (``jobs >= 1``).
        defer: Workers leave the batchable detectors (the CNN) to the batched
            stage in this process; ``False``: workers run every detector
            (complete jobs, :meth:`run`), and no network is loaded here.

    Raises:
        ValueError: If ``config.jobs < 1``.
    """

    def __init__(self, config: EngineConfig, *, defer: bool = True) -> None:
        if config.jobs < 1:
            raise ValueError(f"ProcessEngine needs jobs >= 1, got {config.jobs}")
        self.config = config
        self._spec = WorkerSpec(config, defer=defer)
        self._ctx = mp.get_context("spawn")
        self._calibration = config.calibration.to_dict()
        self._workers: list[Worker] = []
        self._stage: ThreadPoolExecutor | None = None
        try:  # a Ctrl-C while the workers start (or the network loads) leaves no process behind
            self._workers = [Worker(self._spec, self._ctx) for _ in range(config.jobs)]
            # the batched stage: one network in this process, run on a thread while the workers go on
            self._finisher = config.build_finisher(batched=defer)
            if defer:
                limit_threads(config.stage_threads())
            self._stage = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aidetect-batch")
        except BaseException:
            self.close()
            raise

    def _replace(self, slot: int) -> None:
        old = self._workers[slot]
        self._workers[slot] = Worker(self._spec, self._ctx)
        old.kill()

    def map(self, paths: Iterable[str]) -> Iterator[Analysis]:
        """Analyse files, yielding their analyses in input order."""
        return self._ordered((PathJob(p, visuals=self.config.visuals) for p in paths), stage=True)

    def run(self, jobs: Iterable[Job]) -> Iterator[Any]:
        """Run complete jobs (built with ``defer=False``), yielding their results in input order."""
        return self._ordered(jobs, stage=False)

    def _ordered(self, jobs: Iterable[Job], *, stage: bool) -> Iterator[Any]:
        if self._stage is None:
            raise RuntimeError("the engine is closed")
        todo = deque(enumerate(jobs))
        results: dict[int, Any] = {}  # from the workers, waiting for the batched stage
        finished: dict[int, Any] = {}  # ready to emit
        batches: deque[tuple[list[int], list[str], Future[list[Analysis]]]] = deque()
        next_out = next_submit = 0
        busy: dict[int, int] = {}  # worker slot -> index of its job
        idle = list(range(len(self._workers)))
        batch = self.config.batch_images
        timeout_s = self.config.timeout_s
        # jobs past the next result to emit: the workers' own, plus two batches of small partial results
        max_ahead = 2 * len(self._workers) + 2 * batch

        def deliver(idx: int, out: Any) -> None:
            (results if stage else finished)[idx] = out

        while todo or busy or batches or results:
            # hand out work, but never run more than max_ahead past the next result to emit
            while idle and todo and todo[0][0] < next_out + max_ahead:
                slot = idle.pop()
                idx, job = todo.popleft()
                w = self._workers[slot]
                try:
                    w.send(job, timeout_s)
                except (OSError, ValueError):  # its pipe broke: the process is gone
                    deliver(idx, failure(job, "died", timeout_s, w, self._calibration))
                    self._replace(slot)
                    idle.append(slot)
                    continue
                busy[slot] = idx
            # wait for any busy worker
            conns = {self._workers[slot].conn: slot for slot in busy}
            now = time.monotonic()
            soonest = min((self._workers[slot].deadline for slot in busy), default=now + timeout_s)
            wait = min(timeout_s, max(0.05, soonest - now))
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
                w = self._workers[slot]
                job = w.job
                kind, payload = w.receive(timeout_s)
                if kind == "ready":
                    continue
                if kind == "done":
                    deliver(busy[slot], payload)
                else:
                    deliver(busy[slot], failure(job, "died", timeout_s, w, self._calibration))
                    self._replace(slot)
                del busy[slot]
                idle.append(slot)
            now = time.monotonic()
            for slot, idx in list(busy.items()):
                w = self._workers[slot]
                if now > w.deadline:
                    deliver(idx, failure(w.job, "timeout", timeout_s, w, self._calibration))
                    self._replace(slot)
                    del busy[slot]
                    idle.append(slot)
            while batches and batches[0][2].done():
                run, paths, fut = batches.popleft()
                try:
                    outs = fut.result()
                except Exception as exc:  # noqa: BLE001 - the stage failing loses no record
                    why = f"batched stage failed: {type(exc).__name__}: {exc}"
                    outs = [PathJob(p).failed("internal_error", why, self._calibration) for p in paths]
                finished.update(zip(run, outs))
            # hand consecutive results to the batched stage (dynamic batching): a full batch; or
            # whatever is ready when the stage is idle, so it never waits while work is ready; or
            # the rest when the next file is not running (the end, or the window is full)
            running = set(busy.values())
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
        """Stop the workers and the batched stage (a batch still running is finished, queued ones dropped)."""
        workers, self._workers = self._workers, []
        for w in workers:
            w.stop()
        for w in workers:
            w.proc.join(timeout=2)
            w.kill()
        if self._stage is not None:
            self._stage.shutdown(wait=True, cancel_futures=True)
            self._stage = None

    def __enter__(self) -> ProcessEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
