"""The analysis engine: one worker life cycle, three ways to run it, one configuration.

Modules (imports run one way: ``config`` and ``signals`` at the bottom, then
``worker`` and ``jobs``, then the engines, then ``base``):

* :mod:`cli.engine.config`: :class:`EngineConfig`, built once per command with
  the loaded :class:`~detectors.calibration.Calibration`;
* :mod:`cli.engine.signals`: clean SIGINT/SIGTERM stops;
* :mod:`cli.engine.worker`: the one worker process (start, ready signal,
  per-job time limit, kill and replace, thread limits) and a pool of them;
* :mod:`cli.engine.jobs`: the jobs of ``detect scan`` and of the desk;
* :mod:`cli.engine.local`: in-process and local worker-process engines;
* :mod:`cli.engine.ray_data`: the Ray Data engine (optional ``[cluster]`` extra);
* :mod:`cli.engine.base`: the :class:`Engine` protocol and :func:`make_engine`.

Used by ``detect scan``, ``detect eval``, ``detect calibrate`` and the desk
(:mod:`cli.web.pool`), none of which starts a process of its own.
"""

from cli.engine.base import Engine, make_engine
from cli.engine.config import Calibration, EngineConfig, resolve_calibration
from cli.engine.jobs import BytesJob, PathJob
from cli.engine.local import InProcessEngine, ProcessEngine
from cli.engine.signals import Interrupts, Terminated
from cli.engine.worker import STARTUP_GRACE_S, Job, Worker, WorkerInfo, WorkerPool, WorkerSpec

__all__ = [
    "BytesJob", "Calibration", "Engine", "EngineConfig", "InProcessEngine", "Interrupts", "Job", "PathJob",
    "ProcessEngine", "STARTUP_GRACE_S", "Terminated", "Worker", "WorkerInfo", "WorkerPool", "WorkerSpec",
    "make_engine", "resolve_calibration",
]  # fmt: skip
