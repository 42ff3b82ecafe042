"""The typed records: ``to_json()`` is schema 1.0 exactly, and ``from_json()`` reads every record back."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import pytest

from detectors.base import DetectorResult
from detectors.pipeline import Pipeline
from detectors.record import (
    LABELS,
    SCHEMA_VERSION,
    FileInfo,
    ImageRecord,
    SummaryRecord,
    error_record,
    tool_info,
)
from forensics.io import QualityFlag

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
IMAGE_KEYS = [
    "record_type", "schema_version", "tool", "file", "status", "error", "label", "score", "decided_by",
    "detectors", "quality_flags", "explanations", "calibration", "timing",
]  # fmt: skip
SUMMARY_KEYS = [
    "record_type", "schema_version", "tool", "n_files", "n_errors", "counts", "thresholds", "calibration",
    "models", "config", "started_at", "finished_at", "elapsed_s", "exit_status",
]  # fmt: skip
CAL = {"name": "fused", "version": "calib-v3", "likely_ai": 0.75, "likely_real": 0.45, "map": None}


def _wire(obj: dict) -> dict:
    """What a reader of the JSONL report gets back."""
    return json.loads(json.dumps(obj, allow_nan=False))


@pytest.fixture(scope="module")
def pipeline_records() -> list[dict]:
    paths = sorted(p for p in EXAMPLES.rglob("*") if p.is_file() and p.suffix.lower() != ".md")
    assert paths, "examples/ holds no images"
    pipe = Pipeline()
    recs = [pipe.analyze_path(p).record for p in paths]
    recs.append(pipe.analyze_bytes(b"\x89PNG\r\n\x1a\n broken", name="upload.png").record)
    recs.append(pipe.analyze_path(EXAMPLES / "no such file.jpg").record)
    return recs


def test_pipeline_records_round_trip_exactly(pipeline_records: list[dict]) -> None:
    assert {r["status"] for r in pipeline_records} == {"ok", "error"}
    for rec in pipeline_records:
        assert list(rec) == IMAGE_KEYS
        wire = _wire(rec)
        typed = ImageRecord.from_json(wire)
        # same keys, same order, same values
        assert json.dumps(typed.to_json()) == json.dumps(wire), rec["file"]["path"]
        assert ImageRecord.from_json(_wire(typed.to_json())) == typed


def test_error_record_is_the_schema_layout() -> None:
    rec = error_record("a/b.jpg", "truncated", "a/b.jpg: image file is truncated", size=12, calibration=CAL, total_s=0.1234567)
    assert rec == {
        "record_type": "image",
        "schema_version": SCHEMA_VERSION,
        "tool": tool_info(),
        "file": {
            "path": "a/b.jpg", "sha256": None, "format": None, "width": None, "height": None, "bytes": 12,
            "mode": None, "frames": None, "mtime_ns": None,
        },  # fmt: skip
        "status": "error",
        "error": {"code": "truncated", "message": "a/b.jpg: image file is truncated"},
        "label": "error",
        "score": None,
        "decided_by": None,
        "detectors": [],
        "quality_flags": [],
        "explanations": ["The file could not be analysed: a/b.jpg: image file is truncated"],
        "calibration": CAL,
        "timing": {"load_s": None, "detect_s": None, "total_s": 0.123457},
    }
    assert list(rec) == IMAGE_KEYS
    assert ImageRecord.from_json(rec) == ImageRecord.failed(
        "a/b.jpg", "truncated", "a/b.jpg: image file is truncated", size=12, calibration=CAL, total_s=0.123457
    )


def test_typed_record_round_trip() -> None:
    det = DetectorResult(
        "spectral", "spectral-v1", score=0.8312345678, threshold=0.6, evidence={"peaks": [3, 5], "nested": {"a": None}},
        explanations=("Peaks.",), time_s=0.01,
    )  # fmt: skip
    rec = ImageRecord(
        file=FileInfo("x.png", "ab" * 32, "PNG", 640, 480, 1234, "RGB", 1, 1_700_000_000_123_456_789),
        label="likely_ai",
        score=0.8312345678,
        decided_by="fusion",
        detectors=(det,),
        quality_flags=(QualityFlag("no_exif", "no EXIF"),),
        explanations=("One.", "Two."),
        calibration=CAL,
    )
    wire = _wire(rec.to_json())
    assert wire["score"] == 0.831235 and wire["detectors"][0]["score"] == 0.831235
    back = ImageRecord.from_json(wire)
    assert back.to_json() == wire
    assert back == dataclasses.replace(rec, score=0.831235, detectors=(dataclasses.replace(det, score=0.831235),))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.update(schema_version="2.0"), "schema_version '2.0'"),
        (lambda r: r.update(record_type="summary"), "record_type must be 'image', got 'summary'"),
        (lambda r: r.pop("timing"), "lacks timing"),
        (lambda r: r["file"].pop("sha256"), "file lacks sha256"),
        (lambda r: r.update(label="maybe_ai"), "label must be one of"),
        (lambda r: r.update(score=1.5), "score must be a number in [0, 1]"),
        (lambda r: r.update(status="error"), "an error block goes with status 'error' only"),
        (lambda r: r.update(detectors={"spectral": {}}), "detectors must be a list"),
        (lambda r: r.update(detectors=[{"name": "spectral"}]), "detectors[0] lacks version"),
        (lambda r: r.update(quality_flags=["small"]), "quality_flags[0] must be an object"),
    ],
)
def test_from_json_names_what_is_wrong(change, message: str) -> None:
    rec = error_record("a.png", "x", "a.png: x")
    rec.update(status="ok", error=None, label="likely_real", score=0.1)
    ImageRecord.from_json(rec)  # valid before the change
    change(rec)
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        ImageRecord.from_json(rec)


def test_summary_is_built_in_one_place_and_round_trips() -> None:
    s = SummaryRecord.finish(
        n_files=3, n_errors=1, counts={"likely_ai": 2, "error": 1}, calibration=CAL, models={"spectral": "v1"},
        config={"paths": ["a"], "fail_on": "likely_ai"}, started_at="2024-05-01T10:00:00+00:00", elapsed_s=1.23456,
        exit_status=1,
    )  # fmt: skip
    d = s.to_json()
    assert list(d) == SUMMARY_KEYS
    assert list(d["counts"]) == list(LABELS) and d["counts"] == {"ai_confirmed": 0, "likely_ai": 2, "inconclusive": 0, "likely_real": 0, "error": 1}
    assert d["thresholds"] == {"likely_ai": 0.75, "likely_real": 0.45}
    assert d["elapsed_s"] == 1.235 and d["exit_status"] == 1 and d["tool"] == tool_info()
    assert dt.datetime.fromisoformat(d["finished_at"]).tzinfo is not None
    assert SummaryRecord.from_json(_wire(d)) == s
    assert json.dumps(SummaryRecord.from_json(_wire(d)).to_json()) == json.dumps(d)
    with pytest.raises(ValueError, match="lacks models"):
        SummaryRecord.from_json({k: v for k, v in d.items() if k != "models"})
    with pytest.raises(ValueError, match="record_type must be 'summary'"):
        SummaryRecord.from_json(error_record("a.png", "x", "a.png: x"))


def test_summary_without_calibration_has_no_thresholds() -> None:
    s = SummaryRecord.finish(
        n_files=0, n_errors=0, counts={}, calibration=None, models={}, config={}, started_at="t", elapsed_s=0, exit_status=0
    )
    assert s.to_json()["thresholds"] == {"likely_ai": None, "likely_real": None} and s.to_json()["calibration"] is None
