"""The jobs a worker runs for ``detect scan`` (a file path) and for the desk (bytes in memory).

``detect eval``'s job (a sample under a perturbation) lives with the command,
in :class:`cli.evaluate.GridJob`; every job follows :class:`cli.engine.worker.Job`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from detectors.pipeline import Analysis, PartialAnalysis
from detectors.record import error_record

if TYPE_CHECKING:  # pragma: no cover
    from detectors.pipeline import Pipeline

__all__ = ["BytesJob", "PathJob"]


@dataclass(frozen=True)
class PathJob:
    """Analyse one file (or fsspec URL) up to the deferred detectors.

    Attributes:
        path: The file.
        visuals: Compute report-card images.
    """

    path: str
    visuals: bool = False

    def run(self, pipeline: Pipeline) -> Analysis | PartialAnalysis:
        """``pipeline.start_path``: an error record for a bad file, else a partial analysis."""
        return pipeline.start_path(self.path, visuals=self.visuals)

    def failed(self, code: str, message: str, calibration: dict[str, Any]) -> Analysis:
        """An error record naming the file."""
        name = os.fsdecode(self.path)
        return Analysis(error_record(name, code, f"{name}: {message}", calibration=calibration))


@dataclass(frozen=True)
class BytesJob:
    """Analyse an upload from its bytes, completely (fusion included), with its report-card images.

    Attributes:
        data: The file's bytes.
        name: Display name for the record.
        visuals: Compute report-card images.
    """

    data: bytes
    name: str
    visuals: bool = True

    def run(self, pipeline: Pipeline) -> Analysis:
        """``pipeline.analyze_bytes``."""
        return pipeline.analyze_bytes(self.data, name=self.name, visuals=self.visuals)

    def failed(self, code: str, message: str, calibration: dict[str, Any]) -> Analysis:
        """An error record for the upload."""
        return Analysis(error_record(self.name, code, message, size=len(self.data), calibration=calibration))
