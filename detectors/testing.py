"""Tiny detectors for tests of the engine: fixed delays, no maths.

``test_slow`` sleeps 0.3 s per image, ``test_hang`` sleeps an hour, and
``test_hang_some`` sleeps an hour on files whose path contains ``hang``, so
tests can exercise progress, signals and the per-file time limit in real
worker processes (which rebuild detectors by name).
"""

from __future__ import annotations

import time
from typing import Any

from detectors.base import DetectorResult, register_detector
from forensics.io import LoadedImage

__all__ = ["SleepDetector"]


class SleepDetector:
    """Sleeps ``seconds`` and returns a fixed score of 0.5.

    Args:
        seconds: Delay per image, >= 0.
    """

    name = "sleep"
    version = "sleep-1"

    def __init__(self, *, seconds: float, only_if_name_has: str | None = None) -> None:
        if seconds < 0:
            raise ValueError(f"seconds must be >= 0, got {seconds}")
        self.seconds = seconds
        self.only_if_name_has = only_if_name_has

    def analyze(self, image: LoadedImage) -> DetectorResult:
        """Sleep (only for matching file names, if ``only_if_name_has`` is set), then return score 0.5."""
        if self.only_if_name_has is None or self.only_if_name_has in (image.path or ""):
            time.sleep(self.seconds)
        return DetectorResult(name=self.name, version=self.version, score=0.5, time_s=self.seconds)


@register_detector("test_slow", kind="pixel")
def _slow(**kw: Any) -> SleepDetector:
    return SleepDetector(seconds=kw.get("seconds", 0.3))


@register_detector("test_hang", kind="pixel")
def _hang(**kw: Any) -> SleepDetector:
    return SleepDetector(seconds=kw.get("seconds", 3600.0))


@register_detector("test_hang_some", kind="pixel")
def _hang_some(**kw: Any) -> SleepDetector:
    """Hangs only on files whose path contains ``hang``."""
    return SleepDetector(seconds=kw.get("seconds", 3600.0), only_if_name_has="hang")
