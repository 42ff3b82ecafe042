"""The scan record: one JSON-serialisable document per image.

The schema is versioned by :data:`SCHEMA_VERSION`; every report format (JSON,
JSONL, CSV, HTML) and every engine writes exactly these records.

Record layout::

    {
      "record_type": "image",
      "schema_version": "1.0",
      "tool": {"name": "detect", "version": "0.1.0"},
      "file": {"path", "sha256", "format", "width", "height", "bytes", "mode", "frames",
               "mtime_ns"},                 # mtime_ns: for --resume; null for uploads
      "status": "ok" | "error",
      "error": null | {"code": str, "message": str},
      "label": "ai_confirmed" | "likely_ai" | "inconclusive" | "likely_real" | "error",
      "score": float in [0, 1] (P(AI)) | null,
      "decided_by": str | null,         # detector that set the label
      "detectors": [DetectorResult.to_dict(), ...],
      "quality_flags": [{"code": str, "message": str}, ...],
      "explanations": [str, ...],
      "calibration": {"name": str, "version": str, "likely_ai": float, "likely_real": float},
      "timing": {"load_s": float, "detect_s": float, "total_s": float}
    }
"""

from __future__ import annotations

import functools

import os
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

__all__ = ["LABELS", "LABEL_RANK", "SCHEMA_VERSION", "TOOL_NAME", "Label", "error_record", "tool_version"]

SCHEMA_VERSION = "1.0"
TOOL_NAME = "detect"

Label = Literal["ai_confirmed", "likely_ai", "inconclusive", "likely_real", "error"]
#: Labels from most to least AI. ``error`` is outside the order.
LABELS: tuple[str, ...] = ("ai_confirmed", "likely_ai", "inconclusive", "likely_real", "error")
#: Severity rank used by ``--fail-on``: a label fails when its rank >= the chosen one.
LABEL_RANK: dict[str, int] = {"likely_real": 0, "inconclusive": 1, "likely_ai": 2, "ai_confirmed": 3}


@functools.lru_cache(maxsize=1)
def tool_version() -> str:
    """Installed version of the tool, or ``0+unknown`` when run from a bare checkout."""
    try:
        from importlib.metadata import version

        return version("aidetect")
    except Exception:  # noqa: BLE001
        return "0+unknown"


def tool_info() -> dict[str, str]:
    """The ``tool`` block of a record."""
    return {"name": TOOL_NAME, "version": tool_version()}


def display_path(path: str | os.PathLike[str] | bytes) -> str:
    """A printable path: undecodable bytes become ``\\udcXX`` escapes shown as ``?``-free text.

    Filenames that are not valid UTF-8 are kept round-trippable with
    ``surrogateescape`` and rendered with backslash escapes for reports.
    """
    s = os.fsdecode(path)
    try:
        s.encode("utf-8")
        return s
    except UnicodeEncodeError:
        return s.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def error_record(
    path: str,
    code: str,
    message: str,
    *,
    size: int | None = None,
    calibration: dict[str, Any] | None = None,
    total_s: float = 0.0,
) -> dict[str, Any]:
    """A record for a file that could not be analysed.

    Args:
        path: The file's path, as given.
        code: Short machine-readable reason (e.g. ``truncated``).
        message: Human-readable message naming the file and the problem.
        size: File size in bytes, when known.
        calibration: The calibration block of the run.
        total_s: Time spent before the failure.
    """
    return {
        "record_type": "image",
        "schema_version": SCHEMA_VERSION,
        "tool": tool_info(),
        "file": {
            "path": display_path(path),
            "sha256": None,
            "format": None,
            "width": None,
            "height": None,
            "bytes": size,
            "mode": None,
            "frames": None,
            "mtime_ns": None,
        },
        "status": "error",
        "error": {"code": code, "message": message},
        "label": "error",
        "score": None,
        "decided_by": None,
        "detectors": [],
        "quality_flags": [],
        "explanations": [f"The file could not be analysed: {message}"],
        "calibration": calibration,
        "timing": {"load_s": None, "detect_s": None, "total_s": round(total_s, 6)},
    }


@dataclass(frozen=True)
class Visuals:
    """Small images shown on a report card; kept out of the JSON record.

    Attributes:
        thumbnail: ``uint8`` RGB array ``(h, w, 3)``, long side <= 256, or ``None``.
        residual: ``uint8`` grey array ``(h, w)``: the high-pass residual of a
            full-resolution crop, contrast-stretched for display, or ``None``.
        spectrum: ``uint8`` grey array ``(h, w)``: the centred log power spectrum
            of the residual, display-scaled, or ``None``.
    """

    thumbnail: np.ndarray | None = None
    residual: np.ndarray | None = None
    spectrum: np.ndarray | None = None
