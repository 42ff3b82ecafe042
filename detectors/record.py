"""The scan records: one JSON document per image, and one per run.

The schema is versioned by :data:`SCHEMA_VERSION`; every report format (JSON,
JSONL, CSV, HTML) and every engine writes exactly these records. Each record
is built in one place, as a frozen dataclass, and turned into its JSON form by
one ``to_json()``: :class:`ImageRecord` (analysis and error records alike) and
:class:`SummaryRecord` (``detect scan`` and the ``detect serve`` upload).
``from_json()`` reads a record back (``--resume``, reports) and checks it.

Image record layout::

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
      "calibration": {"name": str, "version": str, "likely_ai": float, "likely_real": float, ...} | null,
      "timing": {"load_s": float | null, "detect_s": float | null, "total_s": float}
    }

Summary record layout::

    {
      "record_type": "summary",
      "schema_version": "1.0",
      "tool": {"name": "detect", "version": "0.1.0"},
      "n_files": int, "n_errors": int,
      "counts": {label: int, ...},      # every label of LABELS, in that order
      "thresholds": {"likely_ai": float | null, "likely_real": float | null},
      "calibration": {...} | null,      # as in the image records
      "models": {detector: version, ...},
      "config": {...},                  # the run's public configuration
      "started_at": ISO 8601 UTC, "finished_at": ISO 8601 UTC,
      "elapsed_s": float, "exit_status": int
    }
"""

from __future__ import annotations

import datetime as _dt
import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from detectors.base import DetectorResult
from forensics.io import QualityFlag

if TYPE_CHECKING:
    from forensics.io import LoadedImage

__all__ = [
    "LABELS",
    "LABEL_RANK",
    "SCHEMA_VERSION",
    "TOOL_NAME",
    "ErrorInfo",
    "FileInfo",
    "ImageRecord",
    "Label",
    "SummaryRecord",
    "Timing",
    "ToolInfo",
    "Visuals",
    "display_path",
    "error_record",
    "tool_info",
    "tool_version",
    "utc_now",
]

SCHEMA_VERSION = "1.0"
TOOL_NAME = "detect"

Label = Literal["ai_confirmed", "likely_ai", "inconclusive", "likely_real", "error"]
Status = Literal["ok", "error"]
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
    """The ``tool`` block of a record made now."""
    return ToolInfo.current().to_json()


