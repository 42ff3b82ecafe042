"""The :class:`Engine` protocol and :func:`make_engine`, which picks the engine for a configuration."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Iterator, Protocol, runtime_checkable

from cli.engine.config import EngineConfig
from cli.engine.signals import deferred_signals

if TYPE_CHECKING:  # pragma: no cover
    from cli.engine.worker import Job
    from detectors.pipeline import Analysis

__all__ = ["Engine", "make_engine"]


@runtime_checkable
class Engine(Protocol):
    """What every engine offers: ordered results, then ``close``.

    Attributes:
        config: The configuration it was built with.
    """

    config: EngineConfig

    def map(self, paths: Iterable[str]) -> Iterator[Analysis]:
        """Analyse files (``detect scan``), yielding one analysis per path in input order."""

    def run(self, jobs: Iterable[Job]) -> Iterator[Any]:
        """Run complete jobs (``detect eval``/``calibrate``), yielding one result per job in input order."""

    def close(self) -> None:
        """Release workers, actors or clusters this engine started."""


def make_engine(config: EngineConfig, *, defer: bool = True) -> Engine:
    """The engine for ``config``.

    ``RayEngine`` for ``engine == "ray"``; else ``InProcessEngine`` for
    ``jobs == 0``, else ``ProcessEngine``.

    Stop signals (SIGINT, SIGTERM) that arrive while the engine is built are
    taken as soon as it is (see :func:`cli.engine.signals.deferred_signals`).

    Args:
        config: The engine configuration.
        defer: Let the batchable detectors (the CNN) run in a batched stage
            beside the workers (``map``); ``False`` for engines that run
            complete jobs (``run``), which then load no network in this process.
    """
    engine: Engine | None = None
    try:
        with deferred_signals():  # a Ctrl-C while workers spawn or torch loads is taken right after
            if config.engine == "ray":
                from cli.engine.ray_data import RayEngine

                engine = RayEngine(config, defer=defer)
            else:
                from cli.engine.local import InProcessEngine, ProcessEngine

                engine = InProcessEngine(config) if config.jobs == 0 else ProcessEngine(config, defer=defer)
    except BaseException:  # the stop taken at the end of the build: release what was built
        if engine is not None:
            engine.close()
        raise
    return engine
