"""The analysis workers of ``detect serve``, used from the asyncio event loop.

The web server never decodes an upload itself. The workers are the engine's
own (:class:`cli.engine.WorkerPool`: one process per analysis, its pipeline
built once, the per-file time limit, kill and replace, thread limits, the
start-up grace); this module only adapts them to asyncio. Uploads are
analysed from bytes in memory (nothing is written to disk); a worker that
exceeds the time limit or dies (a decoder crash on a hostile file) is killed
and replaced, and that upload gets an error record, so one file can neither
hang nor crash the server.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Sequence

from cli.engine import BytesJob, Calibration, EngineConfig, Worker, WorkerPool, WorkerSpec

__all__ = ["AnalysisPool", "PoolInfo"]


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
        calibration: The loaded calibration, or ``None`` for the shipped one.

    Raises:
        ValueError: If a limit is out of range.
    """

    def __init__(
        self,
        size: int,
        *,
        max_pixels: int,
        timeout_s: float,
        detectors: Sequence[str],
        calibration: Calibration | None = None,
    ) -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        config = EngineConfig(
            detectors=tuple(detectors), max_pixels=int(max_pixels), timeout_s=float(timeout_s), jobs=int(size),
            **({"calibration": calibration} if calibration is not None else {}),
        )  # fmt: skip
        self.size = int(size)
        self.info = PoolInfo()
        self._pool = WorkerPool(WorkerSpec(config), size=self.size, timeout_s=config.timeout_s)
        self._threads: ThreadPoolExecutor | None = None

    @property
    def timeout_s(self) -> float:
        """Wall-time limit of one analysis, in seconds."""
        return self._pool.timeout_s

    @timeout_s.setter
    def timeout_s(self, value: float) -> None:
        if value <= 0:
            raise ValueError(f"timeout_s must be > 0, got {value}")
        self._pool.timeout_s = float(value)

    @property
    def _workers(self) -> list[Worker]:
        return self._pool.workers

    # -- lifecycle ---------------------------------------------------------- #

    async def start(self) -> None:
        """Start the workers and wait until every one has built its pipeline.

        Raises:
            RuntimeError: If a worker fails to start.
        """
        self._threads = ThreadPoolExecutor(max_workers=self.size, thread_name_prefix="detect-serve-wait")
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._threads, self._pool.start)
        except BaseException:
            await self.close()
            raise
        info = self._pool.info
        if info is not None:
            self.info = PoolInfo(models=dict(info.models), calibration=dict(info.calibration))

    async def close(self) -> None:
        """Stop the workers (an analysis still running is abandoned)."""
        self._pool.close()
        if self._threads is not None:
            self._threads.shutdown(wait=False, cancel_futures=True)
            self._threads = None

    # -- analysis ----------------------------------------------------------- #

    async def analyze(self, data: bytes, name: str) -> Any:
        """Analyse one upload in a worker process.

        Args:
            data: The file's bytes.
            name: Display name for the record (the upload's filename).

        Returns:
            A :class:`detectors.pipeline.Analysis` with visuals. Never raises for
            a bad file, a timeout or a crashed worker: those give error records.

        Raises:
            RuntimeError: If the pool is not started.
        """
        if self._threads is None:
            raise RuntimeError("the pool is not started")
        loop = asyncio.get_running_loop()
        # The worker goes back to the pool when its analysis ends, even if this
        # request was cancelled meanwhile (a client that went away).
        fut = loop.run_in_executor(self._threads, self._pool.run, BytesJob(data, name, visuals=True))
        return await asyncio.shield(fut)
