"""Tests for the EXIF camera-hint detector and the provenance registry."""

from __future__ import annotations

import io
import json

import numpy as np
from PIL import Image

from detectors import create_detector, list_detectors
from forensics.io import load_image_bytes

PROVENANCE_DETECTORS = tuple(list_detectors(kind="provenance"))


def photo_like(size: int = 320) -> Image.Image:
    rng = np.random.default_rng(7)
    small = rng.random((size // 16, size // 16, 3))
    img = Image.fromarray((small * 255).astype(np.uint8)).resize((size, size), Image.Resampling.BICUBIC)
    arr = np.asarray(img).astype(np.float64) + rng.normal(scale=3, size=(size, size, 3))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def camera_exif() -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "Canon"
    exif[0x0110] = "Canon EOS 5D"
    exif[0x0131] = "Firmware 1.1.1"
    sub = exif.get_ifd(0x8769)
    sub[0x829A] = 1 / 160
    sub[0x829D] = 5.0
    sub[0x8827] = 160
    sub[0x920A] = 105.0
    sub[0xA434] = "EF24-105mm f/4L IS USM"
    return exif.tobytes()


def test_camera_fields_give_a_weak_camera_claim():
    buf = io.BytesIO()
    photo_like().save(buf, "JPEG", quality=92, exif=camera_exif())
    res = create_detector("exif").analyze(load_image_bytes(buf.getvalue()))
    assert res.status == "ok"
    assert res.claim == "camera" and res.strength == "weak"
    ev = res.evidence
    assert ev["Make"] == "Canon" and ev["Model"] == "Canon EOS 5D"
    assert ev["LensModel"] == "EF24-105mm f/4L IS USM"
    assert ev["ISO"] == 160 and ev["thumbnail"] is False
    assert "Canon EOS 5D" in ev["summary"] and "1/160 s" in ev["summary"]
    assert any("weak hint" in e for e in res.explanations)
    json.dumps(res.to_dict())


def test_no_exif_or_no_camera_fields_is_not_applicable():
    buf = io.BytesIO()
    photo_like().save(buf, "JPEG")
    assert create_detector("exif").analyze(load_image_bytes(buf.getvalue())).status == "not_applicable"
    exif = Image.Exif()
    exif[0x0131] = "GIMP 2.10"
    buf = io.BytesIO()
    photo_like().save(buf, "JPEG", exif=exif.tobytes())
    res = create_detector("exif").analyze(load_image_bytes(buf.getvalue()))
    assert res.status == "not_applicable" and res.claim == "none"


def test_all_provenance_detectors_are_registered():
    names = set(list_detectors())
    assert set(PROVENANCE_DETECTORS) <= names
    for name in PROVENANCE_DETECTORS:
        det = create_detector(name)
        assert det.name == name and det.version


def test_plain_photo_like_image_has_no_provenance_claims():
    buf = io.BytesIO()
    photo_like(512).save(buf, "JPEG", quality=92)
    img = load_image_bytes(buf.getvalue())
    for name in PROVENANCE_DETECTORS:
        res = create_detector(name).analyze(img)
        assert res.status == "not_applicable", (name, res.message)
        assert res.claim == "none" and res.strength == "none" and res.score is None
        assert isinstance(res.evidence.get("summary"), str)


def test_camera_photo_has_only_the_weak_camera_hint():
    buf = io.BytesIO()
    photo_like(512).save(buf, "JPEG", quality=92, exif=camera_exif())
    img = load_image_bytes(buf.getvalue())
    claims = {n: create_detector(n).analyze(img) for n in PROVENANCE_DETECTORS}
    assert {n: r.claim for n, r in claims.items() if r.claim != "none"} == {"exif": "camera"}
    assert claims["exif"].strength == "weak"
