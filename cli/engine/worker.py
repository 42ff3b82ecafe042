"""The one analysis worker: a process that builds its pipeline once and runs one job at a time.

Life cycle, the same for ``detect scan``, ``eval``, ``calibrate`` and the desk:

1. **start**: a ``spawn`` process (never ``fork``: a parent that already ran
   torch has OpenMP threads) with SIGINT blocked, so a Ctrl-C during start-up
   never prints a worker traceback (see :mod:`cli.engine.signals`);
2. **thread limits**: ``OMP``/``OPENBLAS``/``MKL`` threads (in the child's
   environment from its first instruction, unless the user set them) and
   torch's intra-op threads are capped at ``torch_threads``, so N workers do
   not oversubscribe the cores;
3. **ready signal**: once its pipeline is built the worker sends ``("ready",
   info)``; until then it is allowed :data:`STARTUP_GRACE_S` before its first
   job's clock starts;
4. **jobs**: each job (a :class:`Job`) runs under the caller's per-job time
   limit; a worker that exceeds it, or dies, is **killed and replaced**, and
   the job's :meth:`Job.failed` gives its error result.

:class:`Worker` is one process; :class:`WorkerPool` is a fixed set of them
for callers that run one job per thread (the desk). The ordered,
multiplexed loop of ``detect scan`` and ``detect eval`` is
:class:`cli.engine.local.ProcessEngine`.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator, Protocol, runtime_checkable

from cli.engine.signals import ignore_sigint_in_worker, sigint_blocked

if TYPE_CHECKING:  # pragma: no cover
    from cli.engine.config import EngineConfig
    from detectors.pipeline import Pipeline

__all__ = ["Job", "STARTUP_GRACE_S", "Worker", "WorkerInfo", "WorkerPool", "WorkerSpec", "limit_threads"]

#: Seconds a new worker may take to import and build its pipeline before its first job's clock starts.
STARTUP_GRACE_S = 90.0


@runtime_checkable
class Job(Protocol):
    """One unit of work for a worker: picklable, small, and able to describe its own failure."""

    def run(self, pipeline: Pipeline) -> Any:
        """Do the work with the worker's pipeline; must not raise for a bad file."""

    def failed(self, code: str, message: str, calibration: dict[str, Any]) -> Any:
        """The result to report when the job could not finish (``timeout``, ``worker_crashed``, ``internal_error``)."""


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker builds once: the engine configuration and whether batchable detectors are deferred.

    Attributes:
        config: The run's engine configuration (its calibration travels with it).
        defer: Build the pipeline with the batchable detectors only prepared
            (their networks run batched in the parent; see ``Pipeline(defer=...)``).
    """

    config: EngineConfig
    defer: bool = False


@dataclass(frozen=True)
class WorkerInfo:
    """What a worker reports when it is ready.

    Attributes:
        models: Detector name -> version.
        calibration: The calibration block of the records.
    """

    models: dict[str, str]
    calibration: dict[str, Any]


def limit_threads(n: int) -> None:
    """Cap torch's intra-op threads in this process (when torch is loaded)."""
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)


#: Thread-pool sizes of the numeric libraries, set in a worker's environment before it starts
#: (they are read when the libraries load, before any code of the worker runs).
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_ENV_LOCK = threading.Lock()  # guards the brief change of os.environ around a worker's start


@contextmanager
def _child_environment(threads: int) -> Iterator[None]:
    """Start processes inside the body with the thread variables the user has not set at ``threads``."""
    with _ENV_LOCK:
        added = [v for v in _THREAD_VARS if v not in os.environ]
        for v in added:
            os.environ[v] = str(threads)
        try:
            yield
        finally:
            for v in added:
                os.environ.pop(v, None)


