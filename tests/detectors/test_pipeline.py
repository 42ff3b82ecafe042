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


def test_registry_kinds_replace_the_hand_kept_lists() -> None:
    from detectors import detector_kind, list_detectors, register_detector
    from detectors.pipeline import DEFAULT_DETECTORS, default_pixel_detectors

    pixel, prov = list_detectors(kind="pixel"), list_detectors(kind="provenance")
    assert {"spectral", "cnn", "test_spectral", "test_cnn"} <= set(pixel)
    assert {"c2pa", "xmp", "generator_metadata", "watermark", "exif"} <= set(prov)
    assert sorted(pixel + prov) == list_detectors() and not set(pixel) & set(prov)
    assert list_detectors("test_*", kind="pixel") == [n for n in pixel if n.startswith("test_")]
    assert default_pixel_detectors() == ("spectral", "cnn", "zed")
    assert set(DEFAULT_DETECTORS) - set(default_pixel_detectors()) <= set(prov)
    assert detector_kind("spectral") == "pixel" and detector_kind("exif") == "provenance"
    with pytest.raises(ValueError, match="unknown detector 'nope'"):
        detector_kind("nope")
    with pytest.raises(ValueError, match="kind must be one of pixel, provenance"):
        list_detectors(kind="pixels")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="kind must be one of"):
        register_detector("test_bad_kind", kind="metadata")  # type: ignore[arg-type]


def test_registered_kind_matches_what_the_detector_gives() -> None:
    """Pixel detectors give a score; provenance detectors give none (so a missing ``kind="pixel"`` shows)."""
    from detectors import create_detector, detector_kind, list_detectors
    from forensics.io import load_image_bytes

    buf = __import__("io").BytesIO()
    Image.fromarray(textured(160, 160)).save(buf, "PNG")
    img = load_image_bytes(buf.getvalue())
    for name in list_detectors():
        if name == "cnn":  # the full network: covered by tests/detectors/test_cnn.py
            continue
        det = create_detector(name, seconds=0.0) if name in ("test_slow", "test_hang", "test_hang_some") else create_detector(name)
        res = det.analyze(img)
        assert (res.score is not None) == (detector_kind(name) == "pixel"), (name, res)


def test_stability_rescoring_uses_registered_kinds() -> None:
    p = Pipeline([Boom(), "test_spectral", "exif"])
    assert p.kinds == {"boom": "provenance", "spectral": "pixel", "exif": "provenance"}


def test_base_does_not_import_its_package() -> None:
    import ast

    import detectors.base as base

    tree = ast.parse(Path(base.__file__).read_text(encoding="utf-8"))
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not {m for m in names if m == "detectors" or m.startswith("detectors.")}
