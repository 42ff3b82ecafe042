"""The engine's one frozen configuration, and the one place ``cli/`` loads a calibration.

Each command builds an :class:`EngineConfig` once (``detect scan``, ``detect
eval``, ``detect calibrate``, ``detect serve``), with the
:class:`~detectors.calibration.Calibration` already loaded, and passes the object
down: the engines, their worker processes (which receive it pickled, as a
frozen dataclass) and the Ray actors never parse a calibration file again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

# The calibration type and its loader: the only import of them in cli/ (the verdict core may move them).
from detectors.calibration import Calibration, load_calibration
from forensics.io import DEFAULT_MAX_PIXELS

if TYPE_CHECKING:  # pragma: no cover
    from detectors.pipeline import Pipeline

__all__ = ["Calibration", "ENGINE_KINDS", "EngineConfig", "resolve_calibration"]

#: ``--engine`` choices: this machine, or Ray Data (see :mod:`cli.engine.ray_data`).
ENGINE_KINDS = ("local", "ray")


def resolve_calibration(path: str | os.PathLike[str] | None = None) -> Calibration:
    """The run's calibration: the file at ``path``, else the shipped one.

    Raises:
        ValueError: If the file is malformed, naming it.
        OSError: If it cannot be read.
    """
    return load_calibration(path) if path else load_calibration()


@dataclass(frozen=True)
class EngineConfig:
    """How to build the per-image pipeline and how to run it.

    Attributes:
        detectors: Detector registry names; empty: the ``detect scan`` defaults.
        calibration: The loaded calibration (default: the shipped one, loaded
            when the config is built).
        visuals: Compute report-card images.
        jobs: Worker processes; 0 runs in this process (no time limit enforced).
        timeout_s: Per-file wall-time limit in seconds (> 0).
        torch_threads: Threads each worker may give torch and BLAS (avoids oversubscription).
        engine: ``"local"`` (this machine) or ``"ray"`` (Ray Data; see :mod:`cli.engine.ray_data`).
        stability: Re-score pixel verdicts under JPEG q90 and a 0.75x resize (see ``Pipeline``).
        batch_images: Images per batch of the batchable detectors (the CNN), >= 1.
        cnn_threads: torch threads of the batched CNN stage; ``None``: the
            cores left over by the workers, at least 1.
        ray_actors: Batched-stage actors under ``engine == "ray"``; ``None``: one per
            GPU of the cluster, else one per job.
        max_pixels: Refuse images whose header claims more pixels than this.

    Raises:
        ValueError: If a value is out of range, naming it.
    """

    detectors: tuple[str, ...] = ()
    calibration: Calibration = field(default_factory=resolve_calibration)
    visuals: bool = False
    jobs: int = 1
    timeout_s: float = 120.0
    torch_threads: int = 1
    engine: str = "local"
    stability: bool = False
    batch_images: int = 16
    cnn_threads: int | None = None
    ray_actors: int | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS

    def __post_init__(self) -> None:
        if not isinstance(self.calibration, Calibration):
            raise ValueError(f"calibration must be a loaded Calibration (see resolve_calibration), got {type(self.calibration).__name__}")
        if self.batch_images < 1:
            raise ValueError(f"batch_images must be >= 1, got {self.batch_images}")
        if self.ray_actors is not None and self.ray_actors < 1:
            raise ValueError(f"ray_actors must be >= 1, got {self.ray_actors}")
        if self.cnn_threads is not None and self.cnn_threads < 1:
            raise ValueError(f"cnn_threads must be >= 1, got {self.cnn_threads}")
        if self.torch_threads < 1:
            raise ValueError(f"torch_threads must be >= 1, got {self.torch_threads}")
        if self.engine not in ENGINE_KINDS:
            raise ValueError(f"engine must be one of {ENGINE_KINDS}, got {self.engine!r}")
        if self.jobs < 0:
            raise ValueError(f"jobs must be >= 0, got {self.jobs}")
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s}")
        if self.max_pixels < 1:
            raise ValueError(f"max_pixels must be >= 1, got {self.max_pixels}")

    @property
    def names(self) -> tuple[str, ...]:
        """The detector registry names the pipeline runs (the scan defaults when ``detectors`` is empty)."""
        if self.detectors:
            return tuple(self.detectors)
        from detectors.pipeline import DEFAULT_DETECTORS

        return DEFAULT_DETECTORS

    def build_pipeline(self, *, defer: bool = False) -> Pipeline:
        """The pipeline every worker runs; with ``defer``, batchable detectors are only prepared."""
        from detectors.pipeline import Pipeline

        return Pipeline(
            self.names, calibration=self.calibration, stability=self.stability,
            max_pixels=self.max_pixels, defer=self.batched() if defer else (),
        )  # fmt: skip

    def batched(self) -> tuple[str, ...]:
        """The detectors that run batched outside the workers (none with ``stability``)."""
        if self.stability:
            return ()
        from detectors.base import is_batchable

        return tuple(d for d in self.names if is_batchable(d))

    def build_finisher(self, *, batched: bool = True) -> Pipeline:
        """The pipeline that runs the batched detectors (with their networks) and fuses.

        With ``batched=False`` it only fuses (for workers that ran every detector).
        """
        from detectors.pipeline import Pipeline

        return Pipeline(self.batched() if batched else (), calibration=self.calibration, max_pixels=self.max_pixels)

    def stage_threads(self) -> int:
        """torch threads of the batched stage."""
        if self.cnn_threads is not None:
            return self.cnn_threads
        return max(1, (os.cpu_count() or 1) - max(1, self.jobs))
