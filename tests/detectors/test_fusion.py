from __future__ import annotations

import pytest

from detectors.base import DetectorResult
from detectors.calibration import Calibration, MaxFusion, PlattMap, load_calibration
from detectors.fusion import fuse
from forensics.io import QualityFlag

SMALL = QualityFlag("small_image", "tiny")
CAL = Calibration(name="t", version="t1", likely_ai=0.8, likely_real=0.2)


def px(score: float) -> DetectorResult:
    return DetectorResult(name="spectral", version="v", score=score, threshold=0.8)


def prov(claim: str, strength: str, name: str = "c2pa") -> DetectorResult:
    return DetectorResult(name=name, version="v", claim=claim, strength=strength, explanations=("declared AI.",))


@pytest.mark.parametrize("score,label", [(0.9, "likely_ai"), (0.8, "likely_ai"), (0.5, "inconclusive"), (0.2, "likely_real"), (0.05, "likely_real")])
def test_pixel_bands(score: float, label: str) -> None:
    v = fuse([px(score)], CAL)
    assert v.label == label and v.score == score


def test_proof_gives_ai_confirmed_and_names_it() -> None:
    v = fuse([px(0.1), prov("ai_generated", "proof", "generator_metadata")], CAL)
    assert v.label == "ai_confirmed" and v.decided_by == "generator_metadata"
    assert "generator_metadata" in v.explanations[0]


def test_strong_claim_floors_at_likely_ai() -> None:
    v = fuse([px(0.1), prov("ai_generated", "strong", "watermark")], CAL)
    assert v.label == "likely_ai" and v.decided_by == "watermark"


def test_missing_provenance_is_neutral() -> None:
    na = DetectorResult(name="c2pa", version="v", status="not_applicable", message="no manifest")
    assert fuse([px(0.5), na], CAL).score == fuse([px(0.5)], CAL).score == 0.5


def test_camera_claim_never_overrides_pixels() -> None:
    v = fuse([px(0.95), prov("camera", "weak", "exif")], CAL)
    assert v.label == "likely_ai" and v.score == 0.95
    assert any("camera" in e for e in v.explanations)


def test_weak_ai_claim_does_not_confirm() -> None:
    assert fuse([px(0.5), prov("ai_generated", "weak")], CAL).label == "inconclusive"


def test_small_image_caps_pixel_verdict() -> None:
    assert fuse([px(0.95)], CAL, quality_flags=[SMALL]).label == "inconclusive"
    assert fuse([px(0.05)], CAL, quality_flags=[SMALL]).label == "inconclusive"


def test_no_detector_scored() -> None:
    v = fuse([], CAL)
    assert v.label == "inconclusive" and v.score is None


def test_calibration_validation(tmp_path) -> None:
    with pytest.raises(ValueError, match="likely_real"):
        Calibration(name="x", version="x", likely_ai=0.2, likely_real=0.5)
    (tmp_path / "c.json").write_text('{"name": "x"}')
    with pytest.raises(ValueError, match="c.json"):
        load_calibration(tmp_path / "c.json")
    shipped = load_calibration()
    assert 0 <= shipped.likely_real <= shipped.likely_ai <= 1


def test_max_fusion_names_the_detector_that_leads() -> None:
    from detectors.fusion import fuse

    cal = Calibration(
        name="t", version="1", likely_ai=0.9, likely_real=0.1, target_fpr=0.01, target_miss=0.05,
        fusion=MaxFusion(("a", "b"), (1.0, 1.0), (0.0, 0.0)), score_map=PlattMap(a=1.0, b=0.0),
    )  # fmt: skip
    res = [DetectorResult(name="a", version="1", score=0.3), DetectorResult(name="b", version="1", score=0.8)]
    assert [n for n, _ in cal.pixel_evidence(res)] == ["b", "a"]
    v = fuse(res, cal)
    assert v.score == pytest.approx(0.8) and any("here b (then a)" in e for e in v.explanations)


def test_unstable_caps_pixel_verdict_only() -> None:
    flip = QualityFlag("unstable", "likely_ai becomes inconclusive after a 0.75x resize")
    v = fuse([px(0.95)], CAL, quality_flags=[flip])
    assert (v.label, v.decided_by, v.score) == ("inconclusive", "stability", 0.95)
    assert v.explanations[0] == "The verdict is not stable: likely_ai becomes inconclusive after a 0.75x resize."
    assert v.explanations[1:] == fuse([px(0.95)], CAL).explanations
    assert fuse([px(0.05)], CAL, quality_flags=[flip]).label == "inconclusive"
    assert fuse([px(0.5)], CAL, quality_flags=[flip]).decided_by == "fusion"  # already inconclusive
    # provenance decisions are not pixel verdicts: the flag does not touch them
    assert fuse([px(0.1), prov("ai_generated", "proof", "generator_metadata")], CAL, quality_flags=[flip]).label == "ai_confirmed"
    v = fuse([px(0.5), prov("ai_generated", "strong", "watermark")], CAL, quality_flags=[flip])
    assert (v.label, v.decided_by) == ("likely_ai", "watermark")


def test_unstable_pixels_do_not_undo_a_strong_provenance_floor() -> None:
    # Pixels alone say likely_ai, but the label flips under a re-save: the cap applies to the
    # pixel evidence; the strong provenance claim still floors the label at likely_ai (rule 3).
    flip = QualityFlag("unstable", "likely_ai becomes inconclusive after JPEG q90")
    v = fuse([px(0.95), prov("ai_generated", "strong", "c2pa")], CAL, quality_flags=[flip])
    assert (v.label, v.decided_by) == ("likely_ai", "c2pa")
    assert v.explanations[0] == "The verdict is not stable: likely_ai becomes inconclusive after JPEG q90."
