from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from _helpers import textured
from detectors.base import DetectorResult
from detectors.pipeline import Pipeline
from detectors.record import LABELS, SCHEMA_VERSION

RECORD_KEYS = {
    "record_type", "schema_version", "tool", "file", "status", "error", "label", "score", "decided_by",
    "detectors", "quality_flags", "explanations", "calibration", "timing",
}  # fmt: skip
FILE_KEYS = {"path", "sha256", "format", "width", "height", "bytes", "mode", "frames", "mtime_ns"}
DETECTOR_KEYS = {"name", "version", "status", "score", "threshold", "claim", "strength", "evidence", "explanations", "message", "time_s"}


class Boom:
    name, version = "boom", "b1"

    def analyze(self, image):  # noqa: ANN001, ANN201
        raise RuntimeError("kaput")


def test_ok_and_error_records_share_the_schema(tmp_path: Path) -> None:
    Image.fromarray(textured(150, 150)).save(tmp_path / "a.png")
    (tmp_path / "b.png").write_bytes(b"\x89PNG\r\n\x1a\nxx")
    p = Pipeline(["test_spectral"])
    ok = p.analyze_path(tmp_path / "a.png").record
    err = p.analyze_path(tmp_path / "b.png").record
    for rec in (ok, err):
        assert set(rec) == RECORD_KEYS
        assert set(rec["file"]) == FILE_KEYS
        assert rec["schema_version"] == SCHEMA_VERSION and rec["label"] in LABELS
        json.dumps(rec, allow_nan=False)
    assert set(ok["detectors"][0]) == DETECTOR_KEYS
    assert err["status"] == "error" and err["label"] == "error" and "b.png" in err["error"]["message"]
    assert err["file"]["bytes"] == 10


def test_failing_detector_does_not_lose_the_record(tmp_path: Path) -> None:
    Image.fromarray(textured(150, 150)).save(tmp_path / "a.png")
    rec = Pipeline([Boom(), "test_spectral"]).analyze_path(tmp_path / "a.png").record
    assert rec["status"] == "ok"
    boom = rec["detectors"][0]
    assert boom["status"] == "error" and "kaput" in boom["message"]
    assert rec["detectors"][1]["status"] == "ok" and rec["score"] is not None
    assert any("boom failed" in e for e in rec["explanations"])


def test_visuals(tmp_path: Path) -> None:
    Image.fromarray(textured(300, 400)).save(tmp_path / "a.png")
    v = Pipeline(["test_spectral"]).analyze_path(tmp_path / "a.png", visuals=True).visuals
    assert v is not None and v.thumbnail.dtype == np.uint8 and max(v.thumbnail.shape[:2]) == 256
    assert v.residual.ndim == 2 and v.spectrum.shape == (256, 256)


def test_analyze_bytes_and_determinism(tmp_path: Path) -> None:
    Image.fromarray(textured(150, 150)).save(tmp_path / "a.png")
    data = (tmp_path / "a.png").read_bytes()
    p = Pipeline(["test_spectral"])
    a = p.analyze_bytes(data, name="upload.png").record
    b = p.analyze_bytes(data, name="upload.png").record
    for r in (a, b):
        r.pop("timing")
        for d in r["detectors"]:
            d.pop("time_s")
    assert a == b and a["file"]["path"] == "upload.png"


def test_small_image_flag_and_cap(tmp_path: Path) -> None:
    Image.fromarray(textured(100, 100)).save(tmp_path / "s.png")
    rec = Pipeline(["test_spectral"]).analyze_path(tmp_path / "s.png").record
    assert "small_image" in {q["code"] for q in rec["quality_flags"]}
    assert rec["label"] == "inconclusive"


def test_result_validation() -> None:
    import pytest

    with pytest.raises(ValueError, match="score must be in"):
        DetectorResult(name="x", version="1", score=1.5)


def test_only_batchable_detectors_can_be_deferred() -> None:
    from detectors import is_batchable

    assert is_batchable("cnn") and is_batchable("test_cnn") and not is_batchable("spectral")
    with pytest.raises(ValueError, match="not registered as batchable"):
        Pipeline(("test_spectral",), defer=("test_spectral",))
    with pytest.raises(ValueError, match="not in the pipeline"):
        Pipeline(("test_spectral",), defer=("test_cnn",))