def utc_now() -> str:
    """The current UTC time as ISO 8601 to the second (``started_at``/``finished_at``)."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


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


# --------------------------------------------------------------------------- #
# Reading helpers
# --------------------------------------------------------------------------- #


def _block(obj: Any, keys: tuple[str, ...], where: str) -> Mapping[str, Any]:
    """``obj`` checked to be a mapping holding every one of ``keys``."""
    if not isinstance(obj, Mapping):
        raise ValueError(f"{where} must be an object, got {type(obj).__name__}")
    missing = [k for k in keys if k not in obj]
    if missing:
        raise ValueError(f"{where} lacks {', '.join(missing)}")
    return obj


def _items(obj: Any, where: str) -> list[Any]:
    if not isinstance(obj, (list, tuple)):
        raise ValueError(f"{where} must be a list, got {type(obj).__name__}")
    return list(obj)


def _check_header(d: Any, record_type: str) -> Mapping[str, Any]:
    if not isinstance(d, Mapping):
        raise ValueError(f"a {record_type} record must be an object, got {type(d).__name__}")
    if d.get("record_type") != record_type:
        raise ValueError(f"record_type must be {record_type!r}, got {d.get('record_type')!r}")
    if d.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(
            f"{record_type} record has schema_version {d.get('schema_version')!r}; this tool reads {SCHEMA_VERSION!r}"
        )
    return d


# --------------------------------------------------------------------------- #
# Blocks
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class ToolInfo:
    """The ``tool`` block: which program wrote the record.

    Attributes:
        name: Program name, ``detect``.
        version: Its version (see :func:`tool_version`).
    """

    name: str
    version: str

    @classmethod
    def current(cls) -> ToolInfo:
        """This program, as installed."""
        return cls(TOOL_NAME, tool_version())

    def to_json(self) -> dict[str, str]:
        """The JSON form."""
        return {"name": self.name, "version": self.version}

    @classmethod
    def from_json(cls, d: Any) -> ToolInfo:
        """Read the JSON form back; ``ValueError`` if a key is missing."""
        d = _block(d, ("name", "version"), "tool")
        return cls(d["name"], d["version"])


_FILE_KEYS = ("path", "sha256", "format", "width", "height", "bytes", "mode", "frames", "mtime_ns")


@dataclass(frozen=True)
class FileInfo:
    """The ``file`` block: what was read. Unknown values are ``None``.

    Attributes:
        path: Display path (see :func:`display_path`) or upload name.
        sha256: Hex SHA-256 of the file's bytes.
        format: Decoder format name, e.g. ``JPEG``.
        width: Pixels across.
        height: Pixels down.
        bytes: File size in bytes.
        mode: PIL mode of the decoded image, e.g. ``RGB``.
        frames: Number of frames.
        mtime_ns: Modification time, for ``--resume``; ``None`` for uploads.
    """

    path: str
    sha256: str | None = None
    format: str | None = None
    width: int | None = None
    height: int | None = None
    bytes: int | None = None
    mode: str | None = None
    frames: int | None = None
    mtime_ns: int | None = None

    @classmethod
    def of_image(cls, image: LoadedImage) -> FileInfo:
        """The block of a loaded image (``mtime_ns`` unknown until the caller stats the file)."""
        return cls(
            path=display_path(image.path or ""),
            sha256=image.sha256,
            format=image.format,
            width=image.width,
            height=image.height,
            bytes=len(image.data),
            mode=image.mode,
            frames=image.n_frames,
        )

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        return {k: getattr(self, k) for k in _FILE_KEYS}

    @classmethod
    def from_json(cls, d: Any) -> FileInfo:
        """Read the JSON form back; ``ValueError`` if a key is missing."""
        d = _block(d, _FILE_KEYS, "file")
        if not isinstance(d["path"], str):
            raise ValueError(f"file.path must be a string, got {type(d['path']).__name__}")
        return cls(**{k: d[k] for k in _FILE_KEYS})


@dataclass(frozen=True)
class ErrorInfo:
    """The ``error`` block of a file that could not be analysed.

    Attributes:
        code: Short machine-readable reason, e.g. ``truncated``.
        message: Human-readable message naming the file and the problem.
    """

    code: str
    message: str

    def to_json(self) -> dict[str, str]:
        """The JSON form."""
        return {"code": self.code, "message": self.message}

    @classmethod
    def from_json(cls, d: Any) -> ErrorInfo:
        """Read the JSON form back; ``ValueError`` if a key is missing."""
        d = _block(d, ("code", "message"), "error")
        return cls(d["code"], d["message"])


@dataclass(frozen=True)
class Timing:
    """The ``timing`` block, in seconds; written rounded to microseconds.

    Attributes:
        load_s: Reading and decoding, or ``None`` when the file never loaded.
        detect_s: The detectors, or ``None`` when they never ran.
        total_s: Everything for this file.
    """

    load_s: float | None = None
    detect_s: float | None = None
    total_s: float | None = 0.0

    def to_json(self) -> dict[str, float | None]:
        """The JSON form."""
        return {
            "load_s": None if self.load_s is None else round(self.load_s, 6),
            "detect_s": None if self.detect_s is None else round(self.detect_s, 6),
            "total_s": None if self.total_s is None else round(self.total_s, 6),
        }

    @classmethod
    def from_json(cls, d: Any) -> Timing:
        """Read the JSON form back; ``ValueError`` if a key is missing."""
        d = _block(d, ("load_s", "detect_s", "total_s"), "timing")
        return cls(d["load_s"], d["detect_s"], d["total_s"])


_DETECTOR_KEYS = (
    "name", "version", "status", "score", "threshold", "claim", "strength", "evidence", "explanations", "message", "time_s",
)  # fmt: skip


def _detector_from_json(d: Any, where: str) -> DetectorResult:
    """A :class:`DetectorResult` from its ``to_dict`` form."""
    d = _block(d, _DETECTOR_KEYS, where)
    if not isinstance(d["name"], str):
        raise ValueError(f"{where}.name must be a string, got {type(d['name']).__name__}")
    ev = d["evidence"]
    if not isinstance(ev, Mapping):
        raise ValueError(f"{where}.evidence must be an object, got {type(ev).__name__}")
    return DetectorResult(
        name=d["name"],
        version=d["version"],
        status=d["status"],
        score=d["score"],
        threshold=d["threshold"],
        claim=d["claim"],
        strength=d["strength"],
        evidence=dict(ev),
        explanations=tuple(_items(d["explanations"], f"{where}.explanations")),
        message=d["message"],
        time_s=d["time_s"],
    )


# --------------------------------------------------------------------------- #
# Image record
# --------------------------------------------------------------------------- #

_IMAGE_KEYS = (
    "record_type", "schema_version", "tool", "file", "status", "error", "label", "score", "decided_by",
    "detectors", "quality_flags", "explanations", "calibration", "timing",
)  # fmt: skip


@dataclass(frozen=True)
class ImageRecord:
    """One image's record (schema :data:`SCHEMA_VERSION`); :meth:`to_json` is its only serialisation.

    Analysed files come from :meth:`detectors.pipeline.Pipeline` (status
    ``ok``); files that could not be analysed from :meth:`failed`.

    Attributes:
        file: What was read.
        label: The verdict (``error`` for a failed file).
        status: ``ok``, or ``error`` when the file could not be analysed.
        error: Why it could not be analysed (exactly when ``status`` is ``error``).
        score: Calibrated P(AI) in ``[0, 1]``, or ``None``.
        decided_by: The detector (or rule) that set the label, or ``None``.
        detectors: Every detector's result, in the pipeline's order.
        quality_flags: Conditions that weaken or qualify the evidence.
        explanations: Plain-language sentences for a human reader.
        calibration: The calibration block of the run
            (:meth:`detectors.fusion.Calibration.to_dict`), or ``None``.
        timing: Seconds spent.
        tool: The program that wrote the record.
    """

    file: FileInfo
    label: Label
    status: Status = "ok"
    error: ErrorInfo | None = None
    score: float | None = None
    decided_by: str | None = None
    detectors: tuple[DetectorResult, ...] = ()
    quality_flags: tuple[QualityFlag, ...] = ()
    explanations: tuple[str, ...] = ()
    calibration: Mapping[str, Any] | None = None
    timing: Timing = field(default_factory=Timing)
    tool: ToolInfo = field(default_factory=ToolInfo.current)

    def __post_init__(self) -> None:
        if self.label not in LABELS:
            raise ValueError(f"label must be one of {', '.join(LABELS)}, got {self.label!r}")
        if self.status not in ("ok", "error"):
            raise ValueError(f"status must be 'ok' or 'error', got {self.status!r}")
        if (self.status == "error") != (self.error is not None):
            raise ValueError(f"status {self.status!r} with error {self.error!r}: an error block goes with status 'error' only")
        if self.score is not None and not (
            isinstance(self.score, (int, float, np.floating)) and not isinstance(self.score, bool) and 0.0 <= self.score <= 1.0
        ):
            raise ValueError(f"score must be a number in [0, 1] or None, got {self.score!r}")

    @classmethod
    def failed(
        cls,
        path: str | os.PathLike[str] | bytes,
        code: str,
        message: str,
        *,
        size: int | None = None,
        calibration: Mapping[str, Any] | None = None,
        total_s: float = 0.0,
    ) -> ImageRecord:
        """The record of a file that could not be analysed.

        Args:
            path: The file's path, as given.
            code: Short machine-readable reason (e.g. ``truncated``).
            message: Human-readable message naming the file and the problem.
            size: File size in bytes, when known.
            calibration: The calibration block of the run.
            total_s: Time spent before the failure.
        """
        return cls(
            file=FileInfo(path=display_path(path), bytes=size),
            label="error",
            status="error",
            error=ErrorInfo(code, message),
            explanations=(f"The file could not be analysed: {message}",),
            calibration=calibration,
            timing=Timing(total_s=total_s),
        )

    def to_json(self) -> dict[str, Any]:
        """The record as schema-1.0 JSON (plain dicts and lists, keys in schema order)."""
        return {
            "record_type": "image",
            "schema_version": SCHEMA_VERSION,
            "tool": self.tool.to_json(),
            "file": self.file.to_json(),
            "status": self.status,
            "error": None if self.error is None else self.error.to_json(),
            "label": self.label,
            "score": None if self.score is None else round(float(self.score), 6),
            "decided_by": self.decided_by,
            "detectors": [r.to_dict() for r in self.detectors],
            "quality_flags": [{"code": f.code, "message": f.message} for f in self.quality_flags],
            "explanations": list(self.explanations),
            "calibration": None if self.calibration is None else dict(self.calibration),
            "timing": self.timing.to_json(),
        }

    @classmethod
    def from_json(cls, d: Any) -> ImageRecord:
        """Read a record written by :meth:`to_json` (e.g. a JSONL line) back.

        ``ImageRecord.from_json(r).to_json() == r`` for every record this tool writes.

        Raises:
            ValueError: If ``d`` is not a schema-1.0 image record, naming what is wrong.
        """
        d = _block(_check_header(d, "image"), _IMAGE_KEYS, "image record")
        cal = d["calibration"]
        if cal is not None and not isinstance(cal, Mapping):
            raise ValueError(f"calibration must be an object or null, got {type(cal).__name__}")
        flags = []
        for i, q in enumerate(_items(d["quality_flags"], "quality_flags")):
            q = _block(q, ("code", "message"), f"quality_flags[{i}]")
            flags.append(QualityFlag(q["code"], q["message"]))
        return cls(
            file=FileInfo.from_json(d["file"]),
            label=d["label"],
            status=d["status"],
            error=None if d["error"] is None else ErrorInfo.from_json(d["error"]),
            score=d["score"],
            decided_by=d["decided_by"],
            detectors=tuple(_detector_from_json(r, f"detectors[{i}]") for i, r in enumerate(_items(d["detectors"], "detectors"))),
            quality_flags=tuple(flags),
            explanations=tuple(_items(d["explanations"], "explanations")),
            calibration=None if cal is None else dict(cal),
            timing=Timing.from_json(d["timing"]),
            tool=ToolInfo.from_json(d["tool"]),
        )


def error_record(
    path: str,
    code: str,
    message: str,
    *,
    size: int | None = None,
    calibration: dict[str, Any] | None = None,
    total_s: float = 0.0,
) -> dict[str, Any]:
    """The JSON record of a file that could not be analysed (:meth:`ImageRecord.failed`).

    Args:
        path: The file's path, as given.
        code: Short machine-readable reason (e.g. ``truncated``).
        message: Human-readable message naming the file and the problem.
        size: File size in bytes, when known.
        calibration: The calibration block of the run.
        total_s: Time spent before the failure.
    """
    return ImageRecord.failed(path, code, message, size=size, calibration=calibration, total_s=total_s).to_json()


# --------------------------------------------------------------------------- #
# Summary record
# --------------------------------------------------------------------------- #

_SUMMARY_KEYS = (
    "record_type", "schema_version", "tool", "n_files", "n_errors", "counts", "thresholds", "calibration",
    "models", "config", "started_at", "finished_at", "elapsed_s", "exit_status",
)  # fmt: skip


@dataclass(frozen=True)
class SummaryRecord:
    """The summary of one run (a ``detect scan``, or one ``detect serve`` upload).

    Build it with :meth:`finish` at the end of the run; :meth:`to_json` is its
    only serialisation.

    Attributes:
        n_files: Image records written.
        n_errors: Of which could not be analysed.
        counts: Records per label, every label of :data:`LABELS` in that order.
        thresholds: ``likely_ai`` and ``likely_real`` thresholds of the calibration.
        calibration: The calibration block, as in the image records, or ``None``.
        models: Detector name -> version.
        config: The run's public configuration.
        started_at: ISO 8601 UTC start time.
        finished_at: ISO 8601 UTC end time.
        elapsed_s: Wall seconds, rounded to milliseconds.
        exit_status: The command's exit status.
        tool: The program that wrote the record.
    """

    n_files: int
    n_errors: int
    counts: Mapping[str, int]
    thresholds: Mapping[str, float | None]
    calibration: Mapping[str, Any] | None
    models: Mapping[str, str]
    config: Mapping[str, Any]
    started_at: str
    finished_at: str
    elapsed_s: float
    exit_status: int
    tool: ToolInfo = field(default_factory=ToolInfo.current)

    @classmethod
    def finish(
        cls,
        *,
        n_files: int,
        n_errors: int,
        counts: Mapping[str, int],
        calibration: Mapping[str, Any] | None,
        models: Mapping[str, str],
        config: Mapping[str, Any],
        started_at: str,
        elapsed_s: float,
        exit_status: int,
    ) -> SummaryRecord:
        """The summary of a run that ends now (``finished_at`` is the current time).

        Args:
            n_files: Image records written.
            n_errors: Of which could not be analysed.
            counts: Records per label (labels not given count 0).
            calibration: The calibration block (its ``likely_ai`` and
                ``likely_real`` become the thresholds), or ``None``.
            models: Detector name -> version.
            config: The run's public configuration.
            started_at: ISO 8601 UTC start time (:func:`utc_now` at the start).
            elapsed_s: Wall seconds of the run.
            exit_status: The command's exit status.
        """
        cal = None if calibration is None else dict(calibration)
        return cls(
            n_files=int(n_files),
            n_errors=int(n_errors),
            counts={label: counts.get(label, 0) for label in LABELS},
            thresholds={"likely_ai": (cal or {}).get("likely_ai"), "likely_real": (cal or {}).get("likely_real")},
            calibration=cal,
            models=dict(models),
            config=dict(config),
            started_at=started_at,
            finished_at=utc_now(),
            elapsed_s=round(elapsed_s, 3),
            exit_status=int(exit_status),
        )

    def to_json(self) -> dict[str, Any]:
        """The summary as schema-1.0 JSON (keys in schema order)."""
        return {
            "record_type": "summary",
            "schema_version": SCHEMA_VERSION,
            "tool": self.tool.to_json(),
            "n_files": self.n_files,
            "n_errors": self.n_errors,
            "counts": dict(self.counts),
            "thresholds": dict(self.thresholds),
            "calibration": None if self.calibration is None else dict(self.calibration),
            "models": dict(self.models),
            "config": dict(self.config),
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "elapsed_s": self.elapsed_s,
            "exit_status": self.exit_status,
        }

    @classmethod
    def from_json(cls, d: Any) -> SummaryRecord:
        """Read a summary written by :meth:`to_json` back.

        Raises:
            ValueError: If ``d`` is not a schema-1.0 summary record, naming what is wrong.
        """
        d = _block(_check_header(d, "summary"), _SUMMARY_KEYS, "summary record")
        for k in ("counts", "thresholds", "models", "config"):
            if not isinstance(d[k], Mapping):
                raise ValueError(f"summary {k} must be an object, got {type(d[k]).__name__}")
        cal = d["calibration"]
        if cal is not None and not isinstance(cal, Mapping):
            raise ValueError(f"summary calibration must be an object or null, got {type(cal).__name__}")
        return cls(
            n_files=d["n_files"],
            n_errors=d["n_errors"],
            counts=dict(d["counts"]),
            thresholds=dict(d["thresholds"]),
            calibration=None if cal is None else dict(cal),
            models=dict(d["models"]),
            config=dict(d["config"]),
            started_at=d["started_at"],
            finished_at=d["finished_at"],
            elapsed_s=d["elapsed_s"],
            exit_status=d["exit_status"],
            tool=ToolInfo.from_json(d["tool"]),
        )


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