def worker_main(conn: Any) -> None:  # pragma: no cover - runs in a child process
    """A worker process's body: read its spec, build, signal ready, run jobs until told to stop or the pipe closes.

    The :class:`WorkerSpec` comes over the pipe rather than as a process argument: ``spawn``
    writes its arguments into a pipe whose read end the parent itself holds until the write
    ends, so a child that died before reading a spec larger than the pipe buffer (the
    calibration's file hashes make it so) left the parent blocked for ever. A send on the
    pipe instead fails at once with ``BrokenPipeError`` when the child is gone.
    """
    ignore_sigint_in_worker()
    try:
        spec = conn.recv()
    except (EOFError, OSError):  # the parent went away before sending it
        return
    pipeline = spec.config.build_pipeline(defer=spec.defer)
    limit_threads(spec.config.torch_threads)
    calibration = pipeline.calibration.to_dict()
    try:
        conn.send(("ready", WorkerInfo(models=pipeline.models, calibration=calibration)))
        while True:
            try:
                job = conn.recv()
            except (EOFError, OSError):
                return
            if job is None:
                return
            try:
                out = job.run(pipeline)
            except BaseException as exc:  # noqa: BLE001 - report, never die silently
                out = job.failed("internal_error", f"{type(exc).__name__}: {exc}", calibration)
            del job
            conn.send(("done", out))
    except (BrokenPipeError, EOFError, OSError):  # the parent went away: nothing to report to
        return


class Worker:
    """One worker process and the parent's end of its pipe.

    Attributes:
        proc: The process.
        conn: The parent's end of the pipe.
        ready: Whether the worker has sent its ready signal.
        info: What it reported when ready.
        job: The job it is running, or ``None``.
        deadline: ``time.monotonic()`` after which the running job has timed out.
    """

    def __init__(self, spec: WorkerSpec, ctx: Any = None) -> None:
        ctx = ctx or mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=worker_main, args=(child,), daemon=True)
        # the child inherits the blocked SIGINT (and ignores it before unblocking) and the thread limits
        with sigint_blocked(), _child_environment(spec.config.torch_threads):
            self.proc.start()
        child.close()
        try:
            self.conn.send(spec)
        except (BrokenPipeError, OSError):  # the child is already gone: receive() reports it as died
            pass
        self.ready = False
        self.info: WorkerInfo | None = None
        self.job: Any = None
        self.deadline = 0.0

    def send(self, job: Any, timeout_s: float) -> None:
        """Hand ``job`` to the worker; its clock starts now, or after the start-up grace if not ready yet."""
        self.conn.send(job)
        self.job = job
        self.deadline = time.monotonic() + timeout_s + (0.0 if self.ready else STARTUP_GRACE_S)

    def receive(self, timeout_s: float) -> tuple[str, Any]:
        """One message: ``("ready", WorkerInfo)`` (the clock of a pending job restarts),
        ``("done", result)``, or ``("died", None)`` when the process is gone."""
        try:
            kind, payload = self.conn.recv()
        except (EOFError, OSError):
            return "died", None
        if kind == "ready":
            self.ready, self.info = True, payload
            if self.job is not None:
                self.deadline = time.monotonic() + timeout_s
        elif kind == "done":
            self.job = None
        return kind, payload

    def wait_ready(self, timeout_s: float = STARTUP_GRACE_S) -> bool:
        """Block until the ready signal (``False`` if the worker died or took longer than ``timeout_s``)."""
        if self.ready:
            return True
        try:
            if not self.conn.poll(timeout_s):
                return False
        except (EOFError, OSError):
            return False
        return self.receive(timeout_s)[0] == "ready"

    def run(self, job: Any, timeout_s: float) -> tuple[str, Any]:
        """Run one job, blocking: ``("done", result)``, ``("timeout", None)`` or ``("died", None)``.

        A worker that timed out or died must be killed and replaced by the caller.
        """
        if not self.wait_ready():
            return "died", None
        try:
            self.send(job, timeout_s)
        except (OSError, ValueError):
            return "died", None
        while True:
            left = self.deadline - time.monotonic()
            try:
                if left <= 0 or not self.conn.poll(left):
                    return "timeout", None
            except (EOFError, OSError):
                return "died", None
            kind, payload = self.receive(timeout_s)
            if kind in ("done", "died"):
                return kind, payload

    def stop(self) -> None:
        """Ask the worker to exit (it finishes nothing more)."""
        try:
            self.conn.send(None)
        except (OSError, ValueError):
            pass

    def kill(self) -> None:
        """Kill the process and close the pipe."""
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(timeout=5)
        self.conn.close()


