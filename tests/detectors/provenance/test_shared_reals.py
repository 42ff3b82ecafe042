"""No shared real photo gets an AI claim from provenance (issue 12: none may become ai_confirmed).

The full figures, with the watermark detector, come from
``python benchmarks/provenance_reals.py`` (docs/provenance.md); this test
runs the metadata readers over every 8th of the same files by default, and
all of them with the watermark under ``-m slow``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from detectors import create_detector
from detectors.calibration import Calibration
from detectors.fusion import fuse
from forensics.io import load_image

from _helpers import SHARED

ROOT = SHARED.parent
CAL = Calibration("provenance-only", "t", likely_ai=0.9, likely_real=0.1)


def _reals() -> list[Path]:
    out = []
    for name in ("data", "data2"):
        manifest = ROOT / name / "manifest.json"
        if manifest.is_file():
            rows = json.loads(manifest.read_text(encoding="utf-8"))
            out += [ROOT / name / r["path"] for r in rows if isinstance(r, dict) and r.get("label") == "real"]
    return out


def _check(names: tuple[str, ...], *, every: int = 1) -> None:
    paths = _reals()
    if not paths:
        pytest.skip("no shared manifests with real photos")
    assert len(paths) >= 300  # data/real (97) and data2/real (252)
    paths = paths[::every]
    detectors = [create_detector(n) for n in names]
    bad = []
    for p in paths:
        results = [d.analyze(load_image(p)) for d in detectors]
        label = fuse(results, CAL).label
        claims = [(r.name, r.claim, r.strength) for r in results if r.claim in ("ai_generated", "ai_edited")]
        if label == "ai_confirmed" or claims:
            bad.append((p.name, label, claims))
    assert not bad, bad[:10]


def test_a_spread_of_shared_real_photos_has_no_ai_metadata_claim():
    _check(("c2pa", "xmp", "generator_metadata", "exif"), every=8)


@pytest.mark.slow
def test_no_shared_real_photo_has_any_provenance_ai_claim():
    _check(("c2pa", "xmp", "generator_metadata", "watermark", "exif"))
