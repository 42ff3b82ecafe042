"""The :class:`Engine` protocol and :func:`make_engine`, which picks the engine for a configuration."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Iterator, Protocol, runtime_checkable

from cli.engine.config import EngineConfig

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

    Args:
        config: The engine configuration.
        defer: Let the batchable detectors (the CNN) run in a batched stage
            beside the workers (``map``); ``False`` for engines that run
            complete jobs (``run``), which then load no network in this process.
    """
    if config.engine == "ray":
        from cli.engine.ray_data import RayEngine

        return RayEngine(config, defer=defer)
    from cli.engine.local import InProcessEngine, ProcessEngine

    return InProcessEngine(config) if config.jobs == 0 else ProcessEngine(config, defer=defer)