def failure(job: Any, kind: str, timeout_s: float, worker: Worker, calibration: dict[str, Any]) -> Any:
    """The error result of ``job`` for a worker that timed out or died (``kind``)."""
    if kind == "timeout":
        return job.failed("timeout", f"analysis exceeded the {timeout_s:g} s time limit", calibration)
    return job.failed("worker_crashed", f"the analysis process died (exit code {worker.proc.exitcode})", calibration)


class WorkerPool:
    """A fixed number of workers, each running one job at a time for a calling thread.

    :meth:`run` blocks its thread until the job is done (callers in an event
    loop run it in a thread, see :class:`cli.web.pool.AnalysisPool`); at most
    ``size`` jobs run at once and further callers wait for an idle worker.

    Args:
        spec: What each worker builds.
        size: Worker processes, >= 1.
        timeout_s: Per-job wall-time limit, > 0 (settable).
    """

    def __init__(self, spec: WorkerSpec, *, size: int, timeout_s: float) -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        self.spec = spec
        self.size = int(size)
        self.timeout_s = float(timeout_s)
        self.info: WorkerInfo | None = None
        self.workers: list[Worker] = []
        self._idle: queue.SimpleQueue[Worker] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._ctx = mp.get_context("spawn")
        self._closing = False

    def start(self) -> None:
        """Start the workers and wait until every one is ready.

        Raises:
            RuntimeError: If a worker fails to start (the pool is closed again).
        """
        self._closing = False
        self._idle = queue.SimpleQueue()
        try:
            self.workers = [Worker(self.spec, self._ctx) for _ in range(self.size)]
            for w in self.workers:
                if not w.wait_ready():
                    raise RuntimeError(f"an analysis worker failed to start (exit code {w.proc.exitcode})")
                self.info = w.info
                self._idle.put(w)
        except BaseException:
            self.close()
            raise

    def _calibration(self) -> dict[str, Any]:
        return self.info.calibration if self.info is not None else self.spec.config.calibration.to_dict()

    def _replace(self, w: Worker) -> Worker:
        w.kill()
        if self._closing:
            return w
        new = Worker(self.spec, self._ctx)
        with self._lock:
            self.workers = [new if old is w else old for old in self.workers]
        return new

    def run(self, job: Any) -> Any:
        """Run ``job`` on an idle worker under the time limit; never raises for a bad file.

        Raises:
            RuntimeError: If the pool is not started.
        """
        if not self.workers:
            raise RuntimeError("the pool is not started")
        w = self._idle.get()
        timeout_s = self.timeout_s
        try:
            kind, payload = w.run(job, timeout_s)
            if kind == "done":
                return payload
            if kind == "died" and not w.ready:
                out = job.failed("worker_crashed", "the analysis process failed to start", self._calibration())
            else:
                out = failure(job, kind, timeout_s, w, self._calibration())
            w = self._replace(w)
            return out
        except BaseException as exc:  # noqa: BLE001 - the pool must never lose a worker slot
            w = self._replace(w)
            return job.failed("internal_error", f"{type(exc).__name__}: {exc}", self._calibration())
        finally:
            self._idle.put(w)

    def close(self) -> None:
        """Stop the workers (a job still running is abandoned)."""
        self._closing = True
        with self._lock:
            workers, self.workers = self.workers, []
        for w in workers:
            w.stop()
        for w in workers:
            w.proc.join(timeout=2)
            w.kill()
